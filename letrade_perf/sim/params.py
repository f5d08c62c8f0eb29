"""Request parameter parsing with Binance's error codes.

Both the REST app and the WebSocket API hand the engine a :class:`Params` (name -> raw string)
and the engine reads typed values through it. Every bad value raises the
:class:`~letrade_perf.binance.errors.BinanceError` Binance would send — never a ``ValueError``.
"""
from __future__ import annotations

import builtins
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Literal, overload

from ..binance.errors import BinanceError, error, illegal_chars, mandatory

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INT = re.compile(r"^-?[0-9]{1,19}$")
_SYMBOL = re.compile(r"^[A-Z0-9-_.]{1,20}$")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_INT64_MAX = 2**63 - 1


class Params:
    """Raw request parameters (``str -> str``) with typed, Binance-validated accessors."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, str]):
        self.raw = raw

    def __contains__(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    @overload
    def str(self, name: builtins.str, required: Literal[True], default: builtins.str | None = None) -> builtins.str:
        ...

    @overload
    def str(self, name: builtins.str, required: builtins.bool = False, *, default: builtins.str) -> builtins.str:
        ...

    @overload
    def str(self, name: builtins.str, required: builtins.bool = False,
            default: builtins.str | None = None) -> builtins.str | None:
        ...

    def str(self, name: builtins.str, required: builtins.bool = False,
            default: builtins.str | None = None) -> builtins.str | None:
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise mandatory(name)
            return default
        return v

    @overload
    def symbol(self, name: builtins.str = "symbol", required: Literal[True] = True) -> builtins.str:
        ...

    @overload
    def symbol(self, name: builtins.str = "symbol", required: builtins.bool = True) -> builtins.str | None:
        ...

    def symbol(self, name: builtins.str = "symbol", required: builtins.bool = True) -> builtins.str | None:
        v = self.str(name, required)
        if v is None:
            return None
        if not _SYMBOL.match(v):
            raise illegal_chars(name, "^[A-Z0-9-_.]{1,20}$")
        return v

    def symbols(self, name: builtins.str = "symbols") -> list[builtins.str] | None:
        """A JSON array of symbols (``symbols=["BTCUSDT","ETHUSDT"]``)."""
        v = self.str(name)
        if v is None:
            return None
        try:
            arr = json.loads(v)
        except ValueError:
            raise illegal_chars(name, "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$") from None
        if not isinstance(arr, list) or not all(isinstance(s, str) and _SYMBOL.match(s) for s in arr):
            raise illegal_chars(name, "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$")
        if not arr:
            raise error(-1102, name)
        return arr

    @overload
    def int(self, name: builtins.str, required: Literal[True], default: builtins.int | None = None,
            lo: builtins.int | None = None, hi: builtins.int | None = None) -> builtins.int:
        ...

    @overload
    def int(self, name: builtins.str, required: builtins.bool = False, *, default: builtins.int,
            lo: builtins.int | None = None, hi: builtins.int | None = None) -> builtins.int:
        ...

    @overload
    def int(self, name: builtins.str, required: builtins.bool = False, default: builtins.int | None = None,
            lo: builtins.int | None = None, hi: builtins.int | None = None) -> builtins.int | None:
        ...

    def int(self, name: builtins.str, required: builtins.bool = False, default: builtins.int | None = None,
            lo: builtins.int | None = None, hi: builtins.int | None = None) -> builtins.int | None:
        v = self.str(name, required)
        if v is None:
            return default
        if not _INT.match(v):
            raise error(-1100, name, "^[0-9]{1,20}$")
        n = int(v)
        if n > _INT64_MAX or n < -_INT64_MAX:
            raise error(-1100, name, "^[0-9]{1,20}$")
        if lo is not None and n < lo:
            raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{lo}..'.")
        if hi is not None and n > hi:
            raise BinanceError(-1130, f"Invalid data sent for a parameter. '{name}' cannot be greater than {hi}.")
        return n

    def decimal(self, name: builtins.str, required: builtins.bool = False) -> Decimal | None:
        v = self.str(name, required)
        if v is None:
            return None
        if not _DECIMAL.match(v):
            raise error(-1100, name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        try:
            return Decimal(v)
        except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal
            raise error(-1100, name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$") from None

    @overload
    def enum(self, name: builtins.str, allowed: Iterable[builtins.str], required: Literal[True],
             code: builtins.int = -1100, default: builtins.str | None = None) -> builtins.str:
        ...

    @overload
    def enum(self, name: builtins.str, allowed: Iterable[builtins.str], required: builtins.bool = False,
             code: builtins.int = -1100, *, default: builtins.str) -> builtins.str:
        ...

    @overload
    def enum(self, name: builtins.str, allowed: Iterable[builtins.str], required: builtins.bool = False,
             code: builtins.int = -1100, default: builtins.str | None = None) -> builtins.str | None:
        ...

    def enum(self, name: builtins.str, allowed: Iterable[builtins.str], required: builtins.bool = False,
             code: builtins.int = -1100, default: builtins.str | None = None) -> builtins.str | None:
        v = self.str(name, required)
        if v is None:
            return default
        allowed = tuple(allowed)
        if v not in allowed:
            if code == -1100:
                raise error(-1100, name, "|".join(allowed))
            raise error(code)
        return v

    def bool(self, name: builtins.str, default: builtins.bool = False) -> builtins.bool:
        v = self.str(name)
        if v is None:
            return default
        lv = v.lower()
        if lv == "true":
            return True
        if lv == "false":
            return False
        raise error(-1100, name, "true|false")

    def client_order_id(self, name: builtins.str) -> builtins.str | None:
        v = self.raw.get(name)
        if v is None:
            return None
        if v == "":
            raise error(-1118 if name == "newClientOrderId" else -1119)
        if not _CLIENT_ID.match(v):
            raise error(-1100, name, "^[a-zA-Z0-9-_]{1,36}$")
        return v


def parse_query(raw_pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Collapse decoded ``(name, value)`` pairs into a dict; a repeated name is -1101."""
    out: dict[str, str] = {}
    for k, v in raw_pairs:
        if k in out:
            raise error(-1101)
        out[k] = v
    return out
