"""The audit trail's writer (pure: a temp file, an injected clock): one JSON line per action with
the run's fields, flushed as written, appended (a new writer never truncates), secrets masked,
and the ledger's outcomes, blocks and flatten reports mapped to their actions."""
from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

from letrade_perf.core.secrets import register_secret
from letrade_perf.harness.audit import AuditTrail, audit_path, default_operator, install_audit, worker_file
from letrade_perf.harness.ledger import OrderLedger

BASE = {"run_id": "r1", "profile": "smoke", "environment": "sim", "operator": "alice", "role": "local", "worker": None}


def _lines(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_each_action_is_one_flushed_line_with_the_run_fields_and_iso_and_epoch_times(tmp_path):
    path = tmp_path / "audit.jsonl"
    clock = SimpleNamespace(t=1796280001.1234)
    trail = AuditTrail(str(path), BASE, clock=lambda: clock.t)
    trail.write("decided", client_order_id="lp-1", symbol="BTCUSDT", side="BUY", notional=Decimal("12.0100"),
                source="pipeline", via="rest")
    # flushed: readable before the writer is closed (what a crash leaves)
    first = _lines(path)
    assert len(first) == 1
    line = first[0]
    assert line["time"] == "2026-12-03T06:40:01.123Z" and line["ts_ms"] == 1796280001123
    assert {k: line[k] for k in BASE} == BASE
    assert (line["action"], line["client_order_id"], line["notional"], line["reason"]) == ("decided", "lp-1", "12.01",
                                                                                          None)
    clock.t += 0.5
    trail.write("orders_blocked", reason="manual", by="web UI", extra={"x": 1})
    trail.close()
    again = AuditTrail(str(path), BASE, clock=lambda: clock.t)     # append mode: nothing lost
    again.write("orders_resumed", by="signal")
    again.close()
    lines = _lines(path)
    assert [x["action"] for x in lines] == ["decided", "orders_blocked", "orders_resumed"]
    assert lines[1]["by"] == "web UI" and lines[1]["detail"] == {"extra": {"x": 1}}
    assert [x["ts_ms"] for x in lines] == sorted(x["ts_ms"] for x in lines)


def test_secrets_never_reach_the_trail(tmp_path):
    secret = "s3cr3t-api-secret-value-xyz"
    register_secret(secret)
    key = "A" * 64
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(str(path), BASE)
    trail.write("rejected", reason=f"signature {secret} key {key}", client_order_id="c1")
    text = path.read_text()
    assert secret not in text and key not in text and "***" in text


def test_the_ledger_outcomes_and_the_events_map_to_actions(tmp_path):
    events = {}

    class Hook:
        def __init__(self):
            self.listeners = []

        def add_listener(self, f):
            self.listeners.append(f)

        def fire(self, **kw):
            for f in self.listeners:
                f(**kw)

    for name in ("letrade_audit", "letrade_orders_blocked", "letrade_flatten", "quitting"):
        events[name] = Hook()
    env = SimpleNamespace(events=SimpleNamespace(**events), runner=None)
    seen = []
    ledger = OrderLedger(None, on_outcome=lambda rec, key: seen.append(key))
    ctx = SimpleNamespace(reports_dir=str(tmp_path), run_id="r1", profile=SimpleNamespace(name="smoke"),
                          env=SimpleNamespace(name="sim"), operator="bob", role="local", ledger=ledger, audit=None)
    trail = install_audit(ctx, env)
    assert ctx.audit is trail and trail.path == str(tmp_path / "audit.jsonl")
    env.events.letrade_audit.fire(action="decided", client_order_id="c1", symbol="BTCUSDT", side="BUY",
                                  notional=Decimal("12"), source="pipeline", via="rest")
    ledger.sent("c1", "BTCUSDT", "BUY", "pipeline", "rest", "12")
    ledger.accepted("c1", "NEW", 7)
    ledger.status("c1", "FILLED")
    ledger.refused("BTCUSDT", "SELL", "user", "max_run_notional reached")
    ledger.blocked("c2", "BTCUSDT", "BUY", "pipeline", "rest", "12")
    env.events.letrade_orders_blocked.fire(blocked=True, reason="manual", by="web UI")
    env.events.letrade_orders_blocked.fire(blocked=False, reason=None, by="signal")
    env.events.letrade_flatten.fire(report={"reason": "operator request", "by": "web UI", "ok": True, "cancelled": 1})
    env.events.quitting.fire()
    lines = _lines(tmp_path / "audit.jsonl")
    assert [x["action"] for x in lines] == ["decided", "sent", "acknowledged", "filled", "refused", "blocked",
                                            "orders_blocked", "orders_resumed", "flattened"]
    assert seen == ["sent", "placed", "filled", "refused", "blocked"]      # the plugin's own callback still runs
    assert all(x["operator"] == "bob" and x["run_id"] == "r1" for x in lines)
    refused = lines[4]
    assert refused["client_order_id"] is None and refused["reason"] == "max_run_notional reached"
    assert lines[5]["client_order_id"] == "c2" and lines[5]["notional"] == "12"
    assert lines[8]["detail"]["report"] == {"ok": True, "cancelled": 1} and lines[8]["by"] == "web UI"


def test_where_each_process_writes_and_who_the_operator_is(tmp_path):
    assert audit_path(str(tmp_path), "master", None) == str(tmp_path / "audit.jsonl")
    runner = SimpleNamespace(worker_index=-1, client_id="host_abc")
    name = audit_path(str(tmp_path), "worker", runner)
    runner.worker_index = 2           # the master's ack arrives after the worker starts
    assert callable(name) and name() == str(tmp_path / worker_file(2)) and worker_file(2) == "audit-worker-2.jsonl"
    assert default_operator()
    ctx = SimpleNamespace(reports_dir=None)
    assert install_audit(ctx, None) is None
