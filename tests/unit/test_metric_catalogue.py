"""The one metric catalogue: every bundled profile judges only metrics its users produce, the
README's metric table is the catalogue, and each metric is read from the series it names."""
from __future__ import annotations

import os
import re

import pytest

from letrade_perf.config import profile as prof
from letrade_perf.criteria.evaluate import effective_criteria, judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics import catalogue
from letrade_perf.metrics.recorder import MetricsRecorder, MetricsStore, Snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE_PROFILES = os.path.join(ROOT, "examples", "profiles")


def _profiles():
    out = [(name, prof.load_profile(name)) for name, _, _ in prof.list_profiles()]
    for f in sorted(os.listdir(EXAMPLE_PROFILES)):
        out.append((f, prof.load_profile(os.path.join(EXAMPLE_PROFILES, f))))
    return out


@pytest.mark.parametrize("name,p", _profiles(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_criterion_of_a_bundled_profile_names_a_metric_its_users_produce(name, p):
    active = p.users.active()
    custom = name.endswith(".yaml")          # example profiles drive the user's own classes
    for c, source in effective_criteria(p):
        made = catalogue.produced(c.metric, p.users.produces(), p.users.places_orders)
        assert made is not None, f"{name}: {c.label} ({source}) names no catalogued metric"
        if not custom:
            assert made, f"{name}: {c.label} ({source}) can never get a sample from users {sorted(active)}"


def test_the_readme_metric_table_is_the_catalogue():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    table = readme[readme.index("| metric | what | tags | unit |"):]
    table = table[:table.index("\n\n")]
    listed = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        if "any other request type" in first:
            continue
        listed |= set(re.findall(r"`([a-z_0-9]+)`", first))
    assert listed == set(catalogue.BY_NAME), (sorted(listed ^ set(catalogue.BY_NAME)))


def test_grammar_accepts_exactly_the_catalogues_aggregations():
    for m in catalogue.CATALOGUE:
        for agg in ("avg<1", "p(95)<1", "rate>50%", "count<=1"):
            key = agg.split("<")[0].split(">")[0].split("(")[0]
            ok = ("p" if key == "p" else key) in m.aggregations
            try:
                parse_criteria({m.name: [agg]}, "t.yaml")
                accepted = True
            except Exception:
                accepted = False
            assert accepted == ok, (m.name, agg)


def test_fill_to_balance_is_read_from_the_pipelines_userdata_series():
    rec = MetricsRecorder(clock=lambda: 1000.0, samples_dir="")
    for ms in (10.0, 20.0, 30.0):
        rec.on_request(request_type="userdata", name="fill_to_balance", response_time=ms)
    rec.on_request(request_type="userdata", name="executionReport", response_time=500.0)
    store = MetricsStore()
    store.merge(Snapshot.from_wire(rec.drain().to_wire()))
    (c,) = parse_criteria({"fill_to_balance": ["avg<100"]}, "t.yaml")
    r = judge(c, store, 10)
    assert (r.verdict, r.value, r.samples) == ("pass", 20.0, 3)
    (u,) = parse_criteria({"userdata": ["rate==100%"]}, "t.yaml")
    assert judge(u, store, 10).samples == 4
