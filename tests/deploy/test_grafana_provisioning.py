"""Structure of the Grafana provisioning files and the two dashboards (no Grafana needed).

What Grafana would only tell us at load time, or show as an empty panel: the datasource uid every
panel uses, where the dashboards provider looks (and that compose mounts it there), unique panel
ids and non-overlapping grid positions, raw InfluxQL in every target, template variables that
exist, and measurements/fields/tags that are in the sink's schema.
"""
from __future__ import annotations

import re

import grafana_json as g
import pytest

LIVE, TRENDS = "letrade-live", "letrade-trends"


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    out = {}
    for path in g.dashboard_files():
        d = g.load_dashboard(path)
        assert d["uid"] not in out, f"duplicate dashboard uid {d['uid']}"
        out[d["uid"]] = d
    return out


@pytest.fixture(scope="module")
def compose() -> dict:
    return g.load_yaml(g.COMPOSE_FILE)


def _env(service: dict) -> dict:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def _mounts(service: dict) -> dict[str, str]:
    """container path -> host path (short volume syntax, as docker-compose.yml uses)."""
    out = {}
    for v in service.get("volumes", []):
        parts = v.split(":")
        out[parts[1]] = parts[0]
    return out


# ------------------------------------------------------------------------ provisioning
def test_datasource_is_influxql_with_the_uid_the_dashboards_use():
    doc = g.load_yaml(g.DATASOURCE_FILE)
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["uid"] == g.DATASOURCE_UID
    assert ds["type"] == "influxdb"
    assert ds["access"] == "proxy"
    assert ds["url"] == "${LETRADE_INFLUX_URL}"
    assert ds["database"] == g.DATABASE
    jd = ds["jsonData"]
    assert jd["version"] == "InfluxQL"
    assert jd["dbName"] == g.DATABASE
    assert jd["httpMode"] in ("GET", "POST")
    assert jd["timeInterval"] == "5s"       # the sink's interval: never group finer
    # InfluxDB 2.x InfluxQL auth: a custom Authorization header carrying "Token <token>"
    assert jd["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token ${LETRADE_INFLUX_TOKEN}"


def test_datasource_environment_is_provided_by_compose(compose):
    text = g.DATASOURCE_FILE.read_text()
    needed = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", text))
    assert needed == {"LETRADE_INFLUX_URL", "LETRADE_INFLUX_TOKEN"}
    env = _env(compose["services"]["grafana"])
    assert needed <= set(env), f"grafana service lacks {needed - set(env)}"
    assert env["LETRADE_INFLUX_URL"] == "http://influxdb:8086"
    influx_env = _env(compose["services"]["influxdb"])
    assert env["LETRADE_INFLUX_TOKEN"] == influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]


def test_dashboard_provider_points_where_compose_mounts_the_dashboards(compose):
    doc = g.load_yaml(g.PROVIDER_FILE)
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path == "/var/lib/grafana/dashboards"
    mounts = _mounts(compose["services"]["grafana"])
    assert mounts[path] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning/datasources"] == "./deploy/grafana/provisioning/datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./deploy/grafana/provisioning/dashboards"
    home = _env(compose["services"]["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home.startswith(path + "/") and (g.DASHBOARD_DIR / home[len(path) + 1:]).is_file()


# ------------------------------------------------------------------------ dashboards
def test_both_dashboards_are_shipped(dashboards):
    assert set(dashboards) == {LIVE, TRENDS}
    assert dashboards[LIVE]["title"] == "letrade-perf — live run"
    assert dashboards[TRENDS]["title"] == "letrade-perf — trends across runs"
    assert dashboards[LIVE]["refresh"] == "5s"
    for d in dashboards.values():
        assert d["schemaVersion"] >= 39
        assert d["time"]["from"].startswith("now-") and d["time"]["to"] == "now"
        assert "id" not in d or d["id"] is None     # provisioned dashboards must not pin a db id


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_panels_have_unique_ids_and_non_overlapping_grid_positions(dashboards, uid):
    panels = list(g.iter_panels(dashboards[uid]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {uid}"
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        gp = p["gridPos"]
        assert all(isinstance(gp[k], int) for k in ("h", "w", "x", "y")), p["title"]
        assert gp["w"] >= 1 and gp["h"] >= 1 and 0 <= gp["x"] and gp["x"] + gp["w"] <= 24, p["title"]
        for x in range(gp["x"], gp["x"] + gp["w"]):
            for y in range(gp["y"], gp["y"] + gp["h"]):
                assert (x, y) not in cells, f"{uid}: panel {p['id']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_every_panel_queries_the_letrade_datasource_in_raw_influxql(dashboards, uid):
    for p in g.iter_panels(dashboards[uid]):
        if p["type"] in ("row", "text"):
            assert not p.get("targets"), p["title"]
            continue
        assert p.get("description"), f"panel {p['title']!r} has no description"
        assert p["datasource"] == g.DATASOURCE_REF, p["title"]
        targets = p.get("targets") or []
        assert targets, f"panel {p['title']!r} has no targets"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in targets:
            assert t["datasource"] == g.DATASOURCE_REF, p["title"]
            assert t["rawQuery"] is True, p["title"]
            assert t["query"].startswith("SELECT "), p["title"]
            assert "$timeFilter" in t["query"], f"{p['title']!r}: query without $timeFilter"
            assert t.get("resultFormat", "time_series") in ("time_series", "table"), p["title"]
            if "GROUP BY time(" in t["query"]:
                assert "GROUP BY time($__interval)" in t["query"], f"{p['title']!r}: fixed bucket size"
                assert p.get("interval") in ("5s", "1m"), f"{p['title']!r}: no minimum interval"


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_annotations_and_variables_use_the_letrade_datasource(dashboards, uid):
    d = dashboards[uid]
    custom = [a for a in d["annotations"]["list"] if not a.get("builtIn")]
    assert custom, f"{uid}: no run annotations"
    for a in custom:
        assert a["datasource"] == g.DATASOURCE_REF
        assert a["target"]["query"] == a["query"]
        assert a["target"]["fromAnnotations"] is True
        assert a["textColumn"] == a["target"]["textColumn"] == "text"
        assert 'FROM "run"' in a["query"]
    for v in d["templating"]["list"]:
        assert v["type"] == "query", v["name"]
        assert v["datasource"] == g.DATASOURCE_REF, v["name"]
        assert v["query"].startswith("SHOW TAG VALUES"), v["name"]
        assert v["definition"] == v["query"], v["name"]


def test_template_variables(dashboards):
    live = {v["name"]: v for v in dashboards[LIVE]["templating"]["list"]}
    assert list(live) == ["profile", "run_id", "worker", "request_type", "endpoint", "stream"]
    assert 'WITH KEY = "run_id" WHERE "profile" =~ /^$profile$/' in live["run_id"]["query"]
    assert 'FROM "request" WITH KEY = "name"' in live["endpoint"]["query"]
    assert 'FROM "ws_lag" WITH KEY = "stream"' in live["stream"]["query"]
    for name in ("worker", "request_type", "endpoint", "stream"):
        assert live[name]["multi"] and live[name]["includeAll"], name
    assert not live["run_id"]["multi"]
    trends = {v["name"]: v for v in dashboards[TRENDS]["templating"]["list"]}
    assert {"profile", "env", "request_type", "endpoint", "stream"} <= set(trends)


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_referenced_variables_exist_and_are_used_as_anchored_regexes(dashboards, uid):
    d = dashboards[uid]
    names = [v["name"] for v in d["templating"]["list"]]
    for i, v in enumerate(d["templating"]["list"]):
        # a variable may only depend on variables defined before it (Grafana resolves in order)
        assert g.referenced_variables(v["query"]) <= set(names[:i]), v["name"]
    for q in g.iter_queries(d):
        refs = g.referenced_variables(q.text)
        unknown = refs - set(names) - g.BUILTIN_VARIABLES
        assert not unknown, f"{q}: unknown variables {unknown}"
        for name in refs & set(names):
            # multi-value and All render as (a|b): only an anchored regex match is correct
            uses = re.findall(rf"(\S+\s+\S+\s+)/\^\${name}\$/", q.text)
            assert len(uses) == q.text.count(f"${name}"), f"{q}: ${name} used outside =~ /^${name}$/"
            assert all(u.split()[1] == "=~" for u in uses), f"{q}: ${name} with an operator other than =~"
    for p in g.iter_panels(d):
        for text in [p.get("title", ""), p.get("repeat") or ""] + [t.get("alias", "") for t in p.get("targets", [])]:
            # $tag_<tag> names a grouped tag (test_legend_aliases_name_grouped_tags checks which)
            unknown = {v for v in g.referenced_variables(text) - set(names) - g.BUILTIN_VARIABLES
                       if not v.startswith("tag_")}
            assert not unknown, f"{uid} panel {p['title']!r}: unknown variables {unknown}"
        if p.get("repeat"):
            assert p["repeat"] in names


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_queries_use_only_the_sink_schema(dashboards, uid):
    for q in g.iter_queries(dashboards[uid]):
        measurements = g.measurements_of(q.text)
        assert measurements, f"{q}: no measurement"
        assert measurements <= set(g.SCHEMA), f"{q}: unknown measurements {measurements - set(g.SCHEMA)}"
        known = set(g.COMMON_TAGS)
        for m in measurements:
            tags, fields = g.SCHEMA[m]
            known |= tags | fields
        aliases = set(g.select_columns(q.text)) if q.kind != "variable" else set()
        quoted = set(re.findall(r'"([^"]+)"', q.text)) - measurements - aliases
        assert quoted <= known, f"{q}: not in the schema of {measurements}: {quoted - known}"
        if q.kind != "variable":
            assert None not in g.select_columns(q.text), f"{q}: every computed column needs AS \"name\""
        for t in g.group_by_tags(q.text):
            assert any(t in g.SCHEMA[m][0] | g.COMMON_TAGS for m in measurements), f"{q}: GROUP BY field {t}"


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_legend_aliases_name_grouped_tags(dashboards, uid):
    for p in g.iter_panels(dashboards[uid]):
        for t in p.get("targets", []):
            for tag in re.findall(r"\$tag_([A-Za-z0-9_]+)", t.get("alias", "")):
                assert tag in g.group_by_tags(t["query"]), f"{p['title']!r}: alias $tag_{tag} without GROUP BY"


def test_live_dashboard_covers_the_run(dashboards):
    """The panels the live view promises: one per concern of the schema."""
    text = "\n".join(q.text for q in g.iter_queries(dashboards[LIVE]))
    for needle in ['sum("count") / ($__interval_ms / 1000)', 'sum("failures")', 'max("p95")', 'max("p99")',
                   'max("p50")', 'FROM "ws_lag"', 'max("uncertainty_ms")', '"weight_used"', '"weight_budget"',
                   '"r429"', '"r418"', '"wait_s"', 'FROM "users"', '"dropped"', '"written"', 'FROM "criteria"']:
        assert needle in text, needle
    titles = [p["title"] for p in g.iter_panels(dashboards[LIVE])]
    # percentiles of several workers cannot be merged in InfluxQL: the titles must say so
    assert all("worst worker" in t for t in titles if re.search(r"\bp(50|95|99)\b", t)), titles


def test_trends_dashboard_covers_the_runs(dashboards):
    text = "\n".join(q.text for q in g.iter_queries(dashboards[TRENDS]))
    for needle in ['FROM "criteria"', 'mean("passed")', 'SELECT "p95" FROM "run_percentiles"',
                   'SELECT "p99" FROM "run_percentiles"', '"metric" = \'ws_lag\'', '"verdict"', '"threshold"']:
        assert needle in text, needle
    # trends are the runs' merged percentiles, never maxima of interval percentiles
    for q in g.iter_queries(dashboards[TRENDS]):
        assert not g.measurements_of(q.text) & {"request", "ws_lag"}, f"{q}: interval points in a trend"
    table = next(p for p in g.iter_panels(dashboards[TRENDS]) if p["title"] == "Criteria verdicts per run")
    assert table["targets"][0]["resultFormat"] == "table"
    assert g.group_by_tags(table["targets"][0]["query"]) == ["run_id", "criterion", "verdict"]


#: latency panels: every one draws the run's threshold and keeps request types apart
LATENCY = re.compile(r'(max|mean|min)\("p(50|90|95|99)"\)|sum\("sum"\) / sum\("count"\)|SELECT "(p\d+|mean)"')


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_latency_panels_group_by_request_type_and_name(dashboards, uid):
    """Percentiles and means per request type and endpoint (or stream): never mixed across types."""
    seen = 0
    for p in g.iter_panels(dashboards[uid]):
        for t in p.get("targets", []):
            if not LATENCY.search(t["query"]):
                continue
            seen += 1
            tags = g.group_by_tags(t["query"])
            if g.measurements_of(t["query"]) == {"ws_lag"} or "'ws_lag'" in t["query"]:
                assert "stream" in tags, p["title"]
            elif g.measurements_of(t["query"]) == {"generator"}:    # one process's own health, per process
                assert "worker" in tags and "metric" in t["query"], p["title"]
            else:
                assert "request_type" in tags, f"{uid} {p['title']!r}: latency mixed across request types"
                if p["type"] != "stat":
                    assert "name" in tags, p["title"]
    assert seen >= 5


@pytest.mark.parametrize("uid", [LIVE, TRENDS])
def test_percentile_panels_draw_the_runs_thresholds(dashboards, uid):
    """A query B reads the criteria's threshold; "Config from query results" makes it the panel's
    threshold, drawn dashed."""
    panels = [p for p in g.iter_panels(dashboards[uid])
              if p["type"] == "timeseries" and re.search(r"\bp(95|99)\b", p["title"])]
    assert panels
    for p in panels:
        refs = {t["refId"]: t for t in p["targets"]}
        assert 'FROM "criteria"' in refs["B"]["query"] and 'min("threshold")' in refs["B"]["query"], p["title"]
        [tr] = [t for t in p.get("transformations", []) if t["id"] == "configFromData"]
        assert tr["options"]["configRefId"] == "B"
        assert tr["options"]["mappings"] == [{"fieldName": "threshold", "handlerKey": "threshold1",
                                              "reducerId": "min"}]
        assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "dashed"}


def test_live_panels_follow_the_template_variables(dashboards):
    """Every request query filters on run, worker, request type and endpoint (the trading panels on
    run and worker: their request types are fixed); every ws_lag query on the stream."""
    for q in g.iter_queries(dashboards[LIVE]):
        if q.kind == "variable":
            continue
        m = g.measurements_of(q.text)
        if m & {"request", "ws_lag", "pacing", "users", "sink", "orders", "balance", "pnl", "criteria", "run"}:
            assert "$run_id" in q.text, q
        if m == {"request"} and "'rejection_code'" not in q.text and "'expected_rejection'" not in q.text:
            assert "$request_type" in q.text and "$endpoint" in q.text, q
        if m == {"ws_lag"}:
            assert "$stream" in q.text, q


def test_live_dashboard_has_the_trading_panels(dashboards):
    text = "\n".join(q.text for q in g.iter_queries(dashboards[LIVE]))
    for needle in ['FROM "orders"', '"outcome" = \'filled\'', '"request_type" = \'rejection_code\'',
                   '"request_type" = \'expected_rejection\'', 'last("now")', 'last("unexplained")',
                   'last("realised_pnl")', 'last("return")']:
        assert needle in text, needle
    rows = [p["title"] for p in dashboards[LIVE]["panels"] if p["type"] == "row"]
    assert sum("PnL" in r for r in rows) == 1, rows
