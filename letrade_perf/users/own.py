"""Your own trading code as a user kind: the profile names a factory, no locustfile needed.

.. code-block:: yaml

    users:
      own:
        factory: trading_system.factory:build     # module:callable
        path: ..                                   # put on sys.path first (relative to the profile)
        wait_min_s: 1
        wait_max_s: 1

Each user (on its process's one asyncio loop, :mod:`letrade_perf.users.aio`):

1. ``on_start``: imports the factory and calls it with a guarded ``ccxt.async_support`` binance
   (:func:`~letrade_perf.users.guarded.guarded_ccxt_async`: every request paced, measured,
   safety-capped and ledger-tracked) — plus ``symbol="BTC/USDT"`` (the user's symbol, ccxt form)
   when the factory takes a ``symbol`` — and awaits the result if it is awaitable; then awaits
   ``system.start()`` if the system has one;
2. each task: ``await system.step()``, timed as ``user`` / ``own step``;
3. ``on_stop``: awaits ``system.stop()`` if it has one, then closes the exchange.

An exception out of the factory, ``start``, ``step`` or ``stop`` is a user error (the
``user_errors`` criterion fails the run); an import problem names the profile key.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any, Callable, ClassVar

from locust import User, task

from ..config.profile import OwnCodeSettings
from ..core.errors import ConfigError
from .aio import AsyncTasksMixin
from .base import HarnessUserMixin
from .guarded import guarded_ccxt_async

KEY = "users.own.factory"


def load_factory(spec: str, path: str = "", profile_source: str | None = None) -> Callable[..., Any]:
    """The callable ``module:name`` names, after putting ``path`` (relative to the profile file's
    directory) first on ``sys.path``. Raises :class:`ConfigError` naming the profile key."""
    if path:
        base = os.path.dirname(os.path.abspath(profile_source)) if profile_source and os.path.isfile(
            profile_source) else os.getcwd()
        where = os.path.normpath(os.path.join(base, path))
        if not os.path.isdir(where):
            raise ConfigError(f"{profile_source or 'profile'}: users.own.path: no directory {where}")
        if where not in sys.path:
            sys.path.insert(0, where)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:    # noqa: BLE001 - reported with the key that named it
        raise ConfigError(f"{profile_source or 'profile'}: {KEY}: cannot import {module_name!r}: "
                          f"{type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{profile_source or 'profile'}: {KEY}: {module_name!r} has no callable {attr!r}")
    return fn


class OwnCodeUser(AsyncTasksMixin, HarnessUserMixin, User):
    """Runs the system the profile's ``users.own.factory`` builds (see the module docstring)."""

    abstract = True
    letrade_kind: ClassVar[str] = "own"
    #: the profile's ``users.own`` (frozen): ``factory``, ``path``, ``orders``
    settings: ClassVar[OwnCodeSettings] = OwnCodeSettings(factory="unset:unset")
    aio_timeout = 120

    def on_start(self) -> None:
        ctx = self.ctx
        symbol = self.pick_symbol()
        rules = ctx.symbol_rules.get(symbol)
        self.market = f"{rules.base}/{rules.quote}" if rules is not None else symbol
        self.build = load_factory(self.settings.factory, self.settings.path, getattr(ctx.profile, "source", None))
        self.system: Any = None
        self.exchange = None
        self._start()

    async def _start_async(self) -> None:
        self.exchange = await guarded_ccxt_async(self)
        kwargs = {}
        try:
            if "symbol" in inspect.signature(self.build).parameters:
                kwargs["symbol"] = self.market
        except (TypeError, ValueError):
            pass
        system = self.build(self.exchange, **kwargs)
        if inspect.isawaitable(system):
            system = await system
        self.system = system
        start = getattr(system, "start", None)
        if start is not None:
            result = start()
            if inspect.isawaitable(result):
                await result

    def _start(self) -> None:
        from . import aio

        aio.run(self._start_async(), timeout=self.aio_timeout)
        self.flush_requests()

    @task  # type: ignore[type-var]  # locust types tasks as sync; AsyncTasksMixin bridges async ones
    async def step(self) -> None:
        await self.measure("own step", _awaitable(self.system.step()), request_type="user")

    async def on_stop(self) -> None:
        try:
            stop = getattr(self.system, "stop", None)
            if stop is not None:
                result = stop()
                if inspect.isawaitable(result):
                    await result
        finally:
            if self.exchange is not None:
                await self.exchange.close()


async def _awaitable(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


__all__ = ["OwnCodeUser", "load_factory"]
