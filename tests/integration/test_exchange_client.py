"""The harness's REST client against a real simulator: connections are kept alive and reused, a
GET on a connection the server dropped is retried once, an order never is."""
from __future__ import annotations

import http.client
import socket

import pytest

from letrade_perf.harness.exchange import Connections


def _stale(pool: Connections) -> None:
    """Make the idle connection look like one the server has closed meanwhile."""
    (_at, conn), = pool._idle
    conn.sock.close()
    ours, theirs = socket.socketpair()
    theirs.close()                      # the peer is gone: the next read sees end of stream
    conn.sock = ours


def test_connections_are_kept_alive_and_reused(sim_factory):
    sim = sim_factory()
    pool = Connections(sim.base_url)
    status, headers, body = pool.send("GET", "/api/v3/time", None, {}, 5.0)
    assert status == 200 and b"serverTime" in body
    (_at, conn), = pool._idle
    sock = conn.sock
    for _ in range(3):
        assert pool.send("GET", "/api/v3/ping", None, {}, 5.0)[0] == 200
    assert [c for _t, c in pool._idle] == [conn] and conn.sock is sock      # one connection all along
    pool.close()
    assert pool._idle == []


def test_a_get_on_a_dropped_connection_is_retried_once_an_order_is_not(sim_factory):
    sim = sim_factory()
    pool = Connections(sim.base_url)
    assert pool.send("GET", "/api/v3/ping", None, {}, 5.0)[0] == 200
    _stale(pool)
    assert pool.send("GET", "/api/v3/ping", None, {}, 5.0)[0] == 200          # retried on a new one
    _stale(pool)
    before = sim.stats()["requests"]["total"]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        pool.send("POST", "/api/v3/order", b"symbol=BTCUSDT", {"Content-Type": "application/x-www-form-urlencoded"},
                  5.0)
    assert sim.stats()["requests"]["total"] == before                      # nothing was sent again
    assert pool._idle == []
