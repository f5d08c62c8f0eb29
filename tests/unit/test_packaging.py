"""Packaging facts that a wrong edit would silently break: the lower bounds CI tests are the
ones pyproject.toml declares, and the package data the installed tool needs is declared."""
from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_lowest_constraints_pin_exactly_the_declared_lower_bounds():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    bounds = {}
    for dep in deps:
        m = re.match(r"^([A-Za-z0-9_.-]+)>=([0-9][^;,\s]*)", dep)
        assert m, f"runtime dependency without a tested lower bound: {dep!r}"
        bounds[m.group(1).lower()] = m.group(2)
    pins = {}
    with open(os.path.join(ROOT, ".ci", "constraints-lowest.txt"), encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                pins[name.strip().lower()] = version.strip()
    from packaging.version import Version

    assert set(pins) == set(bounds)
    assert {k: Version(v) for k, v in pins.items()} == {k: Version(v) for k, v in bounds.items()}


def test_the_locustfile_and_data_are_inside_the_package():
    from letrade_perf.core import resources

    assert os.path.isfile(resources.locustfile_path())
    for path in (resources.locustfile_path(), resources.profiles_dir(), resources.dashboards_dir()):
        assert os.path.realpath(path).startswith(os.path.join(ROOT, "letrade_perf") + os.sep), path
    assert {"smoke.yaml", "production-canary.yaml"} <= set(os.listdir(resources.profiles_dir()))
    assert {"letrade-live.json", "letrade-trends.json"} <= set(os.listdir(resources.dashboards_dir()))
    # the HTML report inlines the chart script and the vendored ECharts, shipped with their licence
    reports = os.path.join(ROOT, "letrade_perf", "reports")
    assert {"echarts.min.js", "LICENSE", "NOTICE"} <= set(os.listdir(os.path.join(reports, "vendor")))
    assert os.path.isfile(os.path.join(reports, "charts.js"))
