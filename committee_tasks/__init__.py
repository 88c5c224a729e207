"""committee-tasks: ensembles and cascades of pretrained models for any task.

The flow: evaluate a pool once into the prediction cache (`Pool.evaluate`), score any committee
from the cache (`Ensemble`, `Cascade`), fit thresholds (`Match`, `Budget`, `Guarantee`), save the
chosen one as a card and run it with real early exit (`load_committee`). See `committee_tasks.api`.

Layers, each a sub-package (imports point down only): ``cli`` -> ``api`` -> ``reporting`` ->
``search`` -> ``engine`` (runs members, produces the committees layer's predictions) ->
``committees`` -> ``core``. Public names are imported lazily, so ``import committee_tasks`` (and
``--help``) loads no torch.
"""
from committee_tasks._lazy import lazy_exports
from committee_tasks.core.threads import set_openmp_environment

set_openmp_environment()  # before anything imports torch: see committee_tasks/core/threads.py

__version__ = "0.1.0"
__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    ".core.errors": "CommitteeError",
    ".core.members": "Member",
    ".core.samples": "Sample SampleDataset",
    ".core.task": "Task",
    ".core.zoo": "WeightsSource ZooEntry",
    ".core.member_spec": "MemberSpec",
    ".core.registry": "get_task list_tasks register_task",
    ".engine.loop": "LoopOptions evaluate_pool",
    ".engine.cache": "PredictionCache MemoryPredictionCache",
    ".engine.executor": "CommitteeExecutor",
    ".committees.scoring": "Cascade CommitteeResult Ensemble Single",
    ".committees.predictions": "PoolPredictions",
    ".committees.confidence": "register_confidence",
    ".core.in_memory": "ArrayDataset",
    ".api.pool": "Pool",
    ".api.objectives": "Match Budget Guarantee",
    ".api.evaluation": "EvalRequest evaluate",
    ".api.searching": "SearchRequest search_committees",
    ".api.reports": "ReportRequest write_reports",
    ".committees.cards": "CommitteeCard",
    ".engine.runnable": "load_committee",
})
