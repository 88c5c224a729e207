"""Choosing committees from cached statistics alone: the exhaustive and greedy searches, fitting
thresholds to an objective, statistical guarantees and bootstrap intervals.
"""
from committee_tasks._lazy import lazy_exports

_EXPORTS = {
    'Candidate': '.exhaustive',
    'SearchResult': '.exhaustive',
    'SubsetTable': '.exhaustive',
    'search': '.exhaustive',
    'subset_table': '.exhaustive',
    'threshold_levels': '.exhaustive',
    'greedy_cascade': '.greedy',
    'fit_cascade': '.fitting',
    'fit_guaranteed_cascade': '.fitting',
    'BOUNDS': '.guarantee',
    'GuaranteeResult': '.guarantee',
    'fixed_sequence_test': '.guarantee',
    'pvalue': '.guarantee',
    'Bootstrap': '.intervals',
    'Intervals': '.intervals',
    'batched_metric': '.intervals',
    'bootstrap_intervals': '.intervals',
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
