"""Read the shipped Grafana provisioning and dashboards, and render their InfluxQL the way Grafana does.

Shared by the provisioning (structure) tests and the dashboard-query tests that run every query
against a real InfluxDB 1.x. No Grafana here: the substitution below follows Grafana's InfluxQL
backend (``pkg/tsdb/influxdb/models/query.go``: ``$timeFilter``, ``$interval``,
``$__interval_ms``, ``$__interval``) and its template-variable formatting for InfluxQL regexes
(each value regex-escaped, several values as ``(a|b)``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "letrade.yaml"
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "letrade.yaml"
COMPOSE_FILE = REPO / "docker-compose.yml"

DATASOURCE_UID = "letrade-influx"
DATASOURCE_REF = {"type": "influxdb", "uid": DATASOURCE_UID}
DATABASE = "letrade_perf"

#: The InfluxDB schema the sink writes: measurement -> (tags beyond run_id/profile/env, fields).
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "request": ({"worker", "request_type", "name", "status"},
                {"count", "failures", "sum", "mean", "min", "max", "p50", "p90", "p95", "p99", "hist"}),
    "ws_lag": ({"worker", "stream"},
               {"count", "sum", "mean", "min", "max", "p50", "p90", "p95", "p99", "uncertainty_ms", "hist"}),
    "pacing": ({"worker"}, {"weight_used", "weight_budget", "orders_used", "orders_budget", "wait_s", "waits",
                            "r429", "r418", "share"}),
    "users": ({"worker"}, {"count", "rps", "fail_rps"}),
    "criteria": ({"criterion", "metric", "verdict"}, {"value", "threshold", "passed", "samples"}),
    "run": ({"event"}, {"version", "git_commit", "text", "verdict", "exit_code", "duration_s"}),
    "sink": ({"worker"}, {"written", "dropped", "retries", "buffered"}),
    "generator": ({"worker", "metric", "process"},
                  {"count", "sum", "mean", "min", "max", "p50", "p90", "p95", "p99", "hist"}),
    "balance": ({"asset"}, {"start", "now", "delta", "unexplained", "open_orders", "weight"}),
    "pnl": ({"strategy"}, {"realised_pnl", "fees", "slippage_cost", "return"}),
    "orders": ({"worker", "outcome", "source"}, {"count"}),
    "run_percentiles": ({"metric", "request_type", "name", "stream"},
                        {"count", "failures", "mean", "p50", "p90", "p95", "p99", "max"}),
}
COMMON_TAGS = {"run_id", "profile", "env"}

#: Grafana's built-in variables a query may use (besides the dashboard's template variables).
BUILTIN_VARIABLES = {"timeFilter", "interval", "__interval", "__interval_ms", "__all", "__from", "__to",
                     "__range", "__range_s", "__range_ms", "__dashboard", "__org", "__user", "col"}

# $name, ${name}, ${name:format}, [[name]]
_VAR_RE = re.compile(r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
                     r"|\[\[(?P<bracket>[A-Za-z_][A-Za-z0-9_]*)\]\]")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        for inner in panel.get("panels", []) or []:
            yield inner


@dataclass(frozen=True)
class Query:
    """One InfluxQL text of a dashboard: a panel target, an annotation or a template variable."""

    dashboard: str
    where: str                 # "panel 12 'Requests/s' A", "variable run_id", "annotation Runs"
    text: str
    kind: str                  # "target" | "annotation" | "variable"
    result_format: str = "time_series"

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.where}"


def iter_queries(dashboard: dict) -> Iterator[Query]:
    uid = dashboard.get("uid", "?")
    for panel in iter_panels(dashboard):
        for t in panel.get("targets", []) or []:
            yield Query(uid, f"panel {panel.get('id')} {panel.get('title')!r} {t.get('refId')}", t.get("query", ""),
                        "target", t.get("resultFormat", "time_series"))
    for a in dashboard.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        text = (a.get("target") or {}).get("query") or a.get("query", "")
        yield Query(uid, f"annotation {a.get('name')!r}", text, "annotation", "table")
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q
            yield Query(uid, f"variable {v.get('name')}", q, "variable", "table")


def referenced_variables(text: str) -> set[str]:
    """Names of the variables a text refers to (``$x``, ``${x}``, ``${x:fmt}``, ``[[x]]``)."""
    out = set()
    for m in _VAR_RE.finditer(text):
        out.add(m.group("braced") or m.group("plain") or m.group("bracket"))
    return out


def regex_escape(value: str) -> str:
    """Grafana's ``escapeRegex`` (what it applies to template values inside InfluxQL regexes)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_regex_values(values: list[str]) -> str:
    """A variable's values as Grafana renders them into ``=~ /^$var$/``: escaped, ``(a|b)`` if several."""
    escaped = [regex_escape(v) for v in values]
    if len(escaped) == 1:
        return escaped[0]
    return "(" + "|".join(escaped) + ")"


def render(text: str, variables: dict[str, list[str]], *, interval: str = "10s", interval_ms: int = 10_000,
           time_filter: str = "time >= now() - 1h and time <= now()") -> str:
    """``text`` with Grafana's macros and the template ``variables`` (name -> selected values) substituted.

    ``$timeFilter`` becomes ``time_filter`` (Grafana: ``time >= <from>ms and time <= <to>ms``),
    ``$__interval``/``$interval`` the bucket (``10s``), ``$__interval_ms`` its milliseconds. A
    variable set to All is passed with all its values, as Grafana does without a custom allValue.
    Raises KeyError for a variable not in ``variables``."""
    out = text.replace("$timeFilter", time_filter)
    out = out.replace("${__interval_ms}", str(interval_ms)).replace("$__interval_ms", str(interval_ms))
    out = out.replace("${__interval}", interval).replace("$__interval", interval)
    out = out.replace("$interval", interval)

    def sub(m: re.Match) -> str:
        name = m.group("braced") or m.group("plain") or m.group("bracket")
        if name == "__all":
            raise KeyError("$__all outside a variable value")
        return format_regex_values(variables[name])

    return _VAR_RE.sub(sub, out)


_SELECT_RE = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<from>.+?)(?:\s+WHERE\s+|\s+GROUP\s+BY\s+|$)",
                        re.IGNORECASE | re.DOTALL)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses, quotes and regexes."""
    parts, depth, cur, quote = [], 0, [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if cur:
        parts.append("".join(cur).strip())
    return parts


def select_columns(query: str) -> list[str]:
    """The value columns a ``SELECT`` returns (after ``time``): each item's ``AS`` alias, or the
    bare field/tag name. Items that are neither (an unaliased expression) yield ``None``."""
    m = _SELECT_RE.match(query)
    if not m:
        raise ValueError(f"not a SELECT: {query!r}")
    cols = []
    for item in split_top_level(m.group("fields")):
        alias = re.search(r"\s+AS\s+\"?([^\"]+)\"?\s*$", item, re.IGNORECASE)
        bare = re.fullmatch(r"\"([^\"]+)\"", item.strip())
        cols.append(alias.group(1) if alias else (bare.group(1) if bare else None))
    return cols


def measurements_of(query: str) -> set[str]:
    """Measurement names after FROM (outer query only; subqueries are not used by the dashboards)."""
    m = re.search(r"\bFROM\s+(\"[^\"]+\"|/[^/]+/|[A-Za-z_][A-Za-z0-9_]*)", query, re.IGNORECASE)
    if not m:
        return set()
    name = m.group(1)
    if name.startswith("/"):
        return {n for n in SCHEMA if re.search(name.strip("/"), n)}
    return {name.strip('"')}


def group_by_tags(query: str) -> list[str]:
    """Tags named in ``GROUP BY`` (not ``time(...)``/``fill(...)``)."""
    m = re.search(r"\bGROUP\s+BY\s+(.+?)(?:\s+fill\(|\s+LIMIT\b|\s+ORDER\b|$)", query, re.IGNORECASE | re.DOTALL)
    if not m:
        return []
    return [p.strip().strip('"') for p in split_top_level(m.group(1)) if not p.strip().lower().startswith("time(")]
