"""Realistic run summaries (schema version 1) for the report, comparison and notification tests."""
from __future__ import annotations

import copy
import json
from typing import Any


def endpoint(name: str = "GET /api/v3/depth", type: str = "REST", count: int = 1200, failures: int = 0,
             avg_ms: float | None = 42.5, p95_ms: float | None = 120.0, **overrides: Any) -> dict:
    """One endpoints[] entry; the other percentiles follow from avg and p95."""
    e = {"type": type, "name": name, "count": count, "failures": failures,
         "error_rate": failures / count if count else 0.0, "rps": round(count / 60.0, 3),
         "avg_ms": avg_ms, "min_ms": None if avg_ms is None else round(avg_ms / 4, 3),
         "max_ms": None if p95_ms is None else round(p95_ms * 2.5, 3),
         "p50_ms": None if avg_ms is None else round(avg_ms * 0.9, 3),
         "p90_ms": None if p95_ms is None else round(p95_ms * 0.8, 3), "p95_ms": p95_ms,
         "p99_ms": None if p95_ms is None else round(p95_ms * 1.6, 3)}
    e.update(overrides)
    return e


def stream(name: str = "btcusdt@trade", count: int = 5000, avg_ms: float | None = 8.2, p95_ms: float | None = 21.0,
           uncertainty_ms: float | None = 0.4, **overrides: Any) -> dict:
    """One streams[] entry (WebSocket lag)."""
    s = {"stream": name, "count": count, "avg_ms": avg_ms, "min_ms": 0.5, "max_ms": 64.0,
         "p50_ms": avg_ms, "p90_ms": p95_ms, "p95_ms": p95_ms, "p99_ms": None if p95_ms is None else p95_ms * 1.5,
         "uncertainty_ms": uncertainty_ms}
    s.update(overrides)
    return s


def criterion(label: str = 'request{name="GET /api/v3/depth"} p(95)<200', *, metric: str = "request",
              tags: dict | None = None, expression: str = "p(95)<200", aggregation: str = "p(95)", op: str = "<",
              threshold: float = 200.0, value: float | None = 120.0, samples: int = 1200, verdict: str | None = None,
              gate: str | None = None, reason: str | None = None, unit: str = "ms", source: str = "profile",
              abort_on_fail: bool = False) -> dict:
    """One criteria[] entry; verdict and gate default to what value/op/threshold say."""
    if verdict is None:
        ok = {"<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold,
              "==": value == threshold}[op] if value is not None else None
        verdict = "inconclusive" if ok is None else "pass" if ok else "fail"
        if ok is None and reason is None:
            reason = "no samples"
        if ok is False and reason is None:
            reason = "threshold exceeded"
    if gate is None:
        gate = "pass" if verdict == "pass" else "fail"
    return {"label": label, "metric": metric,
            "tags": {"name": "GET /api/v3/depth"} if tags is None and metric == "request" else (tags or {}),
            "expression": expression, "aggregation": aggregation, "op": op, "threshold": threshold, "value": value,
            "samples": samples, "verdict": verdict, "gate": gate, "reason": reason, "abort_on_fail": abort_on_fail,
            "source": source, "unit": unit}


def default_criteria() -> list[dict]:
    """Nine criteria of the kinds a ci-gate profile has, all passing."""
    return [
        criterion(),
        criterion('request{name="POST /api/v3/order"} avg<200', tags={"name": "POST /api/v3/order"},
                  expression="avg<200", aggregation="avg", value=61.0, samples=300),
        criterion("request avg<200", tags={}, expression="avg<200", aggregation="avg", value=48.1, samples=4000),
        criterion("ws_lag avg<50", metric="ws_lag", tags={}, expression="avg<50", aggregation="avg", threshold=50.0,
                  value=8.2, samples=5000),
        criterion("pipeline p(95)<500", metric="pipeline", tags={}, expression="p(95)<500", threshold=500.0,
                  value=310.0, samples=300),
        criterion("api_success rate>99.9%", metric="api_success", tags={}, expression="rate>99.9%",
                  aggregation="rate", op=">", threshold=0.999, value=0.9998, samples=4000, unit="ratio"),
        criterion("order_success rate>99.5%", metric="order_success", tags={}, expression="rate>99.5%",
                  aggregation="rate", op=">", threshold=0.995, value=1.0, samples=300, unit="ratio"),
        criterion("reconciliation rate>=100%", metric="reconciliation", tags={}, expression="rate>=100%",
                  aggregation="rate", op=">=", threshold=1.0, value=1.0, samples=300, unit="ratio"),
        criterion("http_418 count==0", metric="http_418", tags={}, expression="count==0", aggregation="count",
                  op="==", threshold=0.0, value=0.0, samples=0, unit="count", source="default",
                  abort_on_fail=True),
    ]


def make_summary(**overrides: Any) -> dict:
    """A valid, passing ci-gate summary; keyword arguments replace top-level keys, ``run=`` is merged.

    The verdict follows the criteria unless ``verdict=`` is given.
    """
    run = {"run_id": "20260301T120000Z-ci-gate", "profile": "ci-gate", "profile_source": "profiles/ci-gate.yaml",
           "description": "CI gate: REST, WS lag and the trading pipeline against the simulator", "env": "sim",
           "host": "http://127.0.0.1:8765", "started_at": "2026-03-01T12:00:00+00:00",
           "ended_at": "2026-03-01T12:01:00.250000+00:00", "duration_s": 60.25, "workers": 2,
           "git_commit": "0123456789abcdef0123456789abcdef01234567",
           "versions": {"letrade_perf": "0.1.0", "locust": "2.47.0", "python": "3.12.3", "ccxt": "4.4.50"},
           "aborted": None, "exit_code": 0}
    run_overrides = overrides.pop("run", {})
    run.update(run_overrides)
    summary = {
        "schema": "letrade-perf/summary", "schema_version": 1, "run": run, "verdict": "pass",
        "histogram_relative_error": 0.005,
        "endpoints": [endpoint(), endpoint("POST /api/v3/order", count=300, failures=1, avg_ms=61.0, p95_ms=150.0),
                      endpoint("GET /api/v3/ticker/price", count=2500, avg_ms=0.4, p95_ms=0.9),
                      endpoint("fetch_order_book", type="ccxt", count=600, avg_ms=55.0, p95_ms=140.0),
                      endpoint("order.place", type="WSAPI", count=10, avg_ms=30.0, p95_ms=45.0),
                      endpoint("trade round trip", type="pipeline", count=300, avg_ms=210.0, p95_ms=310.0)],
        "streams": [stream(), stream("btcusdt@depth@100ms", count=3000, avg_ms=11.0, p95_ms=30.0),
                    stream("userData", count=12, avg_ms=15.0, p95_ms=25.0)],
        "criteria": default_criteria(),
        "baseline": None,
        "orders": {"placed": 300, "filled": 296, "canceled": 4, "rejected": 0},
        "pacing": {"weight_limit": 6000, "max_used_weight": 1450, "waits": 3, "http_429": 0},
        "ws": {"connections": 3, "reconnects": 0},
        "sink": None,
        "ending": "completed",
        "achieved": None,
    }
    summary.update(overrides)
    if summary["run"]["aborted"] and "ending" not in overrides:
        summary["ending"] = "safety"
    if "verdict" not in overrides:
        if summary["run"]["aborted"]:
            summary["verdict"] = "aborted"
        else:
            summary["verdict"] = "fail" if any(c["gate"] == "fail" for c in summary["criteria"]) else "pass"
    if summary["verdict"] != "pass" and "exit_code" not in run_overrides:
        summary["run"]["exit_code"] = 3 if summary["verdict"] == "aborted" else 99
    return json.loads(json.dumps(summary))        # a fresh, JSON-shaped copy


def with_endpoint(summary: dict, name: str, **changes: Any) -> dict:
    """A copy of ``summary`` with the endpoint called ``name`` changed."""
    out = copy.deepcopy(summary)
    for e in out["endpoints"]:
        if e["name"] == name:
            e.update(changes)
            return out
    raise KeyError(name)
