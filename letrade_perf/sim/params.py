"""Request parameter parsing with Binance's error codes.

Both the REST app and the WebSocket API hand the engine a :class:`Params` (name -> raw string)
and the engine reads typed values through it. Every bad value raises the
:class:`~letrade_perf.binance.errors.BinanceError` Binance would send — never a ``ValueError``.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Iterable

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

    def get(self, name: str, default=None):
        return self.raw.get(name, default)

    def str(self, name: str, required: bool = False, default: str | None = None) -> str | None:
        v = self.raw.get(name)
        if v is None or v == "":
            if required:
                raise mandatory(name)
            return default
        return v

    def symbol(self, name: str = "symbol", required: bool = True) -> str | None:
        v = self.str(name, required)
        if v is None:
            return None
        if not _SYMBOL.match(v):
            raise illegal_chars(name, "^[A-Z0-9-_.]{1,20}$")
        return v

    def symbols(self, name: str = "symbols") -> list[str] | None:
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

    def int(self, name: str, required: bool = False, default: int | None = None,
            lo: int | None = None, hi: int | None = None) -> int | None:
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

    def decimal(self, name: str, required: bool = False) -> Decimal | None:
        v = self.str(name, required)
        if v is None:
            return None
        if not _DECIMAL.match(v):
            raise error(-1100, name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        try:
            return Decimal(v)
        except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal
            raise error(-1100, name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$") from None

    def enum(self, name: str, allowed: Iterable[str], required: bool = False, code: int = -1100,
             default: str | None = None) -> str | None:
        v = self.str(name, required)
        if v is None:
            return default
        allowed = tuple(allowed)
        if v not in allowed:
            if code == -1100:
                raise error(-1100, name, "|".join(allowed))
            raise error(code)
        return v

    def bool(self, name: str, default: bool = False) -> bool:
        v = self.str(name)
        if v is None:
            return default
        lv = v.lower()
        if lv == "true":
            return True
        if lv == "false":
            return False
        raise error(-1100, name, "true|false")

    def client_order_id(self, name: str) -> str | None:
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
