"""Acceptance criteria: a k6-like threshold grammar.

A profile's ``criteria`` maps a metric selector to a list of threshold expressions::

    criteria:
      'request{name="GET /api/v3/depth"}': ["p(95)<200", {threshold: "avg<100", abort_on_fail: true,
                                                         delay_abort_eval: 10s}]
      order_success: [{threshold: "rate>99%", on_fail: block_orders}]
      ws_lag: ["avg<50"]
      api_success: ["rate>99.9%"]
      http_418: ["count==0"]

Selector: ``metric`` or ``metric{tag="value",other="value"}``. Expression:
``<aggregation> <op> <threshold>`` with aggregations ``avg min max med p(N) rate count``,
operators ``< <= > >= ==`` and a number (a ``%`` suffix divides by 100: ``rate>99.9%``).

Known metrics have a kind that limits their aggregations (a rate has no average):

- trend (samples, ms or amounts): ``request ws_lag pipeline fill_to_balance slippage fees``
  → ``avg min max med p(N) count``;
- rate (fraction of successes, 0..1): ``api_success order_success ws_connection ws_connection_events
  reconciliation uptime``
  → ``rate``;
- counter: ``http_429 http_418`` → ``count`` (total) and ``rate`` (per second).

Any other identifier is accepted with every aggregation.

A threshold with options (a mapping) may say what a failure during the run does:
``abort_on_fail: true`` (or ``on_fail: abort``) stops the run, ``on_fail: block_orders`` blocks
new orders (the load and the monitoring go on); ``delay_abort_eval`` holds either off for that
long after the start.
"""
from __future__ import annotations

import difflib
import operator
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from ..core.errors import ConfigError
from ..core.strict import parse_duration
from ..metrics import catalogue

# The metric names and what each accepts come from the one catalogue (letrade_perf.metrics.catalogue).
TREND_METRICS = catalogue.names(catalogue.TREND)
RATE_METRICS = catalogue.names(catalogue.RATE)
COUNTER_METRICS = catalogue.names(catalogue.COUNTER)
KNOWN_METRICS = tuple(m.name for m in catalogue.CATALOGUE)
#: Aggregations each known metric accepts (``p`` stands for every ``p(N)``).
METRIC_AGGREGATIONS: dict[str, tuple[str, ...]] = {m.name: m.aggregations for m in catalogue.CATALOGUE}
AGGREGATIONS = ("avg", "min", "max", "med", "p(N)", "rate", "count")
OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SELECTOR = re.compile(rf"^\s*({_IDENT})\s*(?:\{{(.*)\}})?\s*$", re.S)
_TAG = re.compile(rf'\s*({_IDENT})\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_EXPR = re.compile(r"^\s*(avg|min|max|med|count|rate|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|==|<|>)\s*"
                   r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\.\d+)\s*(%?)\s*$")
_ENTRY_KEYS = ("threshold", "abort_on_fail", "on_fail", "delay_abort_eval")
#: What a criterion may do when it fails during the run (``on_fail``): ``abort`` stops the run
#: (the same as ``abort_on_fail: true``), ``block_orders`` blocks new orders and lets the load and
#: the monitoring go on.
ON_FAIL_ACTIONS = ("abort", "block_orders")


def percentile_of(aggregation: str) -> float | None:
    """N of a ``p(N)`` aggregation (``p(99.9)`` → 99.9), else None."""
    if aggregation.startswith("p(") and aggregation.endswith(")"):
        return float(aggregation[2:-1])
    return None


@dataclass(frozen=True)
class Criterion:
    """One threshold on one metric selection, e.g. ``request{name="GET /api/v3/depth"} p(95)<200``."""

    metric: str
    """Metric name (``request``, ``ws_lag``, … or any identifier)."""
    tags: tuple[tuple[str, str], ...]
    """Tag filter, sorted by tag name (``(("name", "GET /api/v3/depth"),)``); empty = all samples."""
    expression: str
    """The normalised expression (``p(95)<200``)."""
    aggregation: str
    """``avg``, ``min``, ``max``, ``med``, ``p(N)``, ``rate`` or ``count``."""
    op: str
    """``<``, ``<=``, ``>``, ``>=`` or ``==``."""
    threshold: float
    """The number the aggregate is compared with (a ``%`` threshold is already divided by 100)."""
    abort_on_fail: bool = False
    """Stop the run as soon as the criterion fails during the run (live evaluation)."""
    delay_abort_eval_s: float = 0.0
    """Seconds after the start before a failure may abort the run (lets aggregates settle)."""
    source_key: str = ""
    """The selector exactly as written in the profile (for messages and reports)."""
    on_fail: str | None = None
    """What a failure during the run does: ``abort`` (also set by ``abort_on_fail: true``),
    ``block_orders`` (block new orders; the run goes on), or None (judged only)."""

    @property
    def percentile(self) -> float | None:
        """N of a ``p(N)`` aggregation, else None."""
        return percentile_of(self.aggregation)

    @property
    def selector(self) -> str:
        """``metric{tag="value",...}`` in canonical form."""
        if not self.tags:
            return self.metric
        return self.metric + "{" + ",".join(f'{k}="{v}"' for k, v in self.tags) + "}"

    @property
    def label(self) -> str:
        """``selector expression``, e.g. ``request{name="GET /api/v3/depth"} p(95)<200``."""
        return f"{self.selector} {self.expression}"

    def passes(self, value: float) -> bool:
        """Whether an aggregate ``value`` satisfies the threshold."""
        return bool(OPERATORS[self.op](value, self.threshold))


def parse_selector(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``'request{name="GET /api/v3/depth"}'`` → ``("request", (("name", "GET /api/v3/depth"),))``."""
    m = _SELECTOR.match(key)
    if not m:
        raise ValueError("invalid metric selector (expected metric or metric{tag=\"value\"})")
    metric, body = m.group(1), m.group(2)
    tags: dict[str, str] = {}
    if body is not None and body.strip():
        pos = 0
        while pos < len(body):
            t = _TAG.match(body, pos)
            if not t or t.end() == pos:
                raise ValueError(f"invalid tag list {{{body}}} (expected tag=\"value\", separated by commas)")
            name, value = t.group(1), t.group(2).replace('\\"', '"').replace("\\\\", "\\")
            if name in tags:
                raise ValueError(f"duplicate tag {name!r}")
            tags[name] = value
            pos = t.end()
            if t.group(3) == "" and pos < len(body):
                raise ValueError(f"invalid tag list {{{body}}}")
    return metric, tuple(sorted(tags.items()))


def parse_expression(text: str) -> tuple[str, str, float, str]:
    """``"p(95) < 200"`` → ``("p(95)", "<", 200.0, "p(95)<200")``."""
    m = _EXPR.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"invalid threshold {text!r} (expected <aggregation><op><number> such as "
                         f"'p(95)<200' or 'rate>99.9%'; aggregations {' '.join(AGGREGATIONS)}; "
                         f"operators {' '.join(OPERATORS)})")
    agg, pct, op, number, percent = m.groups()
    if pct is not None:
        n = float(pct)
        if not 0.0 < n <= 100.0:
            raise ValueError(f"percentile must be within (0, 100], got p({pct})")
        agg = f"p({pct.rstrip('0').rstrip('.') if '.' in pct else pct})"
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"invalid number {number!r}") from None
    if percent:
        if agg != "rate":
            raise ValueError(f"a % threshold only makes sense for rate, not {agg}")
        value = value / 100
    threshold = float(value)
    shown = f"{Decimal(number).normalize():f}{percent}" if percent else number
    return agg, op, threshold, f"{agg}{op}{shown}"


def parse_criteria(mapping: Any, source: str) -> tuple[Criterion, ...]:
    """Every criterion of a profile's ``criteria`` mapping; errors name ``source`` and the selector."""
    if mapping is None:
        return ()
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{source}: criteria: expected a mapping of metric selector to thresholds")
    out: list[Criterion] = []
    for key, entries in mapping.items():
        where = f"{source}: criteria[{str(key)!r}]"
        if not isinstance(key, str):
            raise ConfigError(f"{where}: the selector must be a string")
        try:
            metric, tags = parse_selector(key)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if isinstance(entries, (str, dict)):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{where}: expected a list of thresholds such as [\"avg<200\"]")
        for i, entry in enumerate(entries):
            out.append(_entry(metric, tags, key, entry, f"{where}[{i}]", source))
    return tuple(out)


def _entry(metric: str, tags: tuple[tuple[str, str], ...], key: str, entry: Any, where: str, source: str) -> Criterion:
    abort, delay = False, 0.0
    on_fail: str | None = None
    if isinstance(entry, dict):
        unknown = [k for k in entry if k not in _ENTRY_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(_ENTRY_KEYS)})")
        if "threshold" not in entry:
            raise ConfigError(f"{where}: missing required key 'threshold'")
        abort = entry.get("abort_on_fail", False)
        if not isinstance(abort, bool):
            raise ConfigError(f"{where}.abort_on_fail: expected true or false, got {abort!r}")
        if "on_fail" in entry:
            on_fail = entry["on_fail"]
            if on_fail not in ON_FAIL_ACTIONS:
                raise ConfigError(f"{where}.on_fail: expected one of {', '.join(ON_FAIL_ACTIONS)}, got {on_fail!r}")
            if abort and on_fail != "abort":
                raise ConfigError(f"{where}: abort_on_fail: true and on_fail: {on_fail} contradict each other "
                                  "(keep one)")
            abort = abort or on_fail == "abort"
        elif abort:
            on_fail = "abort"
        if "delay_abort_eval" in entry:
            try:
                delay = parse_duration(entry["delay_abort_eval"], "delay_abort_eval", "")
            except ConfigError:
                raise ConfigError(f"{where}.delay_abort_eval: invalid duration "
                                  f"{entry['delay_abort_eval']!r}") from None
        entry = entry["threshold"]
    if not isinstance(entry, str):
        raise ConfigError(f"{where}: expected a threshold string such as \"avg<200\", got {entry!r}")
    try:
        agg, op, threshold, expression = parse_expression(entry)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    allowed = METRIC_AGGREGATIONS.get(metric)
    if allowed is not None and ("p" if agg.startswith("p(") else agg) not in allowed:
        names = ", ".join("p(N)" if a == "p" else a for a in allowed)
        raise ConfigError(f"{where}: {metric} does not support {agg} (use {names})")
    return Criterion(metric, tags, expression, agg, op, threshold, abort, delay, key, on_fail)


#: tags of a request type the catalogue does not name (a user's own ``X``: ``X{name, status}``)
OWN_REQUEST_TAGS: tuple[str, ...] = ("name", "status")
_PRODUCER_TEXT = {catalogue.ALWAYS: "every run", catalogue.ORDERS: "a user that places orders",
                  catalogue.API: "a user kind that calls the REST or WebSocket API"}


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" — did you mean {close[0]!r}?" if close else ""


def misnamed(criteria: Iterable[Criterion], source: str) -> list[str]:
    """Criteria that name what no run records: a name this close to a catalogued metric (a typo,
    not a request type of your own), or a tag the metric does not have. Each problem names
    ``source`` and the selector, with a did-you-mean. Checked when a profile loads."""
    problems: list[str] = []
    for c in criteria:
        where = f"{source}: criteria[{c.source_key or c.selector!r}]"
        m = catalogue.BY_NAME.get(c.metric)
        tags: tuple[str, ...]
        if m is None:
            hint = _did_you_mean(c.metric, KNOWN_METRICS)
            if hint:
                problems.append(f"{where}: unknown metric {c.metric!r}{hint} (a request type of your own "
                                f"code must not be this close to a metric's name)")
                continue
            tags = OWN_REQUEST_TAGS
        else:
            tags = m.tags
        for tag, _value in c.tags:
            if tag not in tags:
                problems.append(f"{where}: {c.metric} has no tag {tag!r}{_did_you_mean(tag, tags)} "
                                f"(its tags: {', '.join(tags) or 'none'})")
    return list(dict.fromkeys(problems))     # one line per selector, not per threshold


def unproduced(criteria: Iterable[Criterion], produces: Iterable[str], places_orders: bool,
               source: str) -> list[str]:
    """Criteria on a catalogued metric that none of the profile's user kinds produce
    (``UserMix.produces()``; orders or not) — they could only end inconclusive, unless a
    locustfile's own user classes produce it. Each problem names ``source``, the selector and
    what would produce it."""
    made = set(produces)
    problems: list[str] = []
    for c in criteria:
        m = catalogue.BY_NAME.get(c.metric)
        if m is not None and not catalogue.produced(c.metric, made, places_orders):
            makers = ", ".join(_PRODUCER_TEXT.get(k, f"users.{k}") for k in m.produced_by)
            problems.append(f"{source}: criteria[{c.source_key or c.selector!r}]: no user of this profile "
                            f"produces {c.metric} (it comes from {makers})")
    return list(dict.fromkeys(problems))
