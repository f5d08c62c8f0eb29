"""Point ccxt's unmodified ``binance`` class at any Binance-compatible base URL.

ccxt applies its spot-only error table (``exceptions['spot']``) only for Binance's own host
names, so against the simulator (``http://127.0.0.1:PORT``) codes such as -1008 would surface
as plain ``ExchangeError``. :func:`ccxt_binance` merges that table into the generic one and
sets the options that keep ``load_markets()`` to exactly one ``GET /api/v3/exchangeInfo``.
"""
from __future__ import annotations

from typing import Any


def ccxt_config(rest_base: str, api_key: str | None = None, secret: str | None = None,
                options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The constructor config for ``ccxt.binance`` against ``rest_base`` (e.g. ``http://127.0.0.1:8765``)."""
    api = rest_base.rstrip("/") + "/api/v3"
    opts = {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
    }
    opts.update(options or {})
    cfg: dict[str, Any] = {
        "options": opts,
        "enableRateLimit": False,
        "urls": {"api": {"public": api, "private": api}},
    }
    if api_key is not None:
        cfg["apiKey"] = api_key
    if secret is not None:
        cfg["secret"] = secret
    return cfg


def ccxt_binance(rest_base: str, api_key: str | None = None, secret: str | None = None,
                 options: dict[str, Any] | None = None, module: Any = None, cls: type | None = None) -> Any:
    """A sync ``ccxt.binance`` (or ``cls``, a subclass of a ccxt binance class) aimed at
    ``rest_base`` with the spot error map applied everywhere."""
    if cls is None:
        if module is None:
            import ccxt  # imported lazily: ccxt is heavy and optional for the simulator
            module = ccxt
        cls = module.binance
    exchange = cls(ccxt_config(rest_base, api_key, secret, options))
    spot = exchange.exceptions.get("spot", {})
    for kind in ("exact", "broad"):
        extra = spot.get(kind)
        if extra:
            merged = dict(exchange.exceptions.get(kind, {}))
            for key, value in extra.items():
                merged.setdefault(key, value)
            exchange.exceptions[kind] = merged
    return exchange
