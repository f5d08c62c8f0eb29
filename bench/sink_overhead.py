"""What the InfluxDB sink costs a Locust process, and how many raw points/s it delivers without loss.

Part 1 — one harness Locust process (``RestMarketData``, 20 users, ``GET /api/v3/depth`` with no
wait: the harness's maximum request rate) pinned to core 1, against the simulator on core 0, with
the sink off, in aggregate mode and in raw mode (a real VictoriaMetrics, also on core 0, started
here). The variants alternate (off, aggregate, raw, off, …): each round gives one pair
(off, aggregate) and one pair (off, raw), and the table (bench/_table.py) shows every pair, the
medians and the per-pair ratios min / median / max, because this shared machine's speed drifts
between runs. A probe inside the Locust process logs its request
count and CPU time every 0.5 s; the table shows requests/s and CPU time per request over the
steady middle of each run (ramp-up and shutdown left out). Each sink run is checked:
VictoriaMetrics must hold its points.

Part 2 — :class:`~letrade_perf.metrics.sink.InfluxSink` in raw mode driven directly by a feeder
thread at ``--raw-rate`` points/s for ``--raw-seconds`` (this process pinned to core 1), writing
through influxdb-client to VictoriaMetrics; afterwards the points VictoriaMetrics stored (export
API) must equal the points produced, with none dropped.

    .venv/bin/python bench/sink_overhead.py [--repeat 5] [--seconds 8] [--users 20] \\
        [--raw-rate 25000] [--raw-seconds 10] [--append]
    .venv/bin/python bench/sink_overhead.py --quick      # 2 rounds of 6 s, 5 s of raw feed (~1.5 min)
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from letrade_perf.metrics.sink import InfluxSink, SinkConfig  # noqa: E402
from letrade_perf.sim.process import start_simulator  # noqa: E402
from tsdb import start_victoria_metrics  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402

LOCUSTFILE = os.path.join(ROOT, "locustfiles", "binance.py")


def pin(pid: int, cpu: int) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True, capture_output=True)


def profile(workdir: str, seconds: int, users: int) -> str:
    path = os.path.join(workdir, "sink-bench.yaml")
    depth_only = {"depth": 1, "klines": 0, "trades": 0, "ticker": 0, "book_ticker": 0}
    doc = {"description": "bench sink overhead", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": f"{seconds}s", "users": users, "spawn_rate": users}],
           "users": {"rest_market": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0, "depth_limit": 5,
                                     "task_weights": depth_only}},
           "pacing": {"weight_fraction": 1.0, "orders_fraction": 1.0}}
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


PROBE = """\
# Written by bench/sink_overhead.py: the locustfile under test plus a probe that logs, every 0.5 s,
# wall time, Locust's total request count and this process's CPU time.
import time

import gevent
import locust

TARGET = {target!r}
exec(compile(open(TARGET).read(), TARGET, "exec"))


def _probe_loop(environment):
    with open({out!r}, "w") as fh:
        while True:
            fh.write(f"{{time.time()}} {{environment.runner.stats.total.num_requests}} {{time.process_time()}}\\n")
            fh.flush()
            gevent.sleep(0.5)


@locust.events.test_start.add_listener
def _start_probe(environment, **_kw):
    gevent.spawn(_probe_loop, environment)
"""


def locust_run(locustfile: str, host: str, prof: str, workdir: str, tag: str, env: dict) -> tuple[float, float]:
    """(requests/s, CPU µs per request) of the Locust process over the steady middle of the run:
    from 2 s after the first request to 2 s before the last probe sample."""
    prefix = os.path.join(workdir, tag)
    probe_out = prefix + ".probe"
    probe = os.path.join(workdir, f"probe_{tag.replace('-', '_')}.py")
    with open(probe, "w") as fh:
        fh.write(PROBE.format(target=os.path.abspath(locustfile), out=probe_out))
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "locust", "-f", probe, "--headless", "--host", host,
           "--profile", prof, "--letrade-run-id", tag, "--csv", prefix, "--only-summary",
           "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    e = dict(os.environ, PYTHONPATH=ROOT)
    for k in [k for k in e if k.startswith("LETRADE_INFLUX_")]:
        del e[k]
    e.update(env)
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{tag}: locust exited {p.returncode}\n{p.stderr[-2000:]}")
    with open(probe_out) as fh:
        samples = [tuple(float(x) for x in line.split()) for line in fh if line.strip()]
    first = next(t for t, n, _c in samples if n > 0)
    window = [x for x in samples if first + 2.0 <= x[0] <= samples[-1][0] - 2.0]
    if len(window) < 4:
        raise RuntimeError(f"{tag}: run too short for a steady window ({len(samples)} probe samples)")
    (t0, n0, c0), (t1, n1, c1) = window[0], window[-1]
    return (n1 - n0) / (t1 - t0), (c1 - c0) / (n1 - n0) * 1e6


def stored(vm, match: str) -> int:
    return sum(len(s["values"]) for s in vm.export(match, wait=5))


def part1(args, vm, work: str, report: _table.Report) -> None:
    """Rounds of off / aggregate / raw; per round one pair (off, variant) per variant and figure."""
    scopes = {(name, fig): report.row(f"sink {name}: {label}", unit=unit, target=target, digits=0)
              for name, tgt in (("aggregate", ("≥ 0.95×", "≤ 1.05×")), ("raw", ("—", "—")))
              for fig, label, unit, target in (("rps", "requests/s", "req/s", tgt[0]),
                                               ("cpu", "CPU per request (steady state)", "µs", tgt[1]))}
    first = next(iter(scopes.values()))
    with first:
        try:
            sim = start_simulator({"limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9}},
                                  cpu=0)
            try:
                prof = profile(work, args.seconds, args.users)
                variants = {"off": {}, "aggregate": {"LETRADE_INFLUX_URL": vm.url, "LETRADE_INFLUX_MODE": "aggregate"},
                            "raw": {"LETRADE_INFLUX_URL": vm.url, "LETRADE_INFLUX_MODE": "raw"}}
                for i in range(args.repeat):
                    got = {}
                    for name, env in variants.items():
                        tag = f"bench-{name}-{i}"
                        got[name] = locust_run(args.locustfile, sim.base_url, prof, work, tag, env)
                        if name != "off":
                            n = stored(vm, f'{{__name__="users_count",run_id="{tag}"}}')
                            if n == 0:
                                raise RuntimeError(f"{tag}: VictoriaMetrics holds no points of the run — is the "
                                                   "sink installed (letrade_perf.harness.sink.install_sink)?")
                    for (name, fig), scope in scopes.items():
                        k = 0 if fig == "rps" else 1
                        scope.row.pair(got["off"][k], got[name][k])
            finally:
                sim.stop()
        except Exception as e:
            for scope in scopes.values():
                if scope is not first:
                    scope.row.error = f"see the first sink row ({type(e).__name__})"
            raise


def part2(args, vm) -> dict:
    os.sched_setaffinity(0, {1})
    run_id = "bench-raw-feeder"
    cfg = SinkConfig(url=vm.url, token="x", mode="raw", batch_size=args.raw_batch,
                     max_buffer_points=args.raw_buffer)
    sink = InfluxSink(cfg, {"run_id": run_id, "profile": "bench", "env": "sim", "worker": "local"})
    names = [f"GET /api/v3/bench/{i}" for i in range(args.raw_series)]
    rate, seconds = args.raw_rate, args.raw_seconds
    tick = 0.01
    per_tick = int(rate * tick)
    produced = 0
    t0 = time.monotonic()
    next_t = t0
    end = t0 + seconds
    i = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < next_t:
            time.sleep(next_t - now)
        for _ in range(per_tick):
            sink.add_raw_request("GET", names[i % len(names)], i % 97 != 0, 1.0 + (i % 500) / 10.0)
            i += 1
        produced += per_tick
        next_t += tick
    feed_s = time.monotonic() - t0
    peak_buffered = sink.own_stats()["buffered"]
    st = sink.close(60)
    drain_s = time.monotonic() - t0 - feed_s
    n = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n = stored(vm, f'{{__name__="request_raw_value",run_id="{run_id}"}}')
        if n >= st["written"]:
            break
        time.sleep(1)
    return {"produced": st["produced"], "feed_rate": st["produced"] / feed_s, "feed_s": feed_s,
            "written": st["written"], "dropped": st["dropped"], "retries": st["retries"], "stored": n,
            "drain_s": drain_s, "write_rate": st["written"] / (feed_s + drain_s), "buffered_at_end": peak_buffered,
            "series": len(names)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="length of each Locust run")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5, help="alternating off/aggregate/raw rounds (pairs)")
    ap.add_argument("--locustfile", default=LOCUSTFILE)
    ap.add_argument("--raw-rate", type=int, default=25_000, help="raw points/s the feeder produces")
    ap.add_argument("--raw-seconds", type=float, default=10.0)
    ap.add_argument("--raw-series", type=int, default=40, help="distinct request names (series)")
    ap.add_argument("--raw-batch", type=int, default=1000, help="sink batch_size for the raw feeder (the profile default)")
    ap.add_argument("--raw-buffer", type=int, default=100_000, help="sink max_buffer_points for the raw feeder")
    ap.add_argument("--only", choices=("locust", "raw"), action="append")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 6 s runs and 5 s of raw feed")
    _table.add_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.seconds, args.raw_seconds = 2, 6, 5.0
    only = set(args.only or ("locust", "raw"))
    report = _table.Report(
        "InfluxDB sink cost and raw-mode throughput", base="sink off", cand="sink on",
        intro=f"Part 1: one Locust process, {args.users} users, `GET /api/v3/depth` without wait, {args.seconds} s "
              f"per run, {args.repeat} alternating off / aggregate / raw rounds (one pair per round and variant); "
              "Locust on core 1, simulator and VictoriaMetrics on core 0. Ratio = sink on ÷ sink off per pair.")
    work = tempfile.mkdtemp(prefix="letrade-sink-bench-")
    vm = start_victoria_metrics(work)
    pin(vm.pid, 0)
    failed = False
    try:
        if "locust" in only:
            part1(args, vm, work, report)
        if "raw" in only:
            try:
                raw_block(args, part2(args, vm), report)
            except Exception as e:              # part 1's rows are kept
                failed = True
                report.text(f"Part 2 (raw feeder) **failed**: {type(e).__name__}: {e}")
    finally:
        vm.stop()
        shutil.rmtree(work, ignore_errors=True)
    return max(report.finish(args), int(failed))


def raw_block(args, raw: dict, report: _table.Report) -> None:
    """Part 2's figures (one run, not pairs) and its target."""
    rows = [["points produced", f"{raw['produced']:,}"], ["produced /s", f"{raw['feed_rate']:,.0f}"],
            ["written (sink)", f"{raw['written']:,}"], ["stored (VictoriaMetrics export)", f"{raw['stored']:,}"],
            ["dropped", f"{raw['dropped']:,}"], ["retries", f"{raw['retries']:,}"],
            ["buffered when the feeder stopped", f"{raw['buffered_at_end']:,}"],
            ["flush after the feeder stopped", f"{raw['drain_s']:.2f} s"],
            ["written /s (feed + flush)", f"{raw['write_rate']:,.0f}"]]
    ok = raw["stored"] == raw["produced"] and raw["dropped"] == 0 and raw["feed_rate"] >= 20_000
    report.text(f"Part 2: raw mode straight into InfluxSink → influxdb-client → VictoriaMetrics: a feeder at "
                f"{args.raw_rate:,} points/s for {args.raw_seconds:g} s over {raw['series']} series, batches of "
                f"{args.raw_batch}, this process on core 1, VictoriaMetrics on core 0\n\n"
                + _table.markdown_table(["figure", "value"], rows)
                + f"\n\nTarget ≥ 20,000 points/s with stored = produced and 0 dropped: {'met' if ok else 'NOT met'}.")


if __name__ == "__main__":
    sys.exit(main())
