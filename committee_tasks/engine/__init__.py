"""Running members: the shared evaluation loop, the prediction cache, the committee executor with
real early exit, a committee card's runnable module, and timing.
"""
from committee_tasks._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    ".loop": "LoopOptions NonFiniteOutputError evaluate_pool check_same_classes",
    ".cache": "PredictionCache MemberCache MemoryPredictionCache BasePredictionCache BaseMemberCache",
    ".executor": "CommitteeExecutor ExecutionResult MemberRunner run_early_exit",
    ".runnable": "CommitteeModule CommitteeOutput load_committee check_members",
    ".inputs": "preprocessed_batches",
    ".timing": "Measured measure_interleaved implausible spread NOISY_SPREAD CASCADE_SLACK",
})
