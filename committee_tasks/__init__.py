"""committee-tasks: ensembles and cascades of pretrained models for any task.

The flow: evaluate a pool once into the prediction cache (`evaluate_pool`), score any committee
from the cache (`Ensemble`, `Cascade`), run the chosen one for real (`CommitteeExecutor`).
"""
from .threads import set_openmp_environment

set_openmp_environment()  # before anything imports torch: see committee_tasks/threads.py

from .cache import PredictionCache  # noqa: E402
from .committees import Cascade, CommitteeResult, Ensemble, PoolPredictions, Single
from .errors import CommitteeError
from .executor import CommitteeExecutor
from .loop import LoopOptions, evaluate_pool
from .registry import get_task, list_tasks, register_task
from .task import Member, Sample, SampleDataset, Task
from .zoo import WeightsSource, ZooEntry

__version__ = "0.1.0"
__all__ = [
    "Cascade", "CommitteeError", "CommitteeExecutor", "CommitteeResult", "Ensemble", "LoopOptions", "Member",
    "PoolPredictions", "PredictionCache", "Sample", "SampleDataset", "Single", "Task", "WeightsSource",
    "ZooEntry", "evaluate_pool", "get_task", "list_tasks", "register_task",
]
