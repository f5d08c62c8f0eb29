"""The criteria gate inside a Locust run: recording, live evaluation, abort_on_fail, final verdict.

* Local and worker processes record every measurement with a
  :class:`~letrade_perf.metrics.recorder.MetricsRecorder`. A worker ships each interval's
  snapshot with Locust's worker report (``data["letrade_metrics"]``, every 3 s and once more
  when it quits); the master merges them. A local process merges its own at each evaluation.
* The local (or master) process judges the criteria every ``gate.eval_every_s`` seconds after the
  test starts: a console line, the live state for the web UI's Criteria tab, ``abort_on_fail``
  (after the criterion's ``delay_abort_eval``), and a webhook when a criterion turns to fail.
* It follows the plan (:class:`~letrade_perf.criteria.achieved.Achieved`: the running users
  each second between test start and stop, workers lost, safety refusals, pacing) and notes an
  operator's stop (Ctrl-C, SIGTERM, the web UI's stop) while the test runs, and the time new
  orders were blocked (``letrade_orders_blocked``; a shortfall beyond ``tolerate.orders_blocked_s``).
* A criterion with ``on_fail: block_orders`` that turns to fail during the run blocks new orders
  (:meth:`~letrade_perf.harness.plugin.HarnessContext.block_orders`, by ``criterion``); the run
  goes on. It blocks again only after it passed in between (an operator's resume is respected).
* At ``quitting`` it merges the last snapshots, judges once more, compares with the baseline,
  decides the ending and the verdict (:mod:`letrade_perf.core.endings`), prints the table,
  writes ``summary.json``, ``junit.xml``, ``summary.md`` and ``summary.html`` and sets
  ``environment.process_exit_code`` to the verdict's exit code (0 pass, 99 a criterion failed,
  4 incomplete, 3 safety abort, 105 operator stop, 70 harness error, 2 configuration error).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

import gevent

from ..core import endings
from ..core.endings import EXIT_CONFIG, EXIT_PASS
from ..criteria.achieved import Achieved, untolerated
from ..criteria.evaluate import FAIL, PASS, format_value
from ..criteria.gate import Gate
from ..logs import CONSOLE_ENV
from ..metrics.recorder import MetricsRecorder, Snapshot
from ..reports.console import paint_verdict, planned_vs_achieved_lines, use_colour

if TYPE_CHECKING:
    from .plugin import HarnessContext, ProcessState
    from .selfmon import SelfMonitor

log = logging.getLogger("letrade_perf.criteria")

WIRE_KEY = "letrade_metrics"
SAMPLE_EVERY_S = 1.0
"""How often the running users are compared with the plan."""


def _console_progress():
    """The progress line's throttle and writer for this process (off with ``--quiet``)."""
    from ..logs import FORMAT_ENV, StatusLine
    from ..reports.console import ProgressThrottle, progress_every_s

    every = 0.0 if os.environ.get(CONSOLE_ENV) == "quiet" else progress_every_s(os.environ)
    return ProgressThrottle(every), StatusLine(logging.getLogger("letrade_perf.progress"),
                                               fmt=os.environ.get(FORMAT_ENV))


class LocustGate:
    """Wires a :class:`Gate` into one Locust process (see the module docstring).

    ``ctx`` is the process's shared :class:`~letrade_perf.harness.plugin.HarnessContext`;
    ``state`` the plugin's :class:`~letrade_perf.harness.plugin.ProcessState` (the master's worker
    reports, the metrics sink whose counters go into ``summary.json``)."""

    def __init__(self, ctx: HarnessContext, state: ProcessState, *, baseline: dict | None = None,
                 baseline_path: str | None = None, tolerance: float | None = None, notifier=None) -> None:
        self.ctx = ctx
        self.state = state
        self.gate = Gate(ctx.profile)
        self.baseline = baseline
        self.baseline_path = baseline_path
        self.tolerance = ctx.profile.gate.baseline_tolerance if tolerance is None else tolerance
        self.notifier = notifier
        self.recorder: MetricsRecorder | None = None
        self.stopped_by: str | None = None        # the abort_on_fail criterion that stopped the run
        self.summary: dict | None = None
        self.snapshot_listeners: list = []    # called with every drained Snapshot of this process
        self.final_listeners: list = []       # called with the summary dict at the end (local/master)
        self._failing: set[str] = set()
        self._block_fired: set[str] = set()   # on_fail: block_orders criteria that blocked while failing
        self.user_errors = 0                  # exceptions users of this process raised (cumulative)
        self.achieved = Achieved(ctx.profile)
        self.operator: str | None = None      # what an operator did to stop the running test
        self.operator_at: float | None = None
        self.harness_error: str | None = None
        self._loop = None
        self._sampler = None
        self._final_done = False
        self._progress_throttle, self._status = _console_progress()
        self.selfmon: SelfMonitor | None = None   # the process's generator_* measurements
        self._own: MetricsRecorder | None = None   # the master's recorder of its own generator_* samples

    # -- wiring ----------------------------------------------------------------------------------
    def register(self, environment) -> None:
        ctx = self.ctx
        events = environment.events
        if ctx.role != "master":
            self.recorder = MetricsRecorder(gauges=self._gauges)
            self.recorder.listen(events)
            if ctx.pacer is not None:   # seconds blocked by pacing are wanted seconds (uptime)
                self.recorder.watch_pacing(ctx.pacer)
            events.user_error.add_listener(self.on_user_error)
        self._start_selfmon(environment)
        if ctx.role == "worker":
            events.report_to_master.add_listener(self.on_report_to_master)
            events.quitting.add_listener(self._close_recorder)
            return
        if ctx.role == "master":
            events.worker_report.add_listener(self.on_worker_report)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        hook = getattr(events, "letrade_abort", None)
        if hook is not None:
            hook.add_listener(self.on_abort)
        blocked = getattr(events, "letrade_orders_blocked", None)
        if blocked is not None:
            blocked.add_listener(self.on_orders_blocked)
        web_ui = getattr(environment, "web_ui", None)
        if web_ui is not None:
            web_ui.app.before_request(self._on_web_request)
        self._loop = gevent.spawn(self._live)
        self._sampler = gevent.spawn(self._sample)

    def _start_selfmon(self, environment) -> None:
        """The generator's self-monitoring (``generator_*``): into this process's recorder (the
        master, which records nothing else, into one of its own, merged at each evaluation)."""
        settings = getattr(self.ctx.profile, "generator", None)
        if settings is None or not settings.enabled:
            return
        from .selfmon import SelfMonitor, process_name

        recorder = self.recorder
        if recorder is None:
            recorder = self._own = MetricsRecorder(samples_dir="")   # not a sample-recording process
        role = self.ctx.role
        self.selfmon = SelfMonitor(recorder.record, recorder.count, lambda: process_name(role, environment.runner),
                                   cpu_percent=settings.cpu_percent,
                                   loop_lag_p99_ms=settings.loop_lag_p99_ms,
                                   lag_cpu_percent=settings.lag_cpu_percent).start()

    def _own_snapshot(self) -> None:
        """The master's own generator samples, merged into the gate."""
        if self._own is not None:
            self.gate.merge(self._own.drain(), source="master")

    def _gauges(self) -> dict:
        out = {"user_errors": self.user_errors}
        pacer = self.ctx.pacer
        if pacer is not None:
            st = pacer.stats()
            # weight_*: the per-interval "weight used vs budget" of summary.json["intervals"] (the charts)
            out.update(r429=st.r429, r418=st.r418, weight_used=st.weight_used, weight_budget=st.weight_budget)
        return out

    def on_user_error(self, user_instance=None, exception=None, tb=None, **_kw) -> None:
        """Locust's ``user_error``: an exception a user raised out of a task or on_start/on_stop."""
        self.user_errors += 1

    # -- listeners -----------------------------------------------------------------------------
    def on_test_start(self, **_kw) -> None:
        self.gate.start()
        self.achieved.start()
        opts = self.ctx.environment.parsed_options
        run_time = getattr(opts, "run_time", None) if opts is not None else None
        planned = self.ctx.profile.duration_s
        if run_time and run_time + self.ctx.profile.tolerate.short_run_s < planned:
            log.warning("a run time of %g s (--run-time, LOCUST_RUN_TIME or a locust.conf) cuts the profile's %g s "
                        "short: the run will be INCOMPLETE", run_time, planned)

    def on_test_stop(self, **_kw) -> None:
        self.achieved.stop()

    def note_operator(self, what: str) -> None:
        """An operator asked to stop (a signal, the web UI's stop): it is the run's ending when the
        test was still running and nothing else had ended it."""
        if self.operator is None and self.achieved.running and self.stopped_by is None and not self.ctx.aborted:
            self.operator = what
            self.operator_at = time.time()
            log.warning("%s: the test stops before its plan's end (ending: operator)", what)

    def _on_web_request(self) -> None:
        from flask import request
        if request.path.rstrip("/").endswith("/stop") and request.method == "POST":
            self.note_operator("the web UI's stop")

    def _sample(self) -> None:
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            runner = self.ctx.environment.runner
            if runner is not None and self.achieved.running:
                try:
                    self.achieved.sample(int(runner.user_count))
                except Exception:      # never take the run down
                    log.exception("sampling the running users failed")

    def drain(self) -> Snapshot:
        """The recorder's interval so far, also handed to every snapshot listener (the sink)."""
        recorder = self.recorder
        assert recorder is not None   # called only where the process records (recorder set)
        snap = recorder.drain()
        for listener in self.snapshot_listeners:
            try:
                listener(snap)
            except Exception:
                log.exception("snapshot listener failed")
        return snap

    def on_report_to_master(self, client_id=None, data=None, **_kw) -> None:
        if data is not None and self.recorder is not None:
            data[WIRE_KEY] = self.drain().to_wire()

    def on_worker_report(self, client_id=None, data=None, **_kw) -> None:
        wire = (data or {}).get(WIRE_KEY)
        if wire:
            try:
                self.gate.merge(Snapshot.from_wire(wire), source=str(client_id))
            except (KeyError, TypeError, ValueError) as e:
                log.error("unreadable metrics from worker %s: %s", client_id, e)

    def on_orders_blocked(self, blocked: bool = False, **_kw) -> None:
        """New orders blocked or resumed: the plan's time without orders (``achieved``)."""
        self.achieved.orders_blocked(bool(blocked))

    def on_abort(self, reason=None, **_kw) -> None:
        if self.notifier is not None:
            self.notifier.abort(self._run_info(), str(reason))

    def _close_recorder(self, **_kw) -> None:
        if self.selfmon is not None:
            self.selfmon.stop()
        if self.recorder is not None:
            self.recorder.close()

    # -- live ------------------------------------------------------------------------------------
    def evaluate_now(self):
        if self.recorder is not None:
            self.gate.merge(self.drain())
        self._own_snapshot()
        return self.gate.evaluate()

    def _live(self) -> None:
        every = self.ctx.profile.gate.eval_every_s
        while True:
            gevent.sleep(every)
            if self.gate.started_at is None or self._final_done:
                continue
            try:
                results = self.evaluate_now()
                log.debug("%s", self.gate.console_line())
                self._progress(results)
                self._after_live(results)
            except Exception:   # the gate must never take the run down
                log.exception("live criteria evaluation failed")

    def _progress(self, results) -> None:
        """The live progress line, at most once per ``LETRADE_PROGRESS_EVERY_S`` (none with
        ``letrade-perf run --quiet``); only the local or master process evaluates, so a distributed
        run prints it once. Not once the test has stopped (the web UI's process runs on)."""
        if not self.achieved.running or not self._progress_throttle.due():
            return
        from ..criteria.achieved import planned_users
        from ..reports.console import progress_line

        runner = self.ctx.environment.runner
        total = runner.stats.total if runner is not None else None
        opts = self.ctx.environment.parsed_options
        run_time = getattr(opts, "run_time", None) if opts is not None else None
        planned = self.ctx.profile.duration_s
        failing = [r for r in results if r.verdict == FAIL]
        snap = {"started_at": self.gate.started_at, "planned_s": min(planned, run_time) if run_time else planned,
                "users": int(runner.user_count) if runner is not None else 0,
                "users_planned": planned_users(self.ctx.profile, self.gate.elapsed_s())[0],
                "rps": float(total.current_rps) if total is not None else 0.0,
                "requests": int(total.num_requests) if total is not None else 0,
                "failures": int(total.num_failures) if total is not None else 0,
                "passing": sum(r.verdict == PASS for r in results), "failing": len(failing),
                "pending": sum(r.verdict not in (PASS, FAIL) for r in results),
                "failing_labels": [f"{r.criterion.label} = {format_value(r.value, r.unit)}" for r in failing]}
        self._status.show(progress_line(snap, self.gate.clock()))

    def _after_live(self, results) -> None:
        elapsed = self.gate.elapsed_s()
        now_failing = {r.criterion.label for r in results if r.verdict == FAIL}
        for r in results:
            if r.verdict == FAIL and r.criterion.label not in self._failing and self.notifier is not None:
                self.notifier.criterion_failed(self._run_info(), r.to_dict())
        self._block_on_fail(results, elapsed)
        self._failing = now_failing
        if self.stopped_by is not None or self.ctx.aborted:
            return
        for r in results:
            c = r.criterion
            if c.abort_on_fail and r.verdict == FAIL and elapsed >= c.delay_abort_eval_s:
                self.stop_run(r)
                break

    def _block_on_fail(self, results, elapsed: float) -> None:
        """``on_fail: block_orders``: a criterion that turned to fail (after its
        ``delay_abort_eval``) blocks new orders; one still failing does not block again."""
        if self.ctx.aborted:
            return
        for r in results:
            c = r.criterion
            if getattr(c, "on_fail", None) != "block_orders" or r.verdict != FAIL or elapsed < c.delay_abort_eval_s:
                continue
            if c.label in self._block_fired:
                continue
            self._block_fired.add(c.label)
            log.error("criterion %s failed (%s) and has on_fail: block_orders: blocking new orders", c.label,
                      format_value(r.value, r.unit))
            self.ctx.block_orders(reason=f"criterion {c.label} failed", by="criterion")
        # a criterion that passes again may block again when it fails again
        self._block_fired &= {r.criterion.label for r in results if r.verdict == FAIL}

    def stop_run(self, result) -> None:
        """``abort_on_fail``: stop the whole run now (ending ``criteria``, exit code 99)."""
        label = result.criterion.label
        self.stopped_by = label
        log.error("criterion %s failed (%s) and has abort_on_fail: stopping the run", label,
                  format_value(result.value, result.unit))
        if self.notifier is not None:
            self.notifier.abort(self._run_info(), f"abort_on_fail: {label} = {format_value(result.value, result.unit)}")
        gevent.spawn(self._stop)

    def _stop(self) -> None:
        ctx = self.ctx
        if ctx.role != "master":
            ctx.kill_switch()
        runner = ctx.environment.runner
        if runner is not None:
            runner.quit()

    # -- final -----------------------------------------------------------------------------------
    def on_quitting(self, environment=None, **_kw) -> None:
        if self._final_done:
            return
        self._final_done = True
        if self._loop is not None:
            self._loop.kill(block=False)
        ctx = self.ctx
        env = environment or ctx.environment
        gate = self.gate
        if self.selfmon is not None:
            self.selfmon.stop()
        if self.recorder is not None:
            gate.merge(self.drain())
            self.recorder.close()
        self._own_snapshot()
        gate.ended_at = time.time()
        self.achieved.stop()
        if self._sampler is not None:
            self._sampler.kill(block=False)
        results = gate.evaluate()
        baseline_section = None
        if self.baseline is not None:
            baseline_section = self._compare_baseline()
        ending, reason = self._ending(env)
        # a criterion made inconclusive by a saturated generator is no failure of the system under
        # test: the run is INCOMPLETE for it (a shortfall), unless another criterion failed
        criteria_failed = (any(r.gate == FAIL and not r.generator_saturated for r in results)
                           or self.stopped_by is not None
                           or (baseline_section is not None and baseline_section["verdict"] == "fail"))
        achieved = self._achieved(judge_plan=ending in (endings.COMPLETED, endings.LOST_WORKER))
        if gate.generator_saturated():
            achieved.setdefault("shortfalls", []).append(
                {"kind": "generator_saturated", "tolerated": False,
                 "message": gate.generator.saturation(gate.elapsed_s()).message()})
        verdict, code = endings.judge(ending, criteria_failed, len(untolerated(achieved)))
        gate.state = verdict
        env.process_exit_code = code
        self._print_final(results, code, baseline_section, verdict=verdict, ending=ending, reason=reason,
                          achieved=achieved)
        self.summary = gate.summary(run_id=ctx.run_id, env=ctx.env.name, host=env.host, target=ctx.env.urls(),
                                    workers=self._workers(), exit_code=code, aborted=ctx.aborted,
                                    extra=self._extra(baseline_section), verdict=verdict, ending=ending,
                                    ending_reason=reason, achieved=achieved)
        self.summary["run"]["stopped_by"] = self.stopped_by
        self._add_operations(self.summary)
        for listener in self.final_listeners:
            try:
                listener(self.summary)
            except Exception:
                log.exception("final listener failed")
        sink = self.state.sink
        if sink is not None:
            self.summary["sink"] = sink.stats()
        if ctx.reports_dir:
            self._write(self.summary, ctx.reports_dir)
        if self.notifier is not None:
            self.notifier.verdict(self.summary)
            self.notifier.flush(10.0)

    def _add_operations(self, summary: dict) -> None:
        """The operator controls' part of the summary: who ran it, the audit trail, the blocks."""
        ctx = self.ctx
        summary["run"]["operator"] = ctx.operator or None
        summary["run"]["audit"] = ctx.audit.path if ctx.audit is not None else None
        report = ctx.order_blocks.report()
        report["blocked_s"] = round(self.achieved.orders_blocked_s(), 3)   # of the test's time
        summary["orders_blocked"] = report

    def _lost_workers(self) -> list[dict]:
        """Workers lost while the test ran (not after an operator's stop or an abort, when the
        workers quit with the run)."""
        pacing = self.state.master_pacing
        lost_fn = getattr(pacing, "lost_workers", None)
        if lost_fn is None:
            return []
        lost = list(lost_fn())
        if self.operator_at is not None:
            lost = [w for w in lost if float(w.get("at") or 0) < self.operator_at]
        return lost

    def _ending(self, env) -> tuple[str, str | None]:
        """``(ending, reason)`` of this run (see :mod:`letrade_perf.core.endings`)."""
        from locust import log as locust_log

        ctx = self.ctx
        if ctx.aborted:
            return endings.SAFETY, ctx.aborted
        if env.process_exit_code == EXIT_CONFIG:
            return endings.CONFIG_ERROR, "configuration error (see the log)"
        if self.harness_error or locust_log.unhandled_greenlet_exception:
            return endings.HARNESS_ERROR, self.harness_error or "an unexpected error in Locust or an event handler " \
                                                                "(see the log: 'Uncaught exception' or 'Unhandled exception')"
        if self.stopped_by is not None:
            return endings.CRITERIA, f"abort_on_fail criterion {self.stopped_by} failed"
        if self.operator is not None:
            return endings.OPERATOR, self.operator
        if self.gate.started_at is None:
            if getattr(env, "web_ui", None) is not None:
                return endings.OPERATOR, "quit before the test was started"
            return endings.HARNESS_ERROR, "the test never started"
        lost = self._lost_workers()
        if lost:
            return endings.LOST_WORKER, f"{len(lost)} worker(s) lost: " + ", ".join(str(w.get("worker")) for w in lost)
        return endings.COMPLETED, None

    def _achieved(self, *, judge_plan: bool) -> dict:
        ctx = self.ctx
        opts = ctx.environment.parsed_options
        run_time = getattr(opts, "run_time", None) if opts is not None else None
        s = ctx.summary()
        counts = s.get("orders") or {}
        if ctx.role == "master":
            reports = list((s.get("workers") or {}).values())
            stops: dict[str, int] = {}
            for r in reports:
                for k, v in (r.get("strategy_stops") or {}).items():
                    stops[k] = stops.get(k, 0) + int(v)
            waits = [float((r.get("pacer") or {}).get("wait_s_total") or 0) for r in reports]
            paced = sum(waits) if reports else None
            opts_workers = getattr(opts, "expect_workers", 0) if opts is not None else 0
            workers = int(opts_workers or 0)
        else:
            stops = dict(ctx.strategy_stops)
            pacer = s.get("pacer") or {}
            paced = float(pacer["wait_s_total"]) if "wait_s_total" in pacer else None
            workers = 0
        return self.achieved.report(run_time_s=float(run_time) if run_time else None, workers_planned=workers,
                                    workers_lost=self._lost_workers(), safety_refusals=int(counts.get("refused", 0)),
                                    strategies_stopped=stops, paced_s=paced, user_errors=self._user_errors(),
                                    judge_plan=judge_plan)

    def _user_errors(self) -> int:
        """Exceptions users raised (every process's, from the merged ``user_errors`` gauge)."""
        return max(int(self.gate.store.gauge("user_errors")), self.user_errors)

    def _compare_baseline(self) -> dict | None:
        from ..reports import compare_summaries

        current = self.gate.summary(run_id=self.ctx.run_id, env=self.ctx.env.name, host=None, workers=0,
                                    exit_code=0, aborted=None)
        baseline = self.baseline
        assert baseline is not None   # called only with a baseline (on_quitting checks)
        try:
            comparison = compare_summaries(baseline, current, self.tolerance)
        except Exception as e:
            log.error("baseline comparison failed: %s", e)
            return {"path": self.baseline_path or "", "tolerance": self.tolerance, "verdict": "fail",
                    "regressions": [], "checked": 0}
        section = comparison.to_dict()
        section["rows"] = [dict(r) for r in comparison.rows]     # every figure with its verdict
        section["path"] = self.baseline_path or ""
        return section

    def _print_final(self, results, code: int, baseline_section, *, verdict: str, ending: str,
                     reason: str | None, achieved: dict) -> None:
        gate = self.gate
        failed = [r for r in results if r.gate == FAIL]
        lines = ["", f"letrade-perf criteria — {self.ctx.profile.name} on {self.ctx.env.name}, run {self.ctx.run_id}",
                 gate.table()]
        if baseline_section is not None:
            regs = baseline_section.get("regressions") or []
            lines.append(f"baseline {baseline_section.get('path')}: {len(regs)} regression(s) beyond "
                         f"{baseline_section.get('tolerance', 0) * 100:g} %")
            for reg in regs[:20]:
                lines.append(f"  REGRESSION {reg.get('kind')} {reg.get('key')} {reg.get('figure')}: "
                             f"{reg.get('baseline')} → {reg.get('current')}")
        lines += planned_vs_achieved_lines(achieved)
        regs_n = len((baseline_section or {}).get("regressions") or [])
        head = f"verdict: {verdict.upper()} — ending {ending}" + (f" ({reason})" if reason else "")
        lines.append(head + f" — {len(results) - len(failed)} of {len(results)} criteria passed"
                     + (f", {regs_n} baseline regression(s)" if regs_n else "") + f" — exit code {code}")
        for r in failed:
            if r.generator_saturated:    # the shortfall below says why and what to do
                lines.append(f"  INCONCLUSIVE: {r.criterion.label} = {format_value(r.value, r.unit)} "
                             "(the load generator was saturated)")
                continue
            lines.append(f"  FAILED: {r.criterion.label} = {format_value(r.value, r.unit)}"
                         + (f" ({r.reason})" if r.reason else ""))
        for sf in untolerated(achieved):
            lines.append(f"  SHORTFALL: {sf['kind']}: {sf['message']}")
        text = "\n".join(lines) + "\n"
        self._status.close()
        if os.environ.get(CONSOLE_ENV):
            # under `letrade-perf run`, which prints the verdict block last (after Locust's tables)
            # from summary.json: here one log line, not the same block twice
            log.info("%s", head + f" — exit code {code} (the verdict block follows when Locust has exited)")
        else:
            if use_colour(sys.stdout, os.environ):
                word = f"verdict: {verdict.upper()}"
                text = text.replace(word, paint_verdict(word, verdict, True), 1)
            sys.stdout.write(text)
            sys.stdout.flush()
        for r in failed:
            if r.generator_saturated:
                continue
            log.error("criterion failed: %s = %s%s", r.criterion.label, format_value(r.value, r.unit),
                      f" ({r.reason})" if r.reason else "")

    def _workers(self) -> int:
        runner = self.ctx.environment.runner
        if self.ctx.role == "master":
            return max(len(self.state.worker_reports), getattr(runner, "worker_count", 0) or 0)
        return 0

    def _extra(self, baseline_section) -> dict:
        ctx = self.ctx
        s = ctx.summary()
        if ctx.role == "master":
            workers = s.get("workers") or {}
            pacing = {cid: r.get("pacer") for cid, r in workers.items()} or None
            ws = {cid: r.get("ws") for cid, r in workers.items()} or None
        else:
            pacing, ws = s.get("pacer"), s.get("ws")
        return {"baseline": baseline_section, "orders": s.get("orders") or {}, "pacing": pacing, "ws": ws,
                "sink": None}

    def _write(self, summary: dict, reports_dir: str) -> None:
        try:
            from ..reports import write_reports
            paths = write_reports(summary, reports_dir)
            log.info("reports: %s", ", ".join(os.path.basename(p) for p in paths.values()))
        except Exception as e:
            log.error("could not write the reports: %s", e)
            if self.ctx.environment.process_exit_code == EXIT_PASS:
                self.ctx.environment.process_exit_code = EXIT_CONFIG

    def _run_info(self) -> dict:
        ctx = self.ctx
        return {"run_id": ctx.run_id, "profile": ctx.profile.name, "env": ctx.env.name}
