"""asyncio code inside Locust users: one event loop per process, bridged to gevent.

Locust users are gevent greenlets sharing one OS thread. Trading code written for asyncio
(``ccxt.async_support`` / ``ccxt.pro``: ``await exchange.fetch_ticker(...)``) cannot call
``asyncio.run()`` from each user: the second concurrent user fails with *Cannot run the event
loop while another loop is running*. This module runs **one** asyncio loop per process in its
own real OS thread and lets any greenlet wait for a coroutine on it *cooperatively*: while one
user awaits, the other greenlets (users, Locust's runner) keep running.

Public API:

* :func:`run` — ``run(coro, timeout=None)``: run ``coro`` on the process loop, wait
  cooperatively, return its result or raise its exception (type and traceback kept). On
  ``timeout`` the coroutine is cancelled (and given :data:`CANCEL_GRACE_S` to unwind) and
  :class:`TimeoutError` is raised. If the waiting greenlet is killed (Locust stopping a user
  raises ``GreenletExit`` / ``StopUser`` into it) the coroutine is cancelled too.
* :func:`run_sync` — call a plain function *in the loop thread* (build loop-bound objects there).
* :func:`loop` — the process loop (started lazily). :func:`in_loop_thread` — are we on it?
* :func:`call_in_gevent` — the other way: from a coroutine, run a plain function in a greenlet of
  the gevent thread and await it (the guarded async ccxt paces and records its calls this way).
* :func:`shutdown` — cancel pending tasks, close the loop, join its thread (bounded). Called at
  interpreter exit; the next :func:`run` starts a new loop. A forked child (``os.fork``,
  ``multiprocessing`` with *fork*) starts its own loop on first use.
* :class:`AsyncTasksMixin` — Locust ``User`` / ``TaskSet`` mixin: ``@task`` methods and
  ``on_start`` / ``on_stop`` may be ``async def``; :meth:`AsyncTasksMixin.measure` times an
  awaitable and reports it as a Locust request.

Example::

    import ccxt.async_support as ccxt_async
    from locust import User, constant, task
    from letrade_perf.users.aio import AsyncTasksMixin

    class TickerUser(AsyncTasksMixin, User):
        wait_time = constant(0.5)
        aio_timeout = 30          # bound of every bridged call (None: no bound)

        async def on_start(self):             # runs on the process loop
            self.ex = ccxt_async.binance({"enableRateLimit": False})
            await self.ex.load_markets()

        @task
        async def ticker(self):
            await self.measure("fetch_ticker", self.ex.fetch_ticker("BTC/USDT"))

        async def on_stop(self):
            await self.ex.close()             # on the loop the session was created on

Rules:

* Create *and close* loop-bound objects (ccxt async exchanges, aiohttp sessions) on the
  process loop: inside an ``async def`` run through :func:`run` / the mixin, or with
  :func:`run_sync`. Never ``asyncio.run()`` / ``run_until_complete`` inside a user.
* Code on the loop runs in another OS thread. Report Locust events through
  :meth:`AsyncTasksMixin.fire_request` / :meth:`~AsyncTasksMixin.measure` (they are fired in
  the user's greenlet after the bridged call returns), not ``events.request.fire`` directly.
* Blocking inside a coroutine blocks every user's coroutines (as in any asyncio program).
* ``run_in_executor(None, ...)`` / ``asyncio.to_thread`` and DNS resolution use real OS threads
  (one per call), even when gevent has monkey-patched ``threading``.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import inspect
import os
import threading
import time
from collections import deque
from typing import Any, Awaitable, Callable, TypeVar

import gevent
from gevent.event import Event as _GeventEvent
from gevent.monkey import get_original

from ..pacing import waits as pacing_waits

__all__ = ["CANCEL_GRACE_S", "AsyncTasksMixin", "call_in_gevent", "in_loop_thread", "loop", "run", "run_sync",
           "shutdown"]

T = TypeVar("T")

#: how long a timed-out or killed :func:`run` waits for the cancelled coroutine to unwind
CANCEL_GRACE_S = 5.0
#: bound of :func:`shutdown`'s wait for pending tasks to finish cancelling, and for the thread
SHUTDOWN_TIMEOUT_S = 5.0

# The real (unpatched) threading primitives: gevent's monkey-patching turns threads into greenlets.
_start_new_thread = get_original("_thread", "start_new_thread")
_allocate_lock = get_original("_thread", "allocate_lock")
_get_ident = get_original("_thread", "get_ident")
_RLock = get_original("_thread", "RLock")
_DefaultSelector = get_original("selectors", "DefaultSelector")
_getaddrinfo = get_original("socket", "getaddrinfo")
_getnameinfo = get_original("socket", "getnameinfo")


# -- the loop's own executor: real threads ---------------------------------------------------------

class _Future(concurrent.futures.Future):
    """A concurrent future whose condition uses a real lock (safe between real threads)."""

    def __init__(self) -> None:
        super().__init__()
        self._condition = threading.Condition(_RLock())


class _RealThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """``run_in_executor(None, ...)`` for the loop: one real OS thread per call.

    The standard ``ThreadPoolExecutor`` would start greenlets when gevent has patched
    ``threading``, and those never run in the loop thread. (A subclass only because
    ``set_default_executor`` insists; none of the pool machinery is used.)
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="letrade-aio")
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        fut = _Future()

        def work() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        _start_new_thread(work, ())
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True


class _BridgeLoop(asyncio.SelectorEventLoop):
    """The process loop: the unpatched selector and unpatched (thread-run) name resolution."""

    def __init__(self) -> None:
        super().__init__(_DefaultSelector())
        self.set_default_executor(_RealThreadExecutor())

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        return await self.run_in_executor(None, _getaddrinfo, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, _getnameinfo, sockaddr, flags)


# -- one call: a coroutine on the loop, a gevent watcher to wake the waiting greenlet --------------

class _Call:
    """One :func:`run`: started and cancelled on the loop thread, awaited in a greenlet."""

    __slots__ = ("aw", "task", "cancel_requested", "done", "result", "exc", "watcher", "_wlock", "_state", "hub")

    def __init__(self, aw, watcher, state: _LoopState, hub: Any = None) -> None:
        self.aw = aw
        self.hub = hub                   # the caller's gevent hub, for call_in_gevent
        self.task: asyncio.Future | None = None
        self.cancel_requested = False
        self.done = False
        self.result: Any = None
        self.exc: BaseException | None = None
        self.watcher = watcher
        self._wlock = _allocate_lock()   # guards watcher.send() (loop thread) against close()
        self._state = state

    # loop thread
    def start(self) -> None:
        if self.cancel_requested:
            if inspect.iscoroutine(self.aw):
                self.aw.close()
            self.finish(exc=asyncio.CancelledError())
            return
        try:
            context = contextvars.copy_context()      # the task (and its children) inherit it
            context.run(_caller_hub.set, self.hub)
            self.task = context.run(asyncio.ensure_future, self.aw, loop=self._state.loop)
        except BaseException as exc:  # noqa: BLE001 - not awaitable: raised in the caller
            self.finish(exc=exc)
            return
        self.aw = None
        self.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        if task.cancelled():
            self.finish(exc=asyncio.CancelledError())
            return
        exc = task.exception()
        if exc is not None:
            self.finish(exc=exc)
        else:
            self.finish(result=task.result())

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.task is not None:
            self.task.cancel()

    def finish(self, result: Any = None, exc: BaseException | None = None) -> None:
        if self.done:
            return
        self.result, self.exc = result, exc
        self.done = True
        self._state.calls.discard(self)
        with self._wlock:
            if self.watcher is not None:
                self.watcher.send()

    # waiting greenlet
    def close_watcher(self) -> None:
        with self._wlock:
            w, self.watcher = self.watcher, None
        if w is not None:
            w.stop()
            w.close()

    def outcome(self):
        exc, result = self.exc, self.result
        self.exc = self.result = None
        if exc is not None:
            try:
                raise exc
            finally:
                exc = None
        return result


# -- the process loop --------------------------------------------------------------------------------

class _LoopState:
    def __init__(self) -> None:
        self.pid = os.getpid()
        #: set by :meth:`main` before ``ready`` is released; only such states are published in ``_state``
        self.loop: _BridgeLoop
        self.thread_ident: int | None = None
        self.calls: set[_Call] = set()
        self.ready = _allocate_lock()
        self.finished = _allocate_lock()
        self.error: BaseException | None = None

    def main(self) -> None:
        """The loop thread: run until stopped, then cancel what is left and close the loop."""
        try:
            self.thread_ident = _get_ident()
            lp = self.loop = _BridgeLoop()
            asyncio.set_event_loop(lp)
        except BaseException as exc:  # noqa: BLE001 - reported by _ensure_loop
            self.error = exc
            self.ready.release()
            self.finished.release()
            return
        self.ready.release()
        try:
            lp.run_forever()
        finally:
            try:
                for _ in range(3):   # cancelling may start more tasks: a few bounded rounds
                    tasks = [t for t in asyncio.all_tasks(lp) if not t.done()]
                    if not tasks:
                        break
                    for t in tasks:
                        t.cancel()
                    lp.run_until_complete(asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_S))
                lp.run_until_complete(lp.shutdown_asyncgens())
            except BaseException:  # noqa: BLE001 - best effort; the loop is closed below
                pass
            finally:
                for call in list(self.calls):   # never started (scheduled after stop) or stuck
                    call.finish(exc=RuntimeError("the letrade_perf.users.aio event loop was shut down"))
                try:
                    lp.close()
                except BaseException:  # noqa: BLE001
                    pass
                asyncio.set_event_loop(None)
                self.finished.release()


_lock = _allocate_lock()
_state: _LoopState | None = None


def _ensure_loop() -> _LoopState:
    global _state
    st = _state
    if st is not None and st.pid == os.getpid() and not st.loop.is_closed():
        return st
    with _lock:
        st = _state
        if st is not None and st.pid == os.getpid() and not st.loop.is_closed():
            return st
        # first use, a forked child (the parent's loop thread is not here) or a loop that died
        st = _LoopState()
        st.ready.acquire()
        st.finished.acquire()
        _start_new_thread(st.main, ())
        if not st.ready.acquire(timeout=30):
            raise RuntimeError("the asyncio loop thread did not start within 30 s")
        if st.error is not None:
            raise RuntimeError("the asyncio loop thread failed to start") from st.error
        _state = st
        return st


def _after_fork_in_child() -> None:
    global _lock, _state
    _lock = _allocate_lock()
    _state = None   # the parent's loop (and its thread) do not exist here; start afresh on use


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def loop() -> asyncio.AbstractEventLoop:
    """The process loop (started on first use, in its own real OS thread)."""
    st = _ensure_loop()
    if st.thread_ident != _get_ident():
        _remember_gevent_hub()
    return st.loop


_gevent_hub: Any = None
#: the hub of the thread whose :func:`run` started the current coroutine (inherited by its tasks)
_caller_hub: contextvars.ContextVar[Any] = contextvars.ContextVar("letrade_aio_caller_hub", default=None)


def _remember_gevent_hub() -> None:
    """Note the hub of the gevent thread the bridge serves (the one Locust runs in)."""
    global _gevent_hub
    if _gevent_hub is None or _gevent_hub.loop is None:
        _gevent_hub = gevent.get_hub()


async def call_in_gevent(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """From a coroutine on the process loop: run ``fn(*args, **kwargs)`` in a new greenlet of the
    gevent thread (where Locust, its events and the harness's pacer live) and await its result or
    exception. Cancelling the await kills the greenlet."""
    hub = _caller_hub.get()
    if hub is None or hub.loop is None:
        hub = _gevent_hub
    if hub is None or hub.loop is None:
        raise RuntimeError("no gevent thread to call into: start coroutines with letrade_perf.users.aio.run()")
    aloop = asyncio.get_running_loop()
    fut: asyncio.Future = aloop.create_future()
    holder: list = []
    waits = pacing_waits.current()      # the coroutine's timed blocks see the greenlet's pacing waits

    def settle(value: Any, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)

    def body() -> None:
        pacing_waits.bind(waits)
        try:
            value, exc = fn(*args, **kwargs), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            value, exc = None, e
        aloop.call_soon_threadsafe(settle, value, exc)

    def start() -> None:
        holder.append(gevent.spawn(body))

    hub.loop.run_callback_threadsafe(start)
    try:
        return await fut
    except asyncio.CancelledError:
        if holder:
            greenlet = holder[0]      # (run_callback_threadsafe passes positional arguments only)
            hub.loop.run_callback_threadsafe(lambda: greenlet.kill(block=False))
        raise


def in_loop_thread() -> bool:
    """True when called on the process loop's thread (e.g. from a coroutine run by :func:`run`)."""
    st = _state
    return st is not None and st.pid == os.getpid() and st.thread_ident == _get_ident()


def shutdown(timeout: float = SHUTDOWN_TIMEOUT_S) -> bool:
    """Stop the process loop: cancel pending tasks, close the loop, join its thread.

    Returns True when the thread finished within ``timeout`` seconds (or no loop ran). Pending
    :func:`run` calls raise ``CancelledError`` (or ``RuntimeError`` if never started). The
    next :func:`run` starts a new loop. Blocks the calling OS thread (it is a rare call).
    """
    global _state
    if in_loop_thread():
        raise RuntimeError("letrade_perf.users.aio.shutdown() called from the loop's own thread")
    with _lock:
        st, _state = _state, None
    if st is None or st.pid != os.getpid():
        return True
    try:
        st.loop.call_soon_threadsafe(st.loop.stop)
    except RuntimeError:   # already closed
        pass
    if not st.finished.acquire(timeout=max(timeout, 0) + SHUTDOWN_TIMEOUT_S):
        return False
    st.finished.release()
    return True


atexit.register(shutdown)


def run(coro: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``coro`` on the process loop and wait for it cooperatively (see the module docstring).

    Call it from a greenlet (a Locust user) or a plain thread, never from the loop thread (it
    would deadlock: ``RuntimeError``). Returns the coroutine's result or raises its exception.
    On ``timeout`` (seconds) the coroutine is cancelled and :class:`TimeoutError` is raised;
    when the caller is interrupted (``GreenletExit``, ``StopUser``, ``KeyboardInterrupt``…) the
    coroutine is cancelled and the interruption propagates.
    """
    if in_loop_thread():
        if inspect.iscoroutine(coro):
            coro.close()
        raise RuntimeError("letrade_perf.users.aio.run() called from the event loop's own thread: it would "
                           "deadlock; inside a coroutine use `await` instead")
    try:
        st = _ensure_loop()
    except BaseException:
        if inspect.iscoroutine(coro):
            coro.close()
        raise
    hub = gevent.get_hub()
    _remember_gevent_hub()
    event = _GeventEvent()
    watcher = hub.loop.async_()
    watcher.start(event.set)   # started before submitting: a send() before start() would be lost
    call = _Call(coro, watcher, st, hub)
    try:
        st.calls.add(call)
        try:
            st.loop.call_soon_threadsafe(call.start)
        except RuntimeError:   # the loop closed under us (shutdown from another thread)
            st.calls.discard(call)
            if inspect.iscoroutine(coro):
                coro.close()
            raise
        del coro
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not call.done:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                event.wait(remaining)
                event.clear()
        except BaseException:
            _cancel_and_wait(st, call, event)
            raise
        if not call.done:
            _cancel_and_wait(st, call, event)
            if call.done and not isinstance(call.exc, asyncio.CancelledError):
                return call.outcome()   # it finished as the timeout fired: keep its outcome
            raise TimeoutError(f"coroutine did not finish within {timeout} s (cancelled)")
        return call.outcome()
    finally:
        call.close_watcher()


def _cancel_and_wait(st: _LoopState, call: _Call, event) -> None:
    """Cancel ``call`` and give it :data:`CANCEL_GRACE_S` to unwind (cooperatively)."""
    try:
        st.loop.call_soon_threadsafe(call.cancel)
    except RuntimeError:   # loop closed: its shutdown finishes the call
        return
    deadline = time.monotonic() + CANCEL_GRACE_S
    while not call.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        event.wait(remaining)
        event.clear()


def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the plain function ``fn(*args, **kwargs)`` in the loop thread and return its result.

    For objects that bind the running loop when constructed, e.g.
    ``ex = run_sync(ccxt.async_support.binance, config)``.
    """
    async def call() -> T:
        return fn(*args, **kwargs)
    return run(call())


# -- Locust users --------------------------------------------------------------------------------------

def _bridge(fn: Callable) -> Callable:
    """A sync wrapper for the coroutine function ``fn(self, ...)`` that Locust can call."""
    @functools.wraps(fn)
    def bridged(self, *args, **kwargs):
        coro = fn(self, *args, **kwargs)
        if in_loop_thread():   # e.g. ``await super().on_start()`` from an async override
            return coro
        try:
            return run(coro, timeout=getattr(self, "aio_timeout", None))
        finally:
            flush = getattr(self, "flush_requests", None)
            if flush is not None:
                flush()
    bridged._aio_bridged = True  # type: ignore[attr-defined]  # a marker attribute on a function: mypy has none
    return bridged


class AsyncTasksMixin:
    """Mix into a Locust ``User`` or ``TaskSet`` (before it in the bases): ``async def`` tasks,
    ``on_start`` and ``on_stop`` run on the process loop through :func:`run`.

    The class attributes keep the coroutine functions (so async code can ``await
    self.other_task()``); Locust's task list and ``on_start``/``on_stop`` get sync wrappers.
    Exceptions propagate as from any task (Locust reports them as user errors).
    """

    #: bound (seconds) of every bridged call; None waits as long as the coroutine runs
    aio_timeout: float | None = None
    # declared, not set, here: Locust's task list (``User``/``TaskSet``) and a TaskSet's user
    tasks: Any
    user: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tasks = cls.__dict__.get("tasks")
        if isinstance(tasks, list):   # Locust's metaclass has gathered the (weighted) task list
            wrapped: dict[int, Callable] = {}
            new = []
            for t in tasks:
                if inspect.iscoroutinefunction(t):
                    t = wrapped.setdefault(id(t), _bridge(t))
                new.append(t)
            cls.tasks = new
        for name in ("on_start", "on_stop"):
            fn = cls.__dict__.get(name)
            if fn is not None and inspect.iscoroutinefunction(fn):
                setattr(cls, name, _bridge(fn))

    # -- request events, fired in the user's greenlet -------------------------------------------------
    def fire_request(self, name: str, response_time: float, *, request_type: str = "aio",
                     response_length: int = 0, exception: BaseException | None = None, **kwargs: Any) -> None:
        """Report one request to Locust (``events.request``). From the loop thread the event is
        queued and fired in the user's greenlet when the bridged call returns."""
        event = dict(request_type=request_type, name=name, response_time=response_time,
                     response_length=response_length, exception=exception, context=kwargs.pop("context", {}),
                     **kwargs)
        if in_loop_thread():
            self._aio_pending_events().append(event)
        else:
            self._aio_fire(event)

    async def measure(self, name: str, aw: Awaitable[T], *, request_type: str = "aio") -> T:
        """``await aw``, timed, reported as a request ``name``; exceptions are reported and re-raised.
        The time its bridged calls spent waiting for the pacer is left out (their union, when
        they wait at once: :mod:`letrade_perf.pacing.waits`)."""
        with pacing_waits.collecting() as waits:
            t0 = time.perf_counter()
            try:
                result = await aw
            except Exception as exc:
                self.fire_request(name, pacing_waits.unpaced_ms(t0, waits), request_type=request_type, exception=exc)
                raise
        self.fire_request(name, pacing_waits.unpaced_ms(t0, waits), request_type=request_type, response_length=_length(result))
        return result

    def flush_requests(self) -> None:
        """Fire the events queued by :meth:`fire_request` on the loop thread (done after every bridged call)."""
        pending = self.__dict__.get("_aio_events")
        while pending:
            try:
                event = pending.popleft()
            except IndexError:
                break
            self._aio_fire(event)

    def _aio_pending_events(self) -> deque:
        pending = self.__dict__.get("_aio_events")
        if pending is None:
            pending = self.__dict__.setdefault("_aio_events", deque())
        return pending

    def _aio_fire(self, event: dict) -> None:
        env = getattr(self, "environment", None)
        if env is None:   # a TaskSet: its user carries the environment
            env = self.user.environment
        env.events.request.fire(**event)


def _length(result: Any) -> int:
    try:
        return len(result)
    except TypeError:
        return 0


