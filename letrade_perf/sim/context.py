"""The simulator's shared state: one object handed to the REST app, the stream server and the WS API.

Construction order matters only here: clock → stats → events → exchange (engine) → auth →
rate limiter → fault model. Every part takes its clock and randomness from this object, so a
seeded simulator is deterministic apart from wall-clock arrival times.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .clock import SimClock
from .config import SimConfig
from .events import EventHub
from .stats import SimStats

if TYPE_CHECKING:
    from .streams import StreamServer
    from .wsapi import WsApiServer


class SimContext:
    """Holds config, clock, stats, events and the engine, auth, rate-limit and fault components."""

    def __init__(self, config: SimConfig, clock: SimClock | None = None):
        from .auth import Auth
        from .engine import Exchange
        from .faults import FaultModel
        from .ratelimit import RateLimiter
        from .userdata import ListenKeys

        self.config = config
        self.clock = clock or SimClock(skew_ms=config.clock_skew_ms)
        self.rng = random.Random(config.seed)
        self.stats = SimStats()
        self.events = EventHub()
        self.exchange = Exchange(config, self.clock, self.events, self.stats)
        self.auth = Auth(config, self.clock)
        self.ratelimiter = RateLimiter(config.limits, self.clock, self.stats)
        self.faults = FaultModel(config, self.clock, self.stats, random.Random(config.seed + 1))
        self.exchange.set_fill_parts(self.faults.fill_parts)
        self.listen_keys = ListenKeys(config, self.clock, random.Random(config.seed + 2))
        self.events.on_user(self._on_user_event)
        # Set by the WS layers when they are mounted (streams.add_routes / wsapi.add_routes).
        self.streams: StreamServer | None = None
        self.wsapi: WsApiServer | None = None

    def _on_user_event(self, account_id: str, event: dict) -> None:
        # An order's first fill lowers the account's unfilled-order count (reference §2).
        if event.get("e") == "executionReport" and event.get("x") == "TRADE" and event.get("z") == event.get("l"):
            self.ratelimiter.order_filled(account_id)
