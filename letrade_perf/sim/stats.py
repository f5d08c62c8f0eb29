"""Ground truth: what the simulator did, served at ``GET /_sim/stats``.

Harness tests compare their own counts to these exactly, so every response the simulator
sends (REST and WebSocket) is counted here exactly once.
"""
from __future__ import annotations

from collections import Counter, defaultdict


class SimStats:
    """Counters of requests, weight, limits, orders, fills, WS messages and injected faults."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.requests: Counter = Counter()          # (endpoint name, http status) -> n
        self.weight: Counter = Counter()            # endpoint name -> weight charged
        self.sent_429 = 0
        self.sent_418 = 0
        self.orders: Counter = Counter()            # final-or-current status at response time -> n
        self.order_events: Counter = Counter()      # execution type -> n (NEW, TRADE, CANCELED, EXPIRED, REJECTED)
        self.fills = 0                              # trades involving an account's order
        self.synthetic_trades = 0
        self.ws_messages: Counter = Counter()       # stream name -> data messages sent
        self.ws_api_requests: Counter = Counter()   # (method, status) -> n
        self.ws_connections: Counter = Counter()    # "streams" | "ws-api" | "listenKey" -> opened
        self.ws_disconnects: Counter = Counter()    # reason -> n
        self.faults: Counter = Counter()            # fault kind -> n injected
        self.delays: Counter = Counter()            # "rest" | "ws_event" | "ws_event_sent" (ms after E at send) -> n
        self.delay_ms_total: defaultdict = defaultdict(float)

    # -- REST ----------------------------------------------------------------------------
    def request(self, name: str, status: int, weight: int) -> None:
        self.requests[(name, status)] += 1
        if weight:
            self.weight[name] += weight
        if status == 429:
            self.sent_429 += 1
        elif status == 418:
            self.sent_418 += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def delay(self, where: str, ms: float) -> None:
        self.delays[where] += 1
        self.delay_ms_total[where] += ms

    def snapshot(self) -> dict:
        by_endpoint: dict[str, dict] = {}
        for (name, status), n in self.requests.items():
            e = by_endpoint.setdefault(name, {"count": 0, "by_status": {}, "weight": self.weight.get(name, 0)})
            e["count"] += n
            e["by_status"][str(status)] = e["by_status"].get(str(status), 0) + n
        ws_api: dict[str, dict] = {}
        for (method, status), n in self.ws_api_requests.items():
            e = ws_api.setdefault(method, {"count": 0, "by_status": {}})
            e["count"] += n
            e["by_status"][str(status)] = e["by_status"].get(str(status), 0) + n
        return {
            "requests": {
                "total": sum(self.requests.values()),
                "by_endpoint": by_endpoint,
                "weight_total": sum(self.weight.values()),
            },
            "rate_limits": {"sent_429": self.sent_429, "sent_418": self.sent_418},
            "orders": {"by_status": dict(self.orders), "events": dict(self.order_events),
                       "fills": self.fills, "synthetic_trades": self.synthetic_trades},
            "ws": {"messages_by_stream": dict(self.ws_messages),
                   "messages_total": sum(self.ws_messages.values()),
                   "connections": dict(self.ws_connections),
                   "disconnects": dict(self.ws_disconnects)},
            "ws_api": ws_api,
            "faults": dict(self.faults),
            "delays": {k: {"count": v, "total_ms": round(self.delay_ms_total[k], 3)}
                       for k, v in self.delays.items()},
        }
