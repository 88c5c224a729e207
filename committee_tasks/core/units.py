"""Figures with their units, as every report and plugin prints them (pure Python: no numpy, no
torch, so a plugin's listing and the tools' tables share it cheaply)."""
from __future__ import annotations

import math
import re
from typing import Any

DASH = "–"  # a figure that does not exist (no fit, not measured, NaN)


def is_missing(value: Any) -> bool:
    """None, NaN or infinite: shown as a dash."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


_MACS_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_MACS_TEXT = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*(?:MACs?)?\s*", re.IGNORECASE)


def parse_macs(text: str) -> float | None:
    """A number of MACs as the tables print it or as a plain number: "50M", "4.09G", "115.4K",
    "2.5e8", "3e9 MACs" (K, M, G, T: thousands to 10^12, either case); None if ``text`` is not one."""
    found = _MACS_TEXT.fullmatch(str(text))
    if not found:
        return None
    return float(found.group(1)) * _MACS_UNITS[found.group(2).upper()]


def format_macs(macs: float | None, digits: int | None = None) -> str:
    """Multiply-adds with a unit: 125485824 -> "125.5M", 4.09e9 -> "4.09G"; "–" for none.
    ``digits``: that many significant digits instead (51349000, 4 -> "51.35M")."""
    if is_missing(macs):
        return DASH
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(macs) >= scale:
            v = macs / scale
            if digits is not None:
                return f"{v:.{digits}g}{unit}"
            return f"{v:.2f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"
    return f"{macs:.{digits}g}" if digits is not None else f"{macs:.0f}"
