"""The time-series server fixtures themselves (tests/tsdb.py): loopback only, round trips, stop by PID."""
from __future__ import annotations

import os
import time
import urllib.request

import pytest

from tsdb import ServerError, start_influxdb1


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets in LISTEN state owned by ``pid`` (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] != "0A" or f[9] not in inodes:      # 0A = LISTEN
                continue
            addr_hex, port_hex = f[1].split(":")
            if v6:
                addr = "::" if set(addr_hex) == {"0"} else addr_hex
            else:
                addr = ".".join(str(int(addr_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
            out.add((addr, int(port_hex, 16)))
    return out


def test_victoria_metrics_round_trip_on_loopback(victoria_metrics):
    vm = victoria_metrics
    assert vm.url.startswith("http://127.0.0.1:")
    assert {a for a, _ in _listening_ports(vm.pid)} == {"127.0.0.1"}
    now = int(time.time() * 1000)
    vm.write([f'request,run_id=r1,name=GET\\ /api/v3/depth,status=ok count=5i,p95=12.5,hist="{{}}" {now}'],
             precision="ms")
    series = vm.export('{__name__=~"request_.*",run_id="r1"}', min_series=3)
    by_name = {s["metric"]["__name__"]: s for s in series}
    assert set(by_name) == {"request_count", "request_p95", "request_hist"}
    assert by_name["request_count"]["values"] == [5]
    assert by_name["request_p95"]["values"] == [12.5]
    assert by_name["request_count"]["timestamps"] == [now]
    assert by_name["request_count"]["metric"]["name"] == "GET /api/v3/depth"
    assert by_name["request_hist"]["values"] == [0]          # numbers only: a JSON string becomes 0


def test_victoria_metrics_accepts_influx_v2_writes(victoria_metrics):
    """What influxdb-client sends: POST /api/v2/write?org=&bucket=&precision=, Token auth."""
    now = int(time.time() * 1000)
    req = urllib.request.Request(
        f"{victoria_metrics.url}/api/v2/write?org=letrade&bucket=letrade_perf&precision=ms",
        data=f"pacing,worker=local weight_used=7i,share=0.5 {now}".encode(), method="POST",
        headers={"Authorization": "Token anything"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    series = victoria_metrics.export('{__name__=~"pacing_.*"}', min_series=2)
    assert {s["metric"]["__name__"]: s["values"] for s in series} == {"pacing_weight_used": [7],
                                                                      "pacing_share": [0.5]}


def test_influxdb1_round_trip_on_loopback(influxdb1):
    ix = influxdb1
    assert ix.url.startswith("http://127.0.0.1:")
    assert {a for a, _ in _listening_ports(ix.pid)} == {"127.0.0.1"}   # HTTP and the meta RPC only
    assert len(_listening_ports(ix.pid)) == 2
    ix.create_db("letrade_perf")
    now = int(time.time() * 1000)
    ix.write("letrade_perf", [f'run,run_id=r1,event=stop text="smoke: PASS",exit_code=0i {now}'])
    answer = ix.query("letrade_perf", 'SELECT "text", "exit_code" FROM "run"')
    assert answer["results"][0]["series"][0]["values"] == [[now, "smoke: PASS", 0]]
    with pytest.raises(ServerError, match="field not found|undefined|not found|error"):
        ix.query("letrade_perf", 'SELECT nosuchfunction("x") FROM "run"')


def test_stop_ends_the_process(tmp_path):
    ix = start_influxdb1(tmp_path)
    pid = ix.pid
    assert ix.stop() is not None
    assert ix.proc.poll() is not None
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert ix.stop() == ix.proc.returncode       # idempotent
