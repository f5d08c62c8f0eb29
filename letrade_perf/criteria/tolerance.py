"""Regression tolerance values as written on command lines (``run --tolerance``, ``compare --tolerance``)."""
from __future__ import annotations

import math


def parse_tolerance(text: str | float) -> float:
    """``"10%"`` or ``"0.1"`` → 0.1. A bare number must be a fraction below 1 (``10`` is ambiguous:
    write ``10%``). Raises :class:`ValueError` naming the value."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1].strip()) / 100.0
        else:
            value = float(raw)
            if value >= 1:
                raise ValueError(f"{text!r}: a bare number is a fraction below 1; write {raw}% for a percentage")
    except ValueError as e:
        if str(e).startswith(repr(text)):
            raise
        raise ValueError(f"{text!r}: expected a percentage like 10% or a fraction like 0.1") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r}: must be a finite value >= 0")
    return value
