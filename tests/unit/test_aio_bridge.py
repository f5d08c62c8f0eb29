"""letrade_perf.users.aio: one asyncio loop per process, awaited cooperatively from greenlets.

Every wait is bounded; concurrency is shown by ordering and a generous bound, not by timing.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import gevent
import pytest
from gevent.hub import GreenletExit
from gevent.monkey import get_original
from locust import User, constant, task
from locust.env import Environment
from locust.exception import StopUser

from letrade_perf.users import aio

BOUND_S = 10.0


@pytest.fixture(autouse=True)
def _fresh_loop():
    yield
    assert aio.shutdown(), "loop thread did not finish"


def _wait_until(predicate, what: str, timeout: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        gevent.sleep(0.01)


class Boom(Exception):
    pass


async def _double(x):
    await asyncio.sleep(0.01)
    return 2 * x


async def _raise_boom():
    await asyncio.sleep(0)
    raise Boom("from the loop")


async def _sleep_recording(seen: list, seconds: float = 60.0):
    seen.append("started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise
    seen.append("finished")


# -- results, exceptions, threads -----------------------------------------------------------------

def test_result_is_returned():
    assert aio.run(_double(21), timeout=BOUND_S) == 42


def test_exception_keeps_type_and_traceback():
    with pytest.raises(Boom, match="from the loop") as info:
        aio.run(_raise_boom(), timeout=BOUND_S)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "_raise_boom" in frames


def test_runs_on_another_real_thread():
    async def where():
        return threading.get_ident(), aio.in_loop_thread()
    ident, inside = aio.run(where(), timeout=BOUND_S)
    assert inside and ident != threading.get_ident()
    assert not aio.in_loop_thread()


def test_works_from_a_plain_thread():
    out = {}

    def worker():
        try:
            out["value"] = aio.run(_double(5), timeout=BOUND_S)
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join(BOUND_S)
    assert not t.is_alive()
    assert out == {"value": 10}


def test_run_sync_calls_in_the_loop_thread():
    def make():
        return asyncio.get_running_loop(), aio.in_loop_thread()
    running, inside = aio.run_sync(make)
    assert inside and running is aio.loop()


def test_executor_and_dns_use_real_threads():
    async def work():
        lp = asyncio.get_running_loop()
        infos = await lp.getaddrinfo("localhost", 80)
        return await asyncio.to_thread(sum, [1, 2, 3]), infos
    total, infos = aio.run(work(), timeout=BOUND_S)
    assert total == 6 and infos


# -- cancellation ----------------------------------------------------------------------------------

def test_timeout_cancels_the_coroutine():
    seen: list[str] = []
    with pytest.raises(TimeoutError):
        aio.run(_sleep_recording(seen), timeout=0.2)
    assert seen == ["started", "cancelled"]   # run() waited for it to unwind


def test_timeout_keeps_a_result_that_won_the_race():
    # a coroutine that swallows the cancellation and returns: its result is delivered
    async def stubborn():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "kept"
    assert aio.run(stubborn(), timeout=0.1) == "kept"


@pytest.mark.parametrize("exc_type", [GreenletExit, StopUser])
def test_killing_the_waiting_greenlet_cancels_the_coroutine(exc_type):
    seen: list[str] = []
    g = gevent.spawn(aio.run, _sleep_recording(seen))
    _wait_until(lambda: seen == ["started"], "the coroutine to start")
    g.kill(exc_type, block=True, timeout=BOUND_S)
    assert g.dead
    assert seen == ["started", "cancelled"]
    if exc_type is GreenletExit:
        assert isinstance(g.value, GreenletExit)
    else:
        assert isinstance(g.exception, StopUser)


# -- concurrency ---------------------------------------------------------------------------------------

def test_fifty_greenlets_wait_concurrently():
    order: list[tuple[str, int]] = []

    def user(i):
        order.append(("start", i))
        aio.run(asyncio.sleep(0.2), timeout=BOUND_S)
        order.append(("end", i))
        return i

    t0 = time.monotonic()
    greenlets = [gevent.spawn(user, i) for i in range(50)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    elapsed = time.monotonic() - t0
    assert [g.value for g in greenlets] == list(range(50))
    assert elapsed < 5.0, f"50 x 0.2 s took {elapsed:.1f} s: the waits were serialised"   # serial: 10 s
    # interleaved: every greenlet started its wait before any of them finished
    first_end = next(k for k, (what, _) in enumerate(order) if what == "end")
    assert sorted(i for what, i in order[:first_end] if what == "start") == list(range(50))


def test_other_greenlets_run_while_one_waits():
    ticks = []
    done = []

    def ticker():
        while not done:
            ticks.append(1)
            gevent.sleep(0.01)

    g = gevent.spawn(ticker)
    try:
        aio.run(asyncio.sleep(0.3), timeout=BOUND_S)
        n = len(ticks)
    finally:
        done.append(True)
        g.join(BOUND_S)
    assert n >= 5, f"ticker ran {n} times during a 0.3 s wait"


# -- misuse, lifecycle ----------------------------------------------------------------------------------

def test_run_from_the_loop_thread_raises():
    async def nested():
        aio.run(asyncio.sleep(0))
    with pytest.raises(RuntimeError, match="loop's own thread"):
        aio.run(nested(), timeout=BOUND_S)
    with pytest.raises(RuntimeError, match="deadlock"):
        aio.run_sync(aio.run, asyncio.sleep(0))


def test_shutdown_cancels_pending_and_a_new_run_restarts():
    first = aio.loop()
    seen: list[str] = []
    g = gevent.spawn(aio.run, _sleep_recording(seen))
    _wait_until(lambda: seen == ["started"], "the coroutine to start")
    assert aio.shutdown(timeout=BOUND_S)
    assert first.is_closed()
    g.join(BOUND_S)
    assert g.dead and isinstance(g.exception, asyncio.CancelledError)
    assert seen == ["started", "cancelled"]
    assert aio.run(_double(2), timeout=BOUND_S) == 4
    assert aio.loop() is not first and not aio.loop().is_closed()


FORK_SCRIPT = textwrap.dedent("""
    import asyncio, multiprocessing, os, sys
    from letrade_perf.users import aio

    async def ident():
        await asyncio.sleep(0.01)
        return os.getpid(), id(asyncio.get_running_loop())

    parent = aio.run(ident(), timeout=10)
    parent_loop = aio.loop()

    def child_check():
        pid, loop_id = aio.run(ident(), timeout=10)
        ok = pid == os.getpid() and pid != parent[0] and aio.loop() is not parent_loop
        return ok and loop_id == id(aio.loop())

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ok = child_check()
        except BaseException:
            ok = False
        os.write(w, b"ok" if ok else b"bad")
        os._exit(0)
    os.close(w)
    got = os.read(r, 16)
    os.waitpid(pid, 0)
    print("fork", got.decode())

    def target(q):
        q.put("ok" if child_check() else "bad")

    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(q,))
    p.start()
    print("multiprocessing", q.get(timeout=20))
    p.join(10)
    print("parent", "ok" if aio.run(ident(), timeout=10) == parent else "bad")
    sys.exit(0 if aio.shutdown() else 3)
""")


def test_forked_child_gets_a_fresh_loop(tmp_path):
    script = tmp_path / "fork_check.py"
    script.write_text(FORK_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        pytest.fail("fork check did not finish within 60 s")
    assert proc.returncode == 0, err
    assert out.split("\n")[:3] == ["fork ok", "multiprocessing ok", "parent ok"], (out, err)


# -- the Locust mixin -------------------------------------------------------------------------------------

class _Base(aio.AsyncTasksMixin, User):
    abstract = True
    wait_time = constant(0)

    async def on_start(self):
        self.log = ["base start"]


class _AsyncUser(_Base):
    aio_timeout = BOUND_S

    async def on_start(self):
        await super().on_start()
        self.log.append(("start", aio.in_loop_thread()))

    @task(2)
    async def ping(self):
        await self.measure("ping", asyncio.sleep(0, result=b"abc"))
        self.log.append("ping")

    @task
    async def fail(self):
        await self.measure("fail", _raise_boom())

    @task
    def plain(self):
        self.log.append("plain")

    async def on_stop(self):
        self.log.append(("stop", aio.in_loop_thread()))


def test_mixin_bridges_async_tasks_and_hooks():
    env = Environment(user_classes=[_AsyncUser])
    events = []
    env.events.request.add_listener(
        lambda **kw: events.append((kw["name"], kw["response_length"], type(kw["exception"]).__name__,
                                    aio.in_loop_thread())))
    tasks = _AsyncUser.tasks
    assert len(tasks) == 4 and tasks[0] is tasks[1], "weights kept, one wrapper per task"
    names = {t.__name__ for t in tasks}
    assert names == {"ping", "fail", "plain"}
    assert asyncio.iscoroutinefunction(_AsyncUser.ping), "the attribute stays awaitable"
    user = _AsyncUser(env)
    user.on_start()
    for t in tasks:
        if t.__name__ == "fail":
            with pytest.raises(Boom):
                t(user)
        else:
            t(user)
    user.on_stop()
    assert user.log == ["base start", ("start", True), "ping", "ping", "plain", ("stop", True)]
    assert events == [("ping", 3, "NoneType", False), ("ping", 3, "NoneType", False),
                      ("fail", 0, "Boom", False)]


def test_call_in_gevent_runs_in_the_gevent_thread_and_carries_results_and_errors():
    real_ident = get_original("_thread", "get_ident")     # threading.get_ident is per greenlet when patched
    gevent_thread = real_ident()
    seen = []

    def in_gevent(x):
        seen.append(real_ident())
        gevent.sleep(0.01)              # a cooperative wait is fine there
        if x < 0:
            raise ValueError("negative")
        return x * 2

    async def coro():
        assert real_ident() != gevent_thread
        doubled = await aio.call_in_gevent(in_gevent, 21)
        with pytest.raises(ValueError, match="negative"):
            await aio.call_in_gevent(in_gevent, -1)
        return doubled

    assert aio.run(coro(), timeout=BOUND_S) == 42
    assert seen == [gevent_thread, gevent_thread]
