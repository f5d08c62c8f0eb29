"""Run reports: ``summary.json`` (schema :data:`SCHEMA_VERSION`), ``junit.xml``, ``summary.md``, ``summary.html``, and
the comparison of a run with a baseline run.

The summary is a plain JSON-able dict built by the harness at the end of a run; its shape is
``summary.schema.json`` (:data:`SCHEMA_PATH`). Nothing here imports Locust or gevent: reports can
be rendered and compared from any process (``letrade-perf compare``, a CI script).

:func:`validate_summary` checks a summary with ``jsonschema`` (draft 2020-12) and names the JSON
path of the first problem (``$.criteria[2].verdict: ...``).
"""
from .compare import Comparison, compare_summaries, render_comparison
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown
from .schema import SCHEMA_PATH, SCHEMA_VERSION, validate_summary
from .summary import load_summary, minimal_summary, with_ending, write_reports

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "Comparison", "compare_summaries", "load_summary", "render_comparison",
           "minimal_summary", "render_html", "render_junit", "with_ending", "render_markdown", "validate_summary", "write_reports"]
