"""Pre-trade capital checks: order size and net exposure per symbol, in quote currency."""
from __future__ import annotations

from collections import defaultdict


class CapitalManager:
    """Approves or refuses trades against two limits and tracks the net exposure they create.

    * ``max_order_quote`` — the largest single order (quote currency, e.g. USDT);
    * ``max_position_quote`` — the largest absolute net position per symbol (buys − sells),
      counting approved orders that have not settled yet.

    :meth:`approve` reserves the exposure; :meth:`settle` corrects it with what was actually
    filled (0 for an order that was refused, rejected or rests unfilled).
    """

    def __init__(self, max_position_quote: float, max_order_quote: float):
        self.max_position_quote = float(max_position_quote)
        self.max_order_quote = float(max_order_quote)
        self.exposure: dict[str, float] = defaultdict(float)
        self.approved = 0
        self.refused = 0
        self.refusals: dict[str, int] = defaultdict(int)

    @staticmethod
    def _sign(side: str) -> int:
        side = side.lower()
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, got {side!r}")
        return 1 if side == "buy" else -1

    def approve(self, symbol: str, side: str, quote_amount: float) -> tuple[bool, str]:
        sign = self._sign(side)
        reason = ""
        if not quote_amount > 0:
            reason = "non-positive order size"
        elif quote_amount > self.max_order_quote:
            reason = f"order {quote_amount:g} > max_order_quote {self.max_order_quote:g}"
        else:
            after = self.exposure[symbol] + sign * quote_amount
            if abs(after) > self.max_position_quote:
                reason = f"position {after:g} would exceed max_position_quote {self.max_position_quote:g}"
        if reason:
            self.refused += 1
            self.refusals[reason.split(" ")[0]] += 1
            return False, reason
        self.exposure[symbol] += sign * quote_amount
        self.approved += 1
        return True, "ok"

    def settle(self, symbol: str, side: str, approved_quote: float, filled_quote: float) -> None:
        """Replace the reservation of an approved order by what it filled."""
        self.exposure[symbol] += self._sign(side) * (filled_quote - approved_quote)
