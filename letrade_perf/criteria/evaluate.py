"""Judging criteria against the merged metrics: values, verdicts, and the test plan's defaults.

A :class:`Result` is ``pass``, ``fail`` or ``inconclusive``. Inconclusive means the run cannot
say: the selection has no samples, or (WS lag) the clock offset's uncertainty is more than half
the threshold, so a lag below the threshold could be an artefact of the clock. An inconclusive
result fails the gate unless the profile sets ``gate.allow_inconclusive``.

What each metric is, its unit and the recorder series it is read from are in the one table
:data:`letrade_perf.metrics.catalogue.CATALOGUE`; a request type it does not name (``X``) is read
as the series ``X`` (ms; ``rate`` = ok ÷ all).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..metrics import catalogue
from ..metrics.recorder import MetricsStore
from .grammar import COUNTER_METRICS, Criterion, parse_criteria

if TYPE_CHECKING:
    from ..config.profile import Profile

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: counter metrics read from the processes' cumulative gauges (see ``LocustGate._gauges``)
_GAUGES = {m.name: m.gauge for m in catalogue.CATALOGUE if m.gauge}
#: counter metrics that count the samples of their recorder series (``clock_errors``: the
#: ``request{status=clock}`` samples; ``reconciliation_unverified``: its own series)
_SERIES_COUNTERS = frozenset(m.name for m in catalogue.CATALOGUE if m.kind == catalogue.COUNTER and not m.gauge)


def unit_of(c: Criterion) -> str:
    """``ms``, ``bps``, ``ratio`` or ``count`` for display."""
    if c.aggregation == "count":
        return "count"
    if c.metric in COUNTER_METRICS and c.aggregation == "rate":
        return "1/s"
    if c.aggregation == "rate":
        return "ratio"
    return catalogue.unit(c.metric)


@dataclass(frozen=True)
class Result:
    """One criterion judged."""

    criterion: Criterion
    value: float | None
    samples: int
    verdict: str
    """``pass``, ``fail`` or ``inconclusive``."""
    reason: str | None = None
    source: str = "profile"
    allow_inconclusive: bool = False
    generator_saturated: bool = False
    """Inconclusive because the load generator was saturated (:func:`saturated_result`): it never
    passes the gate, whatever ``gate.allow_inconclusive`` says."""

    @property
    def gate(self) -> str:
        """What the result contributes to the run's verdict."""
        if self.verdict == INCONCLUSIVE:
            return PASS if self.allow_inconclusive and not self.generator_saturated else FAIL
        return self.verdict

    @property
    def unit(self) -> str:
        return unit_of(self.criterion)

    def to_dict(self) -> dict[str, Any]:
        c = self.criterion
        return {"label": c.label, "metric": c.metric, "tags": dict(c.tags), "expression": c.expression,
                "aggregation": c.aggregation, "op": c.op, "threshold": c.threshold,
                "value": self.value, "samples": self.samples, "verdict": self.verdict, "gate": self.gate,
                "reason": self.reason, "abort_on_fail": c.abort_on_fail, "source": self.source,
                "unit": self.unit}


def measure(c: Criterion, store: MetricsStore, elapsed_s: float) -> tuple[float | None, int, float | None]:
    """(value, samples, clock uncertainty in ms or None) of ``c``'s aggregation over ``store``."""
    m, tags, agg = c.metric, c.tags, c.aggregation
    if m in _GAUGES:
        n = int(store.gauge(_GAUGES[m]))
        if agg == "rate":
            return (n / elapsed_s if elapsed_s > 0 else None), n, None
        return float(n), n, None
    if m in _SERIES_COUNTERS:    # e.g. the request series a -1021 answer went to (status=clock)
        n = store.merged(*catalogue.series_of(m, tags)).hist.count
        if agg == "rate":
            return (n / elapsed_s if elapsed_s > 0 else None), n, None
        return float(n), n, None
    if m == "uptime":
        up, total = store.uptime()
        return (up / total if total else None), total, None
    if m == "ws_connection":     # time, not events: connected ms ÷ wanted ms (samples: wanted ms)
        wanted, connected = store.connection_time(catalogue.series_of(m, tags)[1])
        return (connected / wanted if wanted else None), wanted, None
    if m == "order_success":
        sent, placed = _orders(store, tags, "sent"), _orders(store, tags, "placed")
        return (placed / sent if sent else None), sent, None
    if agg == "rate":
        ok, fail = store.ok_fail(*catalogue.series_of(m, tags))
        n = ok + fail
        return (ok / n if n else None), n, None
    series = store.merged(*catalogue.series_of(m, tags))
    h = series.hist
    if h.count == 0:
        return None, 0, series.uncertainty_ms
    value: float | None
    if agg == "count":
        value = float(h.count)
    elif agg == "avg":
        value = h.mean
    elif agg == "min":
        value = h.min
    elif agg == "max":
        value = h.max
    elif agg == "med":
        value = h.percentile(50.0)
    else:
        # the grammar admits only p(N) here, so the percentile is set
        value = h.percentile(cast(float, c.percentile))
    return value, h.count, series.uncertainty_ms


def _has(tags: tuple[tuple[str, str], ...], name: str) -> bool:
    return any(k == name for k, _ in tags)


#: The ledger source of the error-path scenarios' orders, rejected on purpose (``expected_rejection``).
EXPECTED_REJECTION_SOURCE = "error_path"


def _orders(store: MetricsStore, tags: tuple[tuple[str, str], ...], outcome: str) -> int:
    """``orders`` with ``outcome`` (unless ``tags`` name one) and ``tags``; the error-path scenarios'
    orders — rejected on purpose, judged by ``expected_rejection`` — count only when ``tags`` ask
    for their source."""
    want = tags if _has(tags, "outcome") else tags + (("outcome", outcome),)
    n = store.counter("orders", want)
    if not _has(tags, "source"):
        n -= store.counter("orders", want + (("source", EXPECTED_REJECTION_SOURCE),))
    return n


def judge(c: Criterion, store: MetricsStore, elapsed_s: float, *, allow_inconclusive: bool = False,
          source: str = "profile") -> Result:
    """Judge one criterion."""
    value, samples, unc = measure(c, store, elapsed_s)
    if value is None:
        return Result(c, None, samples, INCONCLUSIVE, "no samples", source, allow_inconclusive)
    if c.metric == "ws_lag" and c.aggregation != "count" and unc is not None and unc > abs(c.threshold) / 2:
        return Result(c, value, samples, INCONCLUSIVE,
                      f"clock uncertainty {unc:.1f} ms is more than half the threshold {c.threshold:g} ms",
                      source, allow_inconclusive)
    if c.passes(value):
        return Result(c, value, samples, PASS, None, source, allow_inconclusive)
    return Result(c, value, samples, FAIL, f"{_fmt(value, unit_of(c))} does not satisfy {c.expression}",
                  source, allow_inconclusive)


#: the load generator's own metrics: judged as measured even when it is saturated
_GENERATOR_METRICS = frozenset(m.name for m in catalogue.CATALOGUE if m.name.startswith("generator_"))


def is_latency(c: Criterion) -> bool:
    """Whether ``c`` judges a latency or lag (a time in ms: ``request``, ``ws_lag``, ``pipeline``,
    a user's own request type …, not its count): what a saturated load generator distorts."""
    return (unit_of(c) == "ms" and c.aggregation != "count" and c.metric not in _GENERATOR_METRICS)


def saturated_result(r: Result, message: str) -> Result:
    """``r`` made inconclusive because the load generator was saturated (``message`` says how
    long and what to do); results of other kinds, and ones already inconclusive, stay."""
    if not is_latency(r.criterion) or r.verdict == INCONCLUSIVE:
        return r
    return Result(r.criterion, r.value, r.samples, INCONCLUSIVE, message, r.source, r.allow_inconclusive,
                  generator_saturated=True)


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.3f} %"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.2f} {unit}"


def format_value(value: float | None, unit: str) -> str:
    """A value for console lines and tables (``—`` when there is none)."""
    return "—" if value is None else _fmt(value, unit)


# ---------------------------------------------------------------------------------------------
# The test plan's defaults
# ---------------------------------------------------------------------------------------------

def default_criteria(profile: Profile) -> tuple[Criterion, ...]:
    """The test plan's criteria for the metrics ``profile``'s users produce (the metric
    catalogue's ``produced_by``: a WebSocket-only profile gets no REST criteria).

    ``request avg<200``, ``api_success rate>99.9%``, ``uptime rate>99.9%`` (users that call the
    API); ``http_418 count==0`` (abort_on_fail), ``http_429 count<=gate.max_429``,
    ``clock_errors count<=gate.max_clock_errors``, ``user_errors count<=gate.max_user_errors``
    (always); ``ws_connection rate>99.9%`` (connected time ÷ wanted time of the WS streams and the
    pipeline's user-data connection; its event ratio ``ws_connection_events`` has no default);
    ``ws_lag avg<50`` (WS streams); ``order_success rate>99.5%`` (orders); ``pipeline avg<500``,
    ``reconciliation rate==100%`` and ``reconciliation_unverified count==0`` (unless the pipeline
    does not reconcile: a check that could not be performed is no mismatch, but a run that could
    not verify every check does not pass either — a profile criterion on the bare metric, e.g.
    ``count<=2``, replaces it), ``slippage avg<10``
    (bps = 0.1 %) and ``fees avg>=gate.fees_min_bps``, ``fees avg<=gate.fees_max_bps`` (the
    pipeline); ``fund_safety rate==100%`` (orders, unless ``funds.enabled`` is false: every
    balance change explained by the run's fills)."""
    users, gate = profile.users, profile.gate
    spec: dict[str, list[str | dict[str, Any]]] = {
        "request": ["avg<200"],
        "api_success": ["rate>99.9%"],
        "uptime": ["rate>99.9%"],
        "http_418": [{"threshold": "count==0", "abort_on_fail": True}],
        "http_429": [f"count<={gate.max_429}"],
        "clock_errors": [f"count<={gate.max_clock_errors}"],
        "user_errors": [f"count<={gate.max_user_errors}"],
        "ws_connection": ["rate>99.9%"],
        "ws_lag": ["avg<50"],
        "order_success": ["rate>99.5%"],
        "pipeline": ["avg<500"],
        "reconciliation": ["rate==100%"],
        "reconciliation_unverified": ["count==0"],
        "slippage": ["avg<10"],
        "fees": [f"avg>={gate.fees_min_bps:g}", f"avg<={gate.fees_max_bps:g}"],
        "fund_safety": ["rate==100%"],
    }
    if not profile.funds.enabled:
        del spec["fund_safety"]
    if users.pipeline is not None and not getattr(users.pipeline, "reconcile", True):
        del spec["reconciliation"], spec["reconciliation_unverified"]
    made, orders = users.produces(), users.places_orders
    return parse_criteria({m: v for m, v in spec.items() if catalogue.produced(m, made, orders)},
                          "test plan defaults")


def effective_criteria(profile: Profile) -> list[tuple[Criterion, str]]:
    """The profile's criteria plus the defaults it does not replace, as (criterion, source).

    A profile criterion on a bare metric (no tags) replaces every default of that metric."""
    own = list(profile.criteria)
    out: list[tuple[Criterion, str]] = []
    if profile.gate.defaults:
        replaced = {c.metric for c in own if not c.tags}
        out += [(c, "default") for c in default_criteria(profile) if c.metric not in replaced]
    out += [(c, "profile") for c in own]
    seen: set[str] = set()
    unique = []
    for c, src in out:
        if c.label not in seen:
            seen.add(c.label)
            unique.append((c, src))
    return unique


def verdict_of(results: list[Result]) -> str:
    """``pass`` when every result's gate passes, else ``fail``."""
    return PASS if all(r.gate == PASS for r in results) else FAIL


__all__ = ["Result", "judge", "is_latency", "saturated_result", "measure", "default_criteria", "effective_criteria", "verdict_of", "format_value",
           "unit_of", "PASS", "FAIL", "INCONCLUSIVE"]
