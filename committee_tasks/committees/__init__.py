"""Ensembles and cascades scored from what the loop kept (one view of it for cached outputs and
cached subset statistics; no model runs), confidence functions (and their registry) and
temperature scaling.
"""
from committee_tasks._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    ".predictions": "PoolPredictions OutputPredictions StatisticsPredictions Stage SubsetRecord",
    ".scoring": "CommitteeResult Single Ensemble Cascade parse_committees",
    ".confidence": "confidence_names get_confidence get_torch_confidence register_confidence",
    ".subsets": "member_subsets subset_sums",
    ".temperature": "fit_temperature tempered tempered_numpy",
})
