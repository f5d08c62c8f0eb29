"""``letrade-perf run``: one command from a profile to a finished, reported Locust run.

- loads and validates the profile (errors name the file and key; exit 2);
- refuses production orders without ``--allow-production-orders`` (exit 3, production guard);
- resolves the target's three URLs (REST, streams, WebSocket API) once — from ``--env``,
  ``--host`` (a base all three derive from), ``--rest-url``/``--stream-url``/``--ws-api-url`` and
  the profile's ``target:`` block — and hands them to every Locust process;
- with env ``sim`` and no host, starts the embedded simulator on a free loopback port
  (with the profile's ``sim:`` settings) and stops it afterwards;
- before any user starts, checks what the profile needs (credentials, the target answering
  exchangeInfo, its symbols): a problem exits 2 within seconds, naming the variable or URL;
- runs Locust headless (default), with the web UI on 127.0.0.1 (``--web``), or as a local master
  plus N worker processes (``--workers N``), always as subprocesses stopped by PID;
- leaves Locust's HTML report and CSVs under ``reports/<run_id>/``;
- keeps the console readable: a throttled progress line during the run (printed by the gate of
  the Locust master or local process), Locust's periodic tables off, and the verdict block
  (:func:`final_console`, from ``summary.json``) printed last, after Locust's own tables;
  ``--quiet`` leaves only warnings, errors and that block;
- forwards SIGUSR1 (block new orders) and SIGUSR2 (resume) to the Locust master or local process,
  and passes ``--operator`` (the audit trail's operator) to every Locust process.

The exit code is the Locust master's, set by the criteria gate from the run's ending and verdict
(:mod:`letrade_perf.core.endings`: 0 pass, 99 a criterion failed, 4 incomplete, 3 safety abort,
105 operator stop, 70 harness error, 2 configuration error). When Locust ends without reports, or
with an exit code its reports do not say (a crash, a hang), this process writes them with the
ending it knows, so the files and the exit code always agree.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from .core.endings import EXIT_CONFIG, EXIT_SAFETY  # the codes of a run refused before it starts
from .core.procs import parent_death_preexec, stop_process
from .logs import CONSOLE_ENV, FORMAT_ENV

log = logging.getLogger("letrade_perf.run")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_run_id(profile_name: str, now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", profile_name).strip("-") or "run"
    return f"{now:%Y%m%dT%H%M%SZ}-{safe}"


@dataclass
class RunPlan:
    """Everything :func:`execute` needs, resolved from the command line and the profile."""

    profile_ref: str
    profile_name: str
    env: str
    host: str | None
    """A base URL for all three target URLs (None: the env's own; sim: an embedded simulator)."""
    run_id: str
    reports_dir: str
    web: bool
    workers: int
    key_file: str | None
    log_format: str
    extra: list[str]
    baseline: str | None = None
    tolerance: str | None = None
    webhooks: tuple[str, ...] = ()
    influx: dict | None = None
    rest_url: str | None = None
    stream_url: str | None = None
    ws_api_url: str | None = None
    log_level: str | None = None
    locustfile: str | None = None
    """A user's own locustfile (default: the bundled one)."""
    operator: str | None = None
    """Who runs the run (``--operator``), for the audit trail and the reports (default: the OS user)."""
    quiet: bool = False
    """``--quiet``: no progress line, no Locust stats tables; warnings, errors and the verdict block."""

    def target(self, sim_url: str | None = None):
        """The resolved :class:`~letrade_perf.config.environments.Environment` (ConfigError if bad)."""
        from .config.environments import environment
        return environment(self.env, sim_url or self.host, rest_url=self.rest_url, stream_url=self.stream_url,
                           ws_api_url=self.ws_api_url)

    @property
    def embeds_simulator(self) -> bool:
        return self.env == "sim" and self.host is None and self.rest_url is None


def locust_commands(plan: RunPlan, target, master_port: int | None = None) -> list[list[str]]:
    """The Locust command lines: one (local) or a master followed by N workers, every one with
    the same three resolved URLs of ``target``."""
    from .core.resources import locustfile_path

    base = [sys.executable, "-m", "locust", "-f", plan.locustfile or locustfile_path(), "--profile", plan.profile_ref,
            "--host", target.rest_url, "--letrade-stream-url", target.ws_stream_url,
            "--letrade-ws-api-url", target.ws_api_url, "--letrade-env", plan.env, "--letrade-run-id", plan.run_id,
            "--letrade-reports", plan.reports_dir]
    if plan.log_level:
        base += ["--loglevel", plan.log_level.upper()]
    if plan.key_file:
        base += ["--letrade-key-file", plan.key_file]
    if plan.operator:
        base += ["--operator", plan.operator]
    prefix = os.path.join(plan.reports_dir, "locust")
    head = list(base)
    if plan.baseline:
        head += ["--letrade-baseline", plan.baseline]
    if plan.tolerance:
        head += ["--letrade-tolerance", plan.tolerance]
    if plan.web:
        head += ["--web-host", "127.0.0.1"]
    else:
        head += ["--headless"]
        # the progress line replaces Locust's tables every 2 s (`-- --print-stats` brings them back)
        if plan.quiet or "--print-stats" not in plan.extra:
            head += ["--only-summary"]
    if plan.quiet and not plan.log_level:
        head += ["--loglevel", "WARNING"]
    head += ["--html", os.path.join(plan.reports_dir, "report.html"), "--csv", prefix]
    if plan.workers <= 0:
        return [head + plan.extra]
    port = master_port or _free_port()
    master = head + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                     "--expect-workers", str(plan.workers)] + plan.extra
    worker = base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return [master] + [list(worker) for _ in range(plan.workers)]


def _web_port(extra: list[str]) -> str:
    """The web UI port Locust will use (``--web-port N`` / ``-P N`` among the extra args; else 8089)."""
    for i, arg in enumerate(extra):
        if arg in ("--web-port", "-P") and i + 1 < len(extra):
            return extra[i + 1]
        if arg.startswith("--web-port="):
            return arg.split("=", 1)[1]
    return "8089"


def read_stats(reports_dir: str) -> list[dict]:
    path = os.path.join(reports_dir, "locust_stats.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_summary(reports_dir: str) -> dict | None:
    path = os.path.join(reports_dir, "summary.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _ms(v) -> str:
    return "" if v is None else f"{float(v):.1f}"


def render_summary(rows: list[dict], summary: dict | None = None) -> str:
    """A compact table of the run's requests: exact percentiles from ``summary.json`` when there
    is one, else Locust's final stats (one row per request type and name)."""
    head = ("type", "name", "requests", "failures", "avg ms", "p50", "p95", "p99", "max")
    body = []
    if summary and summary.get("endpoints"):
        for e in summary["endpoints"]:
            body.append((e["type"], e["name"], str(e["count"]), str(e["failures"]), _ms(e.get("avg_ms")),
                         _ms(e.get("p50_ms")), _ms(e.get("p95_ms")), _ms(e.get("p99_ms")), _ms(e.get("max_ms"))))
        for st in summary.get("streams") or []:
            body.append(("ws_lag", st["stream"], str(st["count"]), "0", _ms(st.get("avg_ms")), _ms(st.get("p50_ms")),
                         _ms(st.get("p95_ms")), _ms(st.get("p99_ms")), _ms(st.get("max_ms"))))
    else:
        for r in rows:
            body.append((r.get("Type", ""), r.get("Name", ""), r.get("Request Count", "0"),
                         r.get("Failure Count", "0"), f"{float(r.get('Average Response Time') or 0):.1f}",
                         r.get("50%", ""), r.get("95%", ""), r.get("99%", ""),
                         f"{float(r.get('Max Response Time') or 0):.0f}"))
    if not body:
        return "(no statistics were written)"
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    return "\n".join(lines)


def _port_in_use(port: str) -> bool:
    """Whether 127.0.0.1:``port`` has a listener (what the web UI would fail to bind)."""
    try:
        number = int(port)
    except ValueError:
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as Locust's server: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", number))
        except OSError:
            return True
    return False


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _Run:
    """One ``execute``: what happened, and the reports that say it."""

    def __init__(self, plan: RunPlan, profile) -> None:
        self.plan = plan
        self.profile = profile
        self.started = time.time()
        self.host: str | None = None
        self.signal_name: str | None = None

    def minimal(self, ending: str, reason: str, log_path: str | None = None) -> int:
        """Write the reports of a run that ended before its gate could (returns the exit code)."""
        from .reports import minimal_summary
        p, prof = self.plan, self.profile
        summary = minimal_summary(run_id=p.run_id, profile=p.profile_name,
                                  profile_source=getattr(prof, "source", "") or "",
                                  description=getattr(prof, "description", "") or "", env=p.env, host=self.host,
                                  started=self.started, ended=time.time(), workers=p.workers, ending=ending,
                                  reason=reason, log_path=log_path)
        return self._write(summary)

    def _write(self, summary: dict) -> int:
        from .reports import write_reports
        try:
            write_reports(summary, self.plan.reports_dir)
        except (OSError, ValueError) as e:
            log.error("could not write the reports: %s", e)
        return int(summary["run"]["exit_code"])

    def settle(self, code: int | None, hung: bool) -> tuple[int, dict | None]:
        """The run's exit code once Locust has exited with ``code``: the gate's reports when they
        tell the truth, else reports rewritten with what only this process knows."""
        from .core import endings
        from .reports import with_ending

        summary = read_summary(self.plan.reports_dir)
        if summary is not None and (summary.get("run") or {}).get("run_id") != self.plan.run_id:
            summary = None
        if hung:
            reason = f"Locust did not finish within the profile's duration + {HANG_GRACE_S} s and was stopped"
        elif summary is None:
            if code == EXIT_CONFIG:
                return self.minimal(endings.CONFIG_ERROR, "Locust could not start the run (see the messages above)"), \
                    read_summary(self.plan.reports_dir)
            if self.signal_name is not None:
                return self.minimal(endings.OPERATOR, f"{self.signal_name} before the run's reports were written"), \
                    read_summary(self.plan.reports_dir)
            reason = f"Locust exited with {_describe_exit(code)} without writing the run's reports (see its output above)"
        elif int(summary["run"].get("exit_code", -1)) != code:
            reason = (f"Locust exited with {_describe_exit(code)} after its reports said exit code "
                      f"{summary['run'].get('exit_code')} (see its output above)")
        else:
            return int(code), summary
        log.error("%s", reason)
        if summary is None:
            return self.minimal(endings.HARNESS_ERROR, reason), read_summary(self.plan.reports_dir)
        fixed = with_ending(summary, ending=endings.HARNESS_ERROR, reason=reason)
        return self._write(fixed), fixed


HANG_GRACE_S = 120
"""Seconds past the profile's duration after which a headless Locust is stopped as hung."""


def execute(plan: RunPlan, profile) -> int:
    """Run the plan: simulator (if needed), Locust processes, summary. Returns the exit code,
    which is also the one in every report (see :mod:`letrade_perf.core.endings`). The verdict
    block is the console's last word: printed once every process has stopped."""
    finished: list[tuple[int, dict | None]] = []
    code = _execute(plan, profile, finished)
    if finished:
        print(final_console(plan, *finished[-1]), flush=True)
    return code


def _execute(plan: RunPlan, profile, finished: list[tuple[int, dict | None]]) -> int:
    from .core import endings
    from .core.errors import ConfigError, internal_error
    from .sim.process import SimulatorError, start_simulator

    os.makedirs(plan.reports_dir, exist_ok=True)
    run = _Run(plan, profile)
    sim = None
    procs: list[subprocess.Popen] = []

    def on_signal(signum, frame):
        if run.signal_name is None:
            run.signal_name = "SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name
        # Locust quits gracefully on SIGINT/SIGTERM (the kill switch runs, the reports are written):
        # the master gets the signal this process got, so its reports name it; the workers SIGTERM
        for i, p in enumerate(procs):
            if p.poll() is None:
                try:
                    os.kill(p.pid, signum if i == 0 else signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def on_control_signal(signum, frame):
        # operator controls (SIGUSR1 blocks new orders, SIGUSR2 resumes them): to the Locust
        # master or local process, which tells its workers; the run goes on
        if procs and procs[0].poll() is None:
            try:
                os.kill(procs[0].pid, signum)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    old.update({s: signal.signal(s, on_control_signal) for s in (signal.SIGUSR1, signal.SIGUSR2)})
    try:
        sim_url = None
        if plan.embeds_simulator:
            try:
                sim = start_simulator(profile.sim or None)
            except SimulatorError as e:
                log.error("could not start the simulator: %s", e)
                return run.minimal(endings.CONFIG_ERROR, f"could not start the simulator: {e}")
            sim_url = sim.base_url
            log.info("simulator started (pid %d) at %s", sim.pid, sim_url)
        try:
            target = plan.target(sim_url)
        except ConfigError as e:        # e.g. a bad --stream-url beside an embedded simulator
            print(f"letrade-perf run: {e}", file=sys.stderr)
            return run.minimal(endings.CONFIG_ERROR, str(e))
        run.host = target.rest_url
        log.info("target %s: REST %s, streams %s, WS API %s", target.name, target.rest_url, target.ws_stream_url,
                 target.ws_api_url)
        if plan.web and _port_in_use(_web_port(plan.extra)):
            problem = f"the web UI's port 127.0.0.1:{_web_port(plan.extra)} is in use (choose another: -- --web-port N)"
            print(f"letrade-perf run: {problem}; not started (exit code {EXIT_CONFIG})", file=sys.stderr)
            return run.minimal(endings.CONFIG_ERROR, problem)
        problems = preflight_problems(plan, profile, target)
        if problems:
            for problem in problems:
                print(f"letrade-perf run: {problem}", file=sys.stderr)
            print(f"letrade-perf run: not started ({len(problems)} problem{'s' if len(problems) > 1 else ''}; "
                  "exit code 2)", file=sys.stderr)
            return run.minimal(endings.CONFIG_ERROR, "; ".join(problems))
        commands = locust_commands(plan, target)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[FORMAT_ENV] = plan.log_format
        env[CONSOLE_ENV] = "quiet" if plan.quiet else "run"    # the gate leaves the verdict block to this process
        for key, value in (plan.influx or {}).items():
            env[key] = value          # read by every Locust process's sink (letrade_perf.metrics)
        if plan.webhooks:
            env["LETRADE_WEBHOOKS"] = "\n".join(plan.webhooks)   # not on the command line: URLs are secrets
        from .core.resources import source_checkout
        checkout = source_checkout()
        if checkout is not None:      # a source checkout: Locust imports this tree, not another install
            env["PYTHONPATH"] = checkout + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log.info("run %s: profile %s, env %s, %s, reports in %s", plan.run_id, plan.profile_name, plan.env,
                 f"web UI on http://127.0.0.1:{_web_port(plan.extra)}" if plan.web else
                 (f"master + {plan.workers} workers" if plan.workers else "headless"), plan.reports_dir)
        with open(os.path.join(plan.reports_dir, "run.json"), "w", encoding="utf-8") as fh:
            json.dump({"run_id": plan.run_id, "profile": plan.profile_name, "env": plan.env,
                       "host": target.rest_url, "target": target.urls(), "workers": plan.workers,
                       "started": time.time()}, fh, indent=2)
        worker_logs = []
        for i, cmd in enumerate(commands):
            if i == 0:
                # every Locust process ends (SIGTERM: its kill switch runs) when this one dies, even by SIGKILL
                procs.append(subprocess.Popen(cmd, env=env, preexec_fn=parent_death_preexec()))
            else:
                lf = open(os.path.join(plan.reports_dir, f"worker-{i}.log"), "wb")
                worker_logs.append(lf)
                procs.append(subprocess.Popen(cmd, env=env, stdout=lf, stderr=subprocess.STDOUT,
                                              preexec_fn=parent_death_preexec()))
        deadline = None
        if profile is not None and not plan.web:
            # Bounded: the shape ends the run by itself; this only guards against a hang.
            deadline = time.monotonic() + profile.duration_s + HANG_GRACE_S
        code = None
        hung = False
        while code is None:
            code = procs[0].poll()
            if code is None:
                if deadline is not None and time.monotonic() > deadline:
                    log.error("Locust did not finish within the profile's duration + %d s; stopping it", HANG_GRACE_S)
                    hung = True
                    stop_process(procs[0], 15.0)
                    code = procs[0].returncode
                    break
                time.sleep(0.2)
        for p in procs[1:]:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                stop_process(p, 15.0)
        for lf in worker_logs:
            lf.close()
        code, summary = run.settle(code, hung)
        finished.append((code, summary))
        return code
    except Exception as e:      # a bug of this process: the log has the traceback, the reports the ending
        code = internal_error("letrade-perf run", e, plan.reports_dir)
        logs = sorted(f for f in os.listdir(plan.reports_dir) if f.startswith("letrade-perf-error-"))
        return run.minimal(endings.HARNESS_ERROR, f"letrade-perf run failed: {type(e).__name__}: {e}",
                           os.path.join(plan.reports_dir, logs[-1]) if logs else None) or code
    finally:
        for p in procs:
            stop_process(p, 15.0)
        if sim is not None:
            sim.stop()
            log.info("simulator stopped")
        for s, h in old.items():
            signal.signal(s, h)


REPORT_FILES = ("summary.html", "report.html", "summary.json", "junit.xml", "summary.md")
"""The reports the verdict block names (those that exist), the one to open first first."""


def final_console(plan: RunPlan, code: int, summary: dict | None, *, stream=None) -> str:
    """What ``letrade-perf run`` prints after Locust has exited: the requests and criteria tables
    (not with ``--quiet``), then the verdict block (:func:`letrade_perf.reports.console.verdict_block`),
    its verdict in colour on a terminal (``NO_COLOR`` / ``FORCE_COLOR`` honoured)."""
    from .reports.console import criteria_table, use_colour, verdict_block

    colour = use_colour(sys.stdout if stream is None else stream, os.environ)
    files = [f for f in REPORT_FILES if os.path.exists(os.path.join(plan.reports_dir, f))]
    block = verdict_block(summary, code, plan.reports_dir, report_files=files, colour=colour)
    if plan.quiet:
        return "\n" + block
    parts = [render_summary(read_stats(plan.reports_dir), summary)]
    if summary and summary.get("criteria"):
        parts.append(criteria_table(summary["criteria"]))
    parts.append(block)
    return "\n" + "\n\n".join(parts)


def preflight_problems(plan: RunPlan, profile, target) -> list[str]:
    """What stops the run before any Locust process starts (see :mod:`letrade_perf.preflight`)."""
    from .preflight import preflight
    return preflight(profile, target, key_file=plan.key_file)


def _influx_env(args) -> dict:
    """``--influx-*`` options as the environment variables the sink reads."""
    out = {}
    for opt, var in (("influx_url", "LETRADE_INFLUX_URL"), ("influx_org", "LETRADE_INFLUX_ORG"),
                     ("influx_bucket", "LETRADE_INFLUX_BUCKET"), ("influx_mode", "LETRADE_INFLUX_MODE")):
        value = getattr(args, opt, None)
        if value:
            out[var] = value
    return out


def run_from_args(args) -> int:
    from .logs import configure

    configure(args.log_format, args.log_level or ("WARNING" if getattr(args, "quiet", False) else "INFO"))
    planned = plan_from_args(args)
    if isinstance(planned, int):
        return planned
    return execute(*planned)


def _reports_problem(reports: str) -> str | None:
    """Why the run directory ``reports`` cannot be created (without creating anything), or None."""
    if "\0" in reports:
        return "contains a NUL character"
    path = reports
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    if not os.path.isdir(path):
        return f"{path} exists and is not a directory"
    if path != reports and not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable"
    return None


def _run_id_problem(run_id: str) -> str | None:
    if not run_id.strip() or run_id in (".", "..") or "/" in run_id or os.sep in run_id or "\0" in run_id:
        return f"expected a name for the run's directory (no path separators), got {run_id!r}"
    return None


def plan_from_args(args):
    """The :class:`RunPlan` and the loaded profile the command line asks for, validated without
    starting anything (no simulator, no Locust, no directory created) — or, after printing why not,
    the exit code (2 for a config or usage error, 3 for refused production orders)."""
    from .config.profile import load_profile
    from .core.errors import ConfigError

    try:
        profile = load_profile(args.profile)
    except ConfigError as e:
        for one in e.errors:        # several found at once: one per line
            print(f"letrade-perf run: {one}", file=sys.stderr)
        return EXIT_CONFIG
    from .cli import MAX_WORKERS
    if not 0 <= args.workers <= MAX_WORKERS:      # the parser's bound, for callers that build args themselves
        print(f"letrade-perf run: --workers: must be within 0..{MAX_WORKERS}, got {args.workers}", file=sys.stderr)
        return EXIT_CONFIG
    env = args.env or profile.env
    places_orders = profile.users.places_orders
    if env == "production" and places_orders and not (args.allow_production_orders
                                                      and profile.safety.allow_production_orders):
        print("letrade-perf run: refusing to place production orders: profile "
              f"{profile.name!r} places orders on env production; this needs both "
              "`safety: {allow_production_orders: true}` in the profile and --allow-production-orders",
              file=sys.stderr)
        return EXIT_SAFETY
    if args.run_id and (problem := _run_id_problem(args.run_id)):      # "" keeps meaning the default
        print(f"letrade-perf run: --run-id: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    run_id = args.run_id or make_run_id(profile.name)
    try:
        reports = os.path.abspath(os.path.join(args.reports, run_id))
    except ValueError as e:     # e.g. a NUL character
        print(f"letrade-perf run: --reports {args.reports!r}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    problem = _reports_problem(reports)
    if problem:
        print(f"letrade-perf run: --reports {args.reports}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    extra = list(args.locust_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.tolerance is not None:
        from .criteria.tolerance import parse_tolerance
        try:
            parse_tolerance(args.tolerance)
        except ValueError as e:
            print(f"letrade-perf run: --tolerance: {e}", file=sys.stderr)
            return EXIT_CONFIG
    from .metrics.sink import resolve_sink_config
    try:      # a bad sink setting is a usage error before anything starts
        resolve_sink_config(profile.sink, os.environ, {"url": args.influx_url, "org": args.influx_org,
                                                       "bucket": args.influx_bucket, "mode": args.influx_mode})
    except ConfigError as e:
        print(f"letrade-perf run: {e}", file=sys.stderr)
        return EXIT_CONFIG
    baseline = None
    if args.baseline:
        from .reports import load_summary
        try:
            load_summary(args.baseline)
        except (ValueError, OSError) as e:
            print(f"letrade-perf run: --baseline: {e}", file=sys.stderr)
            return EXIT_CONFIG
        baseline = os.path.abspath(args.baseline)
    for spec in args.webhook or ():
        from .notify import parse_webhook_spec
        try:
            parse_webhook_spec(spec)
        except ValueError as e:
            print(f"letrade-perf run: --webhook: {e}", file=sys.stderr)
            return EXIT_CONFIG
    from .config.environments import target_options
    plan = RunPlan(profile_ref=args.profile, profile_name=profile.name, env=env, run_id=run_id,
                   reports_dir=reports, web=args.web, workers=args.workers, key_file=args.key_file,
                   log_format=args.log_format, extra=extra, baseline=baseline, tolerance=args.tolerance,
                   webhooks=tuple(args.webhook or ()), influx=_influx_env(args), log_level=args.log_level,
                   locustfile=os.path.abspath(args.locustfile) if args.locustfile else None,
                   operator=getattr(args, "operator", None) or None, quiet=bool(getattr(args, "quiet", False)),
                   **target_options(profile.target, args.host, args.rest_url, args.stream_url, args.ws_api_url))
    if plan.locustfile and not (os.path.isfile(plan.locustfile) and plan.locustfile.endswith(".py")):
        print(f"letrade-perf run: --locustfile {args.locustfile}: not a .py file", file=sys.stderr)
        return EXIT_CONFIG
    if not plan.embeds_simulator:
        try:        # a bad URL is a usage error before anything starts
            plan.target()
        except ConfigError as e:
            print(f"letrade-perf run: {e}", file=sys.stderr)
            return EXIT_CONFIG
    return plan, profile
