"""Calibration / evaluation splits, deterministic by sample id.

A sample's side depends only on a hash of its id, so the split is the same whatever the order,
subset (``--limit``) or machine, and adding samples never moves the existing ones.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from committee_tasks.core.errors import CommitteeError

SPLIT_SALT = "committee-tasks/calibration"


def unit_hash(sample_id: str, salt: str = SPLIT_SALT) -> float:
    """A number in [0, 1) that depends only on the sample id (and the salt)."""
    digest = hashlib.sha256(f"{salt}/{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def calibration_mask(ids: Sequence[str], fraction: float = 0.5, salt: str = SPLIT_SALT) -> np.ndarray:
    """True for the samples of the calibration split (about ``fraction`` of them)."""
    if not 0.0 < fraction < 1.0:
        raise CommitteeError(f"calibration fraction must be in (0, 1), got {fraction}")
    mask = np.fromiter((unit_hash(str(i), salt) < fraction for i in ids), dtype=bool, count=len(ids))
    if mask.all() or not mask.any():
        side = "evaluation" if mask.all() else "calibration"
        raise CommitteeError(
            f"the {side} split of {len(ids)} samples is empty (calibration fraction {fraction}); "
            "use more samples (--limit) or a fraction further from 0 and 1"
        )
    return mask
