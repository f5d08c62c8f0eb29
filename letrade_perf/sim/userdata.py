"""User data: legacy listenKeys and the fan-out of per-account events to WebSocket sinks.

The engine publishes ``executionReport`` / ``outboundAccountPosition`` / ``balanceUpdate``
payloads per account on the :class:`~letrade_perf.sim.events.EventHub`. :class:`UserDataRouter`
serialises each event once and hands the JSON text to every sink registered for that account:
listenKey stream connections (bare events) and WebSocket API subscriptions
(``{"subscriptionId":N,"event":…}``).
"""
from __future__ import annotations

import json
import logging
import random
import string
from typing import Callable

from ..binance.errors import error
from .clock import SimClock
from .config import SimConfig

log = logging.getLogger(__name__)

_ALPHABET = string.ascii_letters + string.digits
LISTEN_KEY_LENGTH = 64

#: ``sink(event_json_text, event_dict)``
Sink = Callable[[str, dict], None]


class ListenKeys:
    """Legacy listenKeys (retired by Binance in 2026, kept for older clients).

    One active key per account: :meth:`create` returns the account's existing key and extends
    it. Keys expire ``config.ws.listen_key_ttl_s`` after creation or the last keepalive;
    :meth:`expire_due` (called by the stream server's housekeeping) removes expired keys and tells
    the ``on_end`` listeners, which send ``listenKeyExpired`` and close the stream.
    """

    def __init__(self, config: SimConfig, clock: SimClock, rng: random.Random):
        self._clock = clock
        self._rng = rng
        self.ttl_ms = int(config.ws.listen_key_ttl_s * 1000)
        self._keys: dict[str, list] = {}          # key -> [account_id, expires_ms]
        self._by_account: dict[str, str] = {}     # account_id -> key
        self._listeners: list[Callable[[str, str, str], None]] = []

    # -- REST operations ----------------------------------------------------------------
    def create(self, account_id: str) -> str:
        """``POST /api/v3/userDataStream``: the account's active key (extended) or a new one."""
        now = self._clock.now_ms()
        key = self._by_account.get(account_id)
        if key is not None and self._keys[key][1] > now:
            self._keys[key][1] = now + self.ttl_ms
            return key
        if key is not None:
            self._end(key, "expired")
        key = "".join(self._rng.choice(_ALPHABET) for _ in range(LISTEN_KEY_LENGTH))
        while key in self._keys:  # pragma: no cover - 62**64 space
            key = "".join(self._rng.choice(_ALPHABET) for _ in range(LISTEN_KEY_LENGTH))
        self._keys[key] = [account_id, now + self.ttl_ms]
        self._by_account[account_id] = key
        return key

    def keepalive(self, account_id: str, key: str) -> None:
        """``PUT``: extend the key by the TTL; unknown, expired or foreign key ⇒ -1125."""
        entry = self._active(key)
        if entry is None or entry[0] != account_id:
            raise error(-1125)
        entry[1] = self._clock.now_ms() + self.ttl_ms

    def close(self, account_id: str, key: str) -> None:
        """``DELETE``: end the key (its stream connections are closed); unknown key ⇒ -1125."""
        entry = self._active(key)
        if entry is None or entry[0] != account_id:
            raise error(-1125)
        self._end(key, "closed")

    # -- queries for the stream server ----------------------------------------------------
    def account_of(self, key: str) -> str | None:
        """The account of an active key, else None."""
        entry = self._active(key)
        return entry[0] if entry is not None else None

    def expires_at(self, key: str) -> int | None:
        entry = self._keys.get(key)
        return entry[1] if entry is not None else None

    def on_end(self, fn: Callable[[str, str, str], None]) -> None:
        """``fn(key, account_id, reason)`` when a key expires (``expired``) or is closed (``closed``)."""
        self._listeners.append(fn)

    def expire_due(self) -> list[str]:
        """Remove every expired key, notify the listeners, return the removed keys."""
        if not self._keys:
            return []
        now = self._clock.now_ms()
        due = [k for k, (_, exp) in self._keys.items() if exp <= now]
        for key in due:
            self._end(key, "expired")
        return due

    def __len__(self) -> int:
        return len(self._keys)

    # -- internals ------------------------------------------------------------------------
    def _active(self, key: str):
        entry = self._keys.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock.now_ms():
            self._end(key, "expired")
            return None
        return entry

    def _end(self, key: str, reason: str) -> None:
        entry = self._keys.pop(key, None)
        if entry is None:
            return
        account_id = entry[0]
        if self._by_account.get(account_id) == key:
            del self._by_account[account_id]
        for fn in self._listeners:
            try:
                fn(key, account_id, reason)
            except Exception:  # a broken listener must not break key management
                log.exception("listenKey listener failed")


class UserDataRouter:
    """Routes the engine's per-account events to registered sinks, serialising each event once."""

    def __init__(self, events):
        self._sinks: dict[str, dict[int, Sink]] = {}
        self._next_token = 0
        events.on_user(self._on_user)

    def add(self, account_id: str, sink: Sink) -> int:
        """Register ``sink`` for ``account_id``; returns a token for :meth:`remove`."""
        self._next_token += 1
        self._sinks.setdefault(account_id, {})[self._next_token] = sink
        return self._next_token

    def remove(self, account_id: str, token: int) -> None:
        sinks = self._sinks.get(account_id)
        if sinks is not None:
            sinks.pop(token, None)
            if not sinks:
                del self._sinks[account_id]

    def sink_count(self, account_id: str | None = None) -> int:
        if account_id is not None:
            return len(self._sinks.get(account_id, ()))
        return sum(len(s) for s in self._sinks.values())

    def _on_user(self, account_id: str, event: dict) -> None:
        sinks = self._sinks.get(account_id)
        if not sinks:
            return
        text = json.dumps(event, separators=(",", ":"))
        for sink in tuple(sinks.values()):
            try:
                sink(text, event)
            except Exception:
                log.exception("user data sink failed")


def router_for(ctx) -> UserDataRouter:
    """The context's single :class:`UserDataRouter` (created on first use)."""
    router = getattr(ctx, "_user_data_router", None)
    if router is None:
        router = UserDataRouter(ctx.events)
        ctx._user_data_router = router
    return router
