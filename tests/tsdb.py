"""Real time-series servers for tests: VictoriaMetrics and InfluxDB 1.x on free loopback ports.

Both come from the OS packages ``scripts/bootstrap --test`` installs (``victoria-metrics`` and
``influxdb``). Every server binds 127.0.0.1 only, keeps all its files under the test's temporary
directory, and is stopped by its PID (SIGTERM, then SIGKILL) — never by name.

- :func:`start_victoria_metrics` accepts InfluxDB line protocol on ``/write`` (v1) and
  ``/api/v2/write`` (what influxdb-client sends). It stores ``measurement,tags field=v`` as the
  metric ``measurement_field`` with the tags as labels (plus ``db`` when a v1 ``/write`` names
  one; the v2 ``bucket`` adds no label). VictoriaMetrics stores numbers only: a string field
  becomes its numeric parse, else 0 (``hist="{...}"`` → ``request_hist`` 0), so string fields
  can't be read back. :meth:`VictoriaMetrics.export` reads the points back;
  :meth:`VictoriaMetrics.restart` stops it and starts it again on the same port and storage.
- :func:`start_influxdb1` runs ``influxd`` 1.x, which answers the dashboards' InfluxQL.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable

from letrade_perf.core.procs import stop_process


class ServerError(RuntimeError):
    """A server binary is missing, would not start, or answered an HTTP request with an error."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server may still lose a race for it: callers retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if path is None:
        raise ServerError(f"{name} not found: run scripts/bootstrap --test (it installs the OS package)")
    return path


def _http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
          timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """A server subprocess listening on ``url`` (``http://127.0.0.1:<port>``); :meth:`stop` ends it by PID."""

    name = "server"

    def __init__(self, proc: subprocess.Popen, url: str, workdir: Path, log_path: Path):
        self.proc = proc
        self.url = url
        self.workdir = workdir
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        """The server's combined stdout/stderr so far (for assertion messages)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        return stop_process(self.proc, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _check(self, status: int, body: bytes, what: str, ok: Iterable[int] = (200, 204)) -> bytes:
        if status not in tuple(ok):
            raise ServerError(f"{self.name} {what}: HTTP {status}: {body[:500]!r}")
        return body


def _spawn(argv: list[str], workdir: Path, log_name: str) -> tuple[subprocess.Popen, Path]:
    log_path = workdir / log_name
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, log_path


def _wait_ready(server: Server, path: str, ok_status: int, timeout: float) -> bool:
    """Poll ``path`` until it answers ``ok_status``; False if the process exited or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        try:
            status, _ = _http("GET", server.url + path, timeout=2.0)
            if status == ok_status:
                return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    return False


# ------------------------------------------------------------------------------ VictoriaMetrics
class VictoriaMetrics(Server):
    """A ``victoria-metrics`` single-node server. Line protocol in, JSON-lines export out."""

    name = "victoria-metrics"
    argv: list[str] | None = None     # the command line, for restart()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop the server (if running) and start it again on the same port with the same
        storage directory (what was written before is kept); returns once ``/health`` answers."""
        if self.argv is None:
            raise ServerError("victoria-metrics: no command line to restart with")
        self.stop()
        deadline = time.monotonic() + timeout
        while True:   # the port may stay busy for a moment after the old process exits: retry
            self.proc, self.log_path = _spawn(self.argv, self.workdir, "victoria-metrics.log")
            if _wait_ready(self, "/health", 200, max(1.0, deadline - time.monotonic())):
                return
            self.stop()
            if time.monotonic() >= deadline:
                raise ServerError(f"victoria-metrics did not restart on {self.url}:\n{self.output()[-4000:]}")
            time.sleep(0.3)

    def write(self, lines: list[str], precision: str = "ms", db: str | None = None) -> None:
        """Write InfluxDB line protocol through the v1 ``/write`` endpoint."""
        q = {"precision": precision}
        if db:
            q["db"] = db
        status, body = _http("POST", f"{self.url}/write?{urllib.parse.urlencode(q)}",
                             "\n".join(lines).encode())
        self._check(status, body, "write")

    def flush(self) -> None:
        """Make recently written samples searchable now (``/internal/force_flush``)."""
        status, body = _http("GET", self.url + "/internal/force_flush")
        self._check(status, body, "force_flush")

    def export(self, match: str, start: str | int | None = None, end: str | int | None = None,
               wait: float = 10.0, min_series: int = 1) -> list[dict]:
        """Series matching the selector ``match`` (e.g. ``'{__name__=~"request_.*"}'``) from
        ``/api/v1/export``: one dict per series, ``{"metric": {...labels}, "values": [...],
        "timestamps": [ms, ...]}``.

        Written samples become searchable after an in-memory flush, so this flushes and polls
        until at least ``min_series`` series come back or ``wait`` seconds pass (then returns
        what it has, possibly ``[]``)."""
        q: list[tuple[str, str]] = [("match[]", match)]
        if start is not None:
            q.append(("start", str(start)))
        if end is not None:
            q.append(("end", str(end)))
        url = f"{self.url}/api/v1/export?{urllib.parse.urlencode(q)}"
        deadline = time.monotonic() + wait
        while True:
            self.flush()
            status, body = _http("GET", url)
            self._check(status, body, f"export {match}", ok=(200,))
            series = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            if len(series) >= min_series or time.monotonic() >= deadline:
                return series
            time.sleep(0.2)


def start_victoria_metrics(tmp_path: Path | str, timeout: float = 30.0,
                           extra_args: Iterable[str] = ()) -> VictoriaMetrics:
    """Start ``victoria-metrics`` on a free 127.0.0.1 port with its storage under ``tmp_path``;
    returns once ``/health`` answers 200."""
    binary = _binary("victoria-metrics")
    workdir = Path(tmp_path) / f"victoria-metrics-{os.getpid()}-{time.monotonic_ns()}"
    workdir.mkdir(parents=True)
    last_output = ""
    for _attempt in range(3):   # the free port may be taken between free_port() and bind: retry
        port = free_port()
        argv = [
            binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={workdir / 'data'}",
            "-retentionPeriod=100y",          # synthetic points may carry any recent timestamp
            "-search.latencyOffset=0s",       # export what was just written, not what is 30 s old
            "-search.disableCache",
            "-loggerLevel=WARN",
            "-memory.allowedPercent=10",
            "-storage.minFreeDiskSpaceBytes=0",
            *extra_args,
        ]
        proc, log_path = _spawn(argv, workdir, "victoria-metrics.log")
        server = VictoriaMetrics(proc, f"http://127.0.0.1:{port}", workdir, log_path)
        server.argv = argv
        if _wait_ready(server, "/health", 200, timeout):
            return server
        last_output = server.output()
        server.stop()
    raise ServerError(f"victoria-metrics did not start:\n{last_output[-4000:]}")


# ------------------------------------------------------------------------------ InfluxDB 1.x
_INFLUXDB1_CONF = """\
# Written by tests/tsdb.py: loopback only, every file under {root}, no listener but HTTP (and
# the meta RPC bind-address, which 1.x always opens: also on loopback).
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  index-version = "inmem"

[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  https-enabled = false
  unix-socket-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[continuous_queries]
  enabled = false
"""


class InfluxDB1(Server):
    """An ``influxd`` 1.x server: line-protocol ``/write`` and InfluxQL ``/query``."""

    name = "influxd"

    def write(self, db: str, lines: list[str], precision: str = "ms") -> None:
        """Write line protocol into database ``db`` (HTTP 204 expected)."""
        q = urllib.parse.urlencode({"db": db, "precision": precision})
        status, body = _http("POST", f"{self.url}/write?{q}", "\n".join(lines).encode())
        self._check(status, body, f"write to {db}", ok=(204,))

    def query(self, db: str | None, q: str, method: str | None = None) -> dict:
        """Run InfluxQL ``q`` (timestamps as epoch ms); returns the decoded JSON answer.

        Raises :class:`ServerError` on an HTTP error or on an error in any statement's result.
        ``SELECT``/``SHOW`` go through GET, anything else through POST (as InfluxDB requires)."""
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        if method is None:
            head = q.lstrip().split(None, 1)[0].upper() if q.strip() else ""
            method = "GET" if head in ("SELECT", "SHOW") else "POST"
        if method == "GET":
            status, body = _http("GET", f"{self.url}/query?{urllib.parse.urlencode(params)}")
        else:
            status, body = _http("POST", f"{self.url}/query", urllib.parse.urlencode(params).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        self._check(status, body, f"query {q!r}", ok=(200,))
        answer = json.loads(body)
        if "error" in answer:
            raise ServerError(f"influxd query {q!r}: {answer['error']}")
        for result in answer.get("results", []):
            if "error" in result:
                raise ServerError(f"influxd query {q!r}: {result['error']}")
        return answer

    def create_db(self, name: str) -> None:
        """``CREATE DATABASE "name"`` (idempotent)."""
        self.query(None, f'CREATE DATABASE "{name}"', method="POST")


def start_influxdb1(tmp_path: Path | str, timeout: float = 30.0) -> InfluxDB1:
    """Start ``influxd`` 1.x with a config whose every directory lies under ``tmp_path`` and whose
    only listeners are HTTP and the meta RPC, both on free 127.0.0.1 ports; returns once ``/ping``
    answers 204."""
    binary = _binary("influxd")
    workdir = Path(tmp_path) / f"influxdb1-{os.getpid()}-{time.monotonic_ns()}"
    workdir.mkdir(parents=True)
    last_output = ""
    for _attempt in range(3):
        http_port, rpc_port = free_port(), free_port()
        if http_port == rpc_port:
            continue
        conf = workdir / "influxdb.conf"
        conf.write_text(_INFLUXDB1_CONF.format(root=workdir, http_port=http_port, rpc_port=rpc_port))
        # INFLUXDB_* environment variables override the config file: drop any from the caller.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        log_path = workdir / "influxd.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([binary, "run", "-config", str(conf)], cwd=workdir, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        server = InfluxDB1(proc, f"http://127.0.0.1:{http_port}", workdir, log_path)
        if _wait_ready(server, "/ping", 204, timeout):
            return server
        last_output = server.output()
        server.stop()
    raise ServerError(f"influxd did not start:\n{last_output[-4000:]}")
