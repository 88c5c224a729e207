"""Choosing committees from cached statistics alone: the exhaustive and greedy searches, fitting
thresholds to an objective, statistical guarantees and bootstrap intervals.
"""
from committee_tasks._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    ".exhaustive": "Candidate SearchResult SubsetTable search subset_table threshold_levels",
    ".greedy": "greedy_cascade",
    ".fitting": "fit_cascade fit_guaranteed_cascade",
    ".guarantee": "BOUNDS GuaranteeResult fixed_sequence_test pvalue",
    ".intervals": "Bootstrap Intervals batched_metric bootstrap_intervals",
})
