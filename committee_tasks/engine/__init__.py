"""Running members: the shared evaluation loop, the prediction cache, the committee executor with
real early exit, and timing.
"""
from committee_tasks._lazy import lazy_exports

_EXPORTS = {
    'LoopOptions': '.loop',
    'NonFiniteOutputError': '.loop',
    'evaluate_pool': '.loop',
    'check_same_classes': '.loop',
    'PredictionCache': '.cache',
    'MemberCache': '.cache',
    'atomic_write': '.cache',
    'atomic_write_json': '.cache',
    'read_json': '.cache',
    'default_cache_root': '.cache',
    'CommitteeExecutor': '.executor',
    'ExecutionResult': '.executor',
    'preprocessed_batches': '.inputs',
    'Measured': '.timing',
    'measure_interleaved': '.timing',
    'implausible': '.timing',
    'spread': '.timing',
    'NOISY_SPREAD': '.timing',
    'CASCADE_SLACK': '.timing',
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
