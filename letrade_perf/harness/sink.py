"""The InfluxDB sink inside a Locust run: :func:`install_sink` wires an :class:`InfluxSink` into one
process (the plugin's :class:`~letrade_perf.harness.plugin.ProcessState` keeps it as ``sink``). The
schema is in ``docs/metrics.md``.

* Local and worker processes: every snapshot the criteria gate drains (a local process every
  ``gate.eval_every_s`` and at the end; a worker with each Locust report, every 3 s, and once more
  when it quits) goes to :meth:`InfluxSink.add_snapshot`, which emits ``request`` and ``ws_lag``
  points per ``sink.interval_s`` plus ``pacing``, ``users`` and ``sink`` points. In raw mode the
  ``request`` event (except ``WS`` messages, whose lag arrives on ``letrade_ws_lag``) and
  ``letrade_ws_lag`` also become one point per sample.
* Local and master processes: the ``run`` start annotation on ``test_start``; at the end (a
  final listener of the gate, after the last snapshot) one ``criteria`` point per criterion, the
  ``run`` stop annotation, then :meth:`InfluxSink.close` — so ``summary.json["sink"]`` holds the
  final counts. A worker closes its sink on ``quitting`` (its last report is already drained).
* Master: ``users`` and ``sink`` points every interval; each worker's sink counters arrive with
  its Locust report (``data["letrade_sink"]``) and are added to the master's
  :meth:`InfluxSink.stats` (totals plus ``by_worker``).

Configuration: the profile's ``sink:`` section and the ``LETRADE_INFLUX_*`` environment variables
(``letrade-perf run --influx-*`` sets them); see :func:`~letrade_perf.metrics.sink.resolve_sink_config`.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Mapping

import gevent

from ..metrics.sink import InfluxSink, ProcessGauges, resolve_sink_config, run_fields

if TYPE_CHECKING:
    from .plugin import HarnessContext, ProcessState

log = logging.getLogger("letrade_perf.metrics.sink")

WIRE_KEY = "letrade_sink"
CLOSE_TIMEOUT_S = 10.0
"""How long the end of the run waits for the sink to flush (the rest is counted as dropped)."""


def worker_tag(role: str, runner) -> str:
    """``local`` | ``master`` | ``worker-<index>`` (Locust's worker index, known once connected)."""
    if role != "worker":
        return role
    index = getattr(runner, "worker_index", -1)
    if isinstance(index, int) and index >= 0:
        return f"worker-{index}"
    return f"worker-{str(getattr(runner, 'client_id', 'x'))[-8:]}"


def install_sink(ctx: HarnessContext, state: ProcessState, environment, *,
                 environ: Mapping[str, str] | None = None) -> InfluxSink | None:
    """Build the process's sink from the profile's ``sink:`` section and the ``LETRADE_INFLUX_*``
    variables and wire it into the run (see the module docstring) through ``state.gate``; sets
    ``state.sink``. None (and nothing installed) when no InfluxDB URL is configured. Raises
    :class:`~letrade_perf.core.errors.ConfigError` on a bad setting."""
    config = resolve_sink_config(getattr(ctx.profile, "sink", None), os.environ if environ is None else environ)
    if config is None:
        return None
    role = ctx.role
    runner = environment.runner
    worker = worker_tag(role, runner)

    def user_count() -> int:
        r = environment.runner
        return int(getattr(r, "user_count", 0) or 0) if r is not None else 0

    def pacer_stats():
        return ctx.pacer.stats() if ctx.pacer is not None else None

    gauges = ProcessGauges(role, user_count, pacer_stats)
    base = {"run_id": ctx.run_id, "profile": ctx.profile.name, "env": ctx.env.name, "worker": worker}
    sink = InfluxSink(config, base, interval_points=gauges)
    state.sink = sink
    events = environment.events
    gate = state.gate
    assert gate is not None   # the plugin installs the gate first
    label = f"{ctx.profile.name} on {ctx.env.name}"

    if role != "master":
        gate.snapshot_listeners.append(sink.add_snapshot)
        if config.mode == "raw":
            _install_raw(sink, events)

    if role == "worker":
        def on_report_to_master(data=None, **_kw) -> None:
            if data is not None:
                data[WIRE_KEY] = {"worker": worker, "stats": sink.own_stats(), "rps": gauges.rps,
                                  "fail_rps": gauges.fail_rps}

        def on_quitting(**_kw) -> None:
            # Locust fires quitting after the worker's last report (whose snapshot is drained)
            sink.close(CLOSE_TIMEOUT_S)

        events.report_to_master.add_listener(on_report_to_master)
        events.quitting.add_listener(on_quitting)
    else:
        fields = run_fields()            # git rev-parse now, not during the run
        ticker: list = []

        def on_test_start(**_kw) -> None:
            sink.add_run_start(label, fields)
            if role == "master" and not ticker:
                ticker.append(gevent.spawn(_tick, sink))

        def on_final(summary: dict) -> None:
            # the gate calls this after its last drain and verdict, before writing the reports
            # (and before it copies sink.stats() into summary.json): close here, after the last point
            sink.add_run_end(summary, label, fields)
            for g in ticker:
                g.kill(block=False)
            sink.close(CLOSE_TIMEOUT_S)

        events.test_start.add_listener(on_test_start)
        gate.final_listeners.append(on_final)
        if role == "master":
            def on_worker_report(client_id=None, data=None, **_kw) -> None:
                d = (data or {}).get(WIRE_KEY)
                if not isinstance(d, dict):
                    return
                name = str(d.get("worker") or client_id)
                if isinstance(d.get("stats"), dict):
                    sink.add_remote_stats(name, d["stats"])
                gauges.worker_rps[name] = (float(d.get("rps") or 0.0), float(d.get("fail_rps") or 0.0))

            events.worker_report.add_listener(on_worker_report)
    log.info("metrics sink: InfluxDB at %s, bucket %s, %s mode, %gs intervals, worker tag %s",
             config.display_url, config.bucket, config.mode, config.interval_s, worker)
    return sink


def _tick(sink: InfluxSink) -> None:
    while not sink.closed:
        gevent.sleep(sink.config.interval_s)
        try:
            sink.tick()
        except Exception:
            log.exception("metrics sink: interval tick failed")


def _install_raw(sink: InfluxSink, events) -> None:
    add_request, add_lag = sink.add_raw_request, sink.add_raw_ws_lag

    def on_request(request_type=None, name=None, response_time=None, exception=None, **_kw) -> None:
        if request_type == "WS" or response_time is None:
            return
        try:
            add_request("ws_connection" if request_type == "WSCONN" else str(request_type), str(name),
                        exception is None, response_time)
        except (TypeError, ValueError):
            pass

    def on_ws_lag(stream=None, lag_ms=None, uncertainty_ms=None, **_kw) -> None:
        if lag_ms is None:
            return
        try:
            add_lag(str(stream), lag_ms, uncertainty_ms)
        except (TypeError, ValueError):
            pass

    events.request.add_listener(on_request)
    hook = getattr(events, "letrade_ws_lag", None)
    if hook is not None:
        hook.add_listener(on_ws_lag)
