"""The ``/sapi`` account and API-key status endpoints (reference §12) and their per-key state.

``GET /sapi/v1/account/apiRestrictions``, ``/apiTradingStatus`` and ``/status`` are SIGNED
(USER_DATA, weight 1: the endpoint table); the REST pipeline has verified the key and signature
before these handlers run. Each API key has a :class:`~letrade_perf.sim.config.KeyStatusSpec`:
its account's ``key_status`` from the config, changed at run time by ``PUT /_sim/key``. A key
without the Reading permission gets -2015 from all three, as Binance answers a key without it
(or a call from outside the key's IP allowlist).

Where the reference is silent: ``createTime`` defaults to the simulator's start time;
``apiTradingStatus`` carries no ``indicators`` (Binance lists them only for symbols the account
traded recently) and its ``updateTime`` is the last change of the key's status.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..binance.errors import error
from .config import KeyStatusSpec, SimConfig, key_status_from_mapping

#: Binance's automatic trading-rule thresholds (apiTradingStatus ``triggerCondition``): GTC
#: cancellation ratio, IOC/FOK expiration ratio, unfilled ratio (the reference's values).
TRIGGER_CONDITION = {"GCR": 150, "IFER": 150, "UFR": 300}


class KeyStatusBook:
    """The key status of every API key of the simulator (``api_key -> KeyStatusSpec``)."""

    def __init__(self, config: SimConfig, clock):
        self.clock = clock
        self._started = clock.now_ms()
        self._configured = {a.api_key: a.key_status for a in config.accounts}
        self._status = {k: dataclasses.replace(v) for k, v in self._configured.items()}
        self._updated = dict.fromkeys(self._status, self._started)

    def known(self, api_key: str) -> bool:
        """True for an API key of a configured account."""
        return api_key in self._status

    def get(self, api_key: str) -> KeyStatusSpec:
        """The key's current status (``KeyError`` for an unknown key)."""
        return self._status[api_key]

    def set(self, api_key: str, status: KeyStatusSpec) -> None:
        """Replace the key's status (the control API validated it)."""
        if api_key not in self._status:
            raise KeyError(api_key)
        self._status[api_key] = status
        self._updated[api_key] = self.clock.now_ms()

    def configured(self, api_key: str) -> KeyStatusSpec:
        """The key's status as the configuration set it (``PUT /_sim/key`` with ``reset``)."""
        return dataclasses.replace(self._configured[api_key])

    def view(self, api_key: str) -> dict[str, Any]:
        """The key's status as the control API shows it (the config's field names)."""
        return dataclasses.asdict(self._status[api_key])

    # -- the three endpoints (account id = API key) -------------------------------------------
    def _readable(self, api_key: str) -> KeyStatusSpec:
        ks = self._status.get(api_key)
        if ks is None or not ks.enable_reading:
            raise error(-2015)
        return ks

    def api_restrictions(self, api_key: str) -> dict[str, Any]:
        """``GET /sapi/v1/account/apiRestrictions``."""
        ks = self._readable(api_key)
        out: dict[str, Any] = {
            "ipRestrict": ks.ip_restrict,
            "createTime": ks.create_time if ks.create_time is not None else self._started,
            "enableReading": ks.enable_reading,
            "enableSpotAndMarginTrading": ks.enable_spot_and_margin_trading,
            "enableWithdrawals": ks.enable_withdrawals,
            "enableInternalTransfer": ks.enable_internal_transfer,
            "permitsUniversalTransfer": ks.permits_universal_transfer,
            "enableMargin": ks.enable_margin,
            "enableFutures": ks.enable_futures,
            "enableVanillaOptions": ks.enable_vanilla_options,
            "enablePortfolioMarginTrading": ks.enable_portfolio_margin_trading,
            "enableFixApiTrade": ks.enable_fix_api_trade,
            "enableFixReadOnly": ks.enable_fix_read_only,
        }
        if ks.trading_authority_expiration_time is not None:   # present only where an expiry is set
            out["tradingAuthorityExpirationTime"] = ks.trading_authority_expiration_time
        return out

    def api_trading_status(self, api_key: str) -> dict[str, Any]:
        """``GET /sapi/v1/account/apiTradingStatus``."""
        ks = self._readable(api_key)
        return {"data": {"isLocked": ks.is_locked,
                         "plannedRecoverTime": ks.planned_recover_time if ks.is_locked else 0,
                         "triggerCondition": dict(TRIGGER_CONDITION),
                         "updateTime": self._updated[api_key]}}

    def account_status(self, api_key: str) -> dict[str, Any]:
        """``GET /sapi/v1/account/status``."""
        return {"data": self._readable(api_key).account_status}


def book_of(ctx) -> KeyStatusBook:
    """The simulator's one :class:`KeyStatusBook`, made on first use and kept on the context (the
    REST app and the control API share it)."""
    book = getattr(ctx, "key_status", None)
    if book is None:
        book = KeyStatusBook(ctx.config, ctx.clock)
        ctx.key_status = book
    return book


def update_from_mapping(book: KeyStatusBook, data: dict[str, Any], source: str = "key") -> dict[str, Any]:
    """Apply a ``PUT /_sim/key`` body (``api_key``, optional ``reset``, fields to change) to ``book``.

    Raises ``ValueError`` with a message naming the key for a bad body (the config's own strict
    checks, :class:`~letrade_perf.sim.config.SimConfigError`, for the fields). Returns the new view."""
    api_key = data.get("api_key")
    if not isinstance(api_key, str) or not book.known(api_key):
        raise ValueError("api_key: unknown account")
    reset = data.get("reset", False)
    if not isinstance(reset, bool):
        raise ValueError(f"reset: expected true or false, got {reset!r}")
    base = book.configured(api_key) if reset else book.get(api_key)
    changes = {k: v for k, v in data.items() if k not in ("api_key", "reset")}
    merged = {**dataclasses.asdict(base), **changes}
    book.set(api_key, key_status_from_mapping(merged, source))
    return book.view(api_key)
