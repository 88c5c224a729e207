"""committee-tasks: ensembles and cascades of pretrained models for any task.

The flow: evaluate a pool once into the prediction cache (`evaluate_pool`), score any committee
from the cache (`Ensemble`, `Cascade`), run the chosen one for real (`CommitteeExecutor`).

Layers, each a sub-package (arrows point down only): ``cli`` -> the typed API here ->
``reporting`` -> ``search`` -> ``committees`` -> ``engine`` -> ``core``. Public names are
imported lazily, so ``import committee_tasks`` (and ``--help``) loads no torch.
"""
from committee_tasks._lazy import lazy_exports
from committee_tasks.core.threads import set_openmp_environment

set_openmp_environment()  # before anything imports torch: see committee_tasks/core/threads.py

__version__ = "0.1.0"
_EXPORTS = {
    "CommitteeError": ".core.errors",
    "Member": ".core.task", "Sample": ".core.task", "SampleDataset": ".core.task", "Task": ".core.task",
    "WeightsSource": ".core.zoo", "ZooEntry": ".core.zoo",
    "get_task": ".core.registry", "list_tasks": ".core.registry", "register_task": ".core.registry",
    "LoopOptions": ".engine.loop", "evaluate_pool": ".engine.loop",
    "PredictionCache": ".engine.cache", "CommitteeExecutor": ".engine.executor",
    "Cascade": ".committees.scoring", "CommitteeResult": ".committees.scoring", "Ensemble": ".committees.scoring",
    "PoolPredictions": ".committees.scoring", "Single": ".committees.scoring",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
