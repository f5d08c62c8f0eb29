"""The exchange connector: the only place that talks to the exchange (a ccxt async object)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any


def _dec(v: Any) -> Decimal:
    return Decimal(str(v)) if v not in (None, "") else Decimal(0)


class ExchangeConnector:
    """Thin async wrapper over a ccxt exchange (``ccxt.async_support.binance`` or compatible).

    Balances are returned as exact totals (``free + locked``, :class:`~decimal.Decimal`) read
    from the exchange's own answer, so reconciliation compares numbers, not floats.
    """

    def __init__(self, exchange):
        self.exchange = exchange
        self.connected = False

    @property
    def account_key(self) -> str:
        """Identifies the account (orders and balances of one key share one state)."""
        return getattr(self.exchange, "apiKey", None) or "default"

    async def connect(self) -> None:
        """Load the markets (cached when already loaded) and check the exchange answers."""
        await self.exchange.load_markets()
        await self.exchange.fetch_time()
        self.connected = True

    def market(self, symbol: str) -> dict:
        return self.exchange.market(symbol)

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        return float(self.exchange.amount_to_precision(symbol, amount))

    def price_to_precision(self, symbol: str, price: float) -> float:
        return float(self.exchange.price_to_precision(symbol, price))

    async def get_market_data(self, symbol: str, timeframe: str = "1m", limit: int = 50) -> list[list]:
        """OHLCV candles ``[ts, open, high, low, close, volume]``, oldest first."""
        return await self.exchange.fetch_ohlcv(symbol, timeframe, limit=limit)

    async def get_ticker(self, symbol: str) -> dict:
        return await self.exchange.fetch_ticker(symbol)

    async def place_order(self, symbol: str, side: str, amount: float, price: float | None = None,
                          type: str = "market") -> dict:
        if type == "limit" and price is None:
            raise ValueError("a limit order needs a price")
        return await self.exchange.create_order(symbol, type, side, amount, price if type == "limit" else None)

    async def cancel_order(self, order_id: str, symbol: str) -> dict:
        return await self.exchange.cancel_order(order_id, symbol)

    async def fetch_order(self, order_id: str, symbol: str) -> dict:
        return await self.exchange.fetch_order(order_id, symbol)

    async def fetch_balance(self) -> dict[str, Decimal]:
        """Total (free + locked) per asset, exact."""
        bal = await self.exchange.fetch_balance()
        info = bal.get("info") or {}
        rows = info.get("balances") if isinstance(info, dict) else None
        if rows:
            return {r["asset"]: _dec(r.get("free")) + _dec(r.get("locked")) for r in rows}
        return {a: _dec(v) for a, v in (bal.get("total") or {}).items() if v is not None}

    async def close(self) -> None:
        await self.exchange.close()
        self.connected = False
