"""Ensembles and cascades scored from what the loop kept (no model runs), confidence functions and
temperature scaling.
"""
from committee_tasks._lazy import lazy_exports

_EXPORTS = {
    'PoolPredictions': '.scoring',
    'SubsetRecord': '.scoring',
    'CommitteeResult': '.scoring',
    'Single': '.scoring',
    'Ensemble': '.scoring',
    'Cascade': '.scoring',
    'parse_committees': '.scoring',
    'confidence_names': '.confidence',
    'get_confidence': '.confidence',
    'get_torch_confidence': '.confidence',
    'member_subsets': '.subsets',
    'subset_sums': '.subsets',
    'fit_temperature': '.temperature',
    'tempered': '.temperature',
    'tempered_numpy': '.temperature',
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
