"""Pure helpers of the order flow (no Locust, no I/O): client order ids and the MA signal."""
from __future__ import annotations

import hashlib
from decimal import Decimal


def client_order_id(prefix: str, run_id: str, worker: int, user: int, seq: int) -> str:
    """A unique ``newClientOrderId`` (``[A-Za-z0-9-_]``, ≤ 36 chars) tagged with the run."""
    tag = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{prefix}-{tag}-{worker}-{user}-{seq}"[:36]


def ma_signal(closes: list[Decimal], fast: int, slow: int) -> int:
    """Sign of fast MA − slow MA over the last closes (1, -1, or 0 when equal / too short)."""
    if len(closes) < slow:
        return 0
    f = sum(closes[-fast:]) / fast
    s = sum(closes[-slow:]) / slow
    return (f > s) - (f < s)
