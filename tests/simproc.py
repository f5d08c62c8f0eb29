"""Start the simulator as a real subprocess on a free loopback port, and talk to it.

Used by the test fixtures and by ``bench/``. The process is stopped by its PID.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from letrade_perf.binance.signing import encode_params, hmac_sha256
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET
from letrade_perf.sim.process import SimulatorProcess, start_simulator


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class SimProcess(SimulatorProcess):
    """A running simulator subprocess with HTTP helpers for tests (demo HMAC key by default)."""

    api_key: str = DEMO_API_KEY
    secret: str = DEMO_SECRET

    # -- HTTP helpers --------------------------------------------------------------------
    def request(self, method: str, path: str, params: dict | None = None, body: bytes | str | None = None,
                headers: dict | None = None, timeout: float = 10.0) -> Response:
        url = self.base_url + path
        if params:
            url += "?" + encode_params(params)
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path: str, params: dict | None = None, **kw) -> Response:
        return self.request("GET", path, params, **kw)

    def signed(self, method: str, path: str, params: dict | None = None, api_key: str | None = None,
               secret: str | None = None, in_body: bool | None = None) -> Response:
        """A signed request with the demo HMAC key (or the given one); timestamp added."""
        p = dict(params or {})
        p.setdefault("timestamp", int(time.time() * 1000))
        payload = encode_params(p)
        sig = hmac_sha256(secret or self.secret, payload)
        headers = {"X-MBX-APIKEY": api_key or self.api_key}
        if in_body is None:
            in_body = method in ("POST", "PUT")
        if in_body:
            return self.request(method, path, body=f"{payload}&signature={sig}", headers=headers)
        return self.request(method, path + f"?{payload}&signature={sig}", headers=headers)

    def control(self, method: str, path: str, payload=None) -> Response:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self.request(method, "/_sim/" + path.lstrip("/"), body=body, headers=headers)

    def stats(self) -> dict:
        r = self.control("GET", "stats")
        assert r.status == 200, r.body
        return r.json()


def start_sim(config: dict | None = None, extra_args: list[str] | None = None, timeout: float = 30.0,
              cpu: int | None = None) -> SimProcess:
    """Start ``python -m letrade_perf sim --port 0`` with ``config`` (a simulator YAML mapping)."""
    p = start_simulator(config, extra_args or (), timeout=timeout, cpu=cpu)
    return SimProcess(p.proc, p.base_url, p.workdir, p.log_path)
