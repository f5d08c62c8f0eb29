"""API keys, request signatures and the timestamp / recvWindow rules (reference §3).

REST: the key is in ``X-MBX-APIKEY``; the signature covers the exact ``query string + body``
as received with the ``signature=…`` parameter removed (it may sit in either part). HMAC
signatures are hex and compared case-insensitively; Ed25519 signatures are base64 (they
arrive percent-encoded and are verified after decoding). WebSocket API: the payload is the
params sorted by name (:func:`letrade_perf.binance.signing.ws_api_payload`).

Nothing here logs or echoes a secret or a signature.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, cast

from ..binance import signing
from ..binance.errors import BinanceError, error, mandatory
from .config import AccountSpec, SimConfig

_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{1,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,19}$")
_RECV_WINDOW = re.compile(r"^[0-9]{1,19}(\.[0-9]{1,3})?$")
#: Timestamps above this are microseconds (ms timestamps stay below it until the year 5138).
_MICROS_THRESHOLD = 100_000_000_000_000

AHEAD_MSG = "Timestamp for this request was 1000ms ahead of the server's time."
OUTSIDE_MSG = "Timestamp for this request is outside of the recvWindow."
DEFAULT_RECV_WINDOW = 5000.0
MAX_RECV_WINDOW = 60000.0


@dataclass(frozen=True)
class _Key:
    account: AccountSpec
    key_type: str
    secret: Any  # HMAC secret str or Ed25519 public key object


class Auth:
    """Checks API keys, signatures and timestamps; returns the account id (= its API key).

    Public API:

    * :meth:`account_for_key` ``(api_key)`` → :class:`AccountSpec` or None.
    * :meth:`check_api_key` ``(api_key)`` → account id (USER_STREAM endpoints: key only).
    * :meth:`verify_rest` ``(api_key, raw_query, raw_body, params)`` → account id (SIGNED).
    * :meth:`verify_ws` ``(params)`` → account id (WebSocket API signed requests).
    * :meth:`check_timestamp` ``(params)`` — the timestamp / recvWindow rules alone.

    Failures raise :class:`BinanceError`: -2015 (HTTP 401) missing or unknown key, -2014
    (401) malformed key, -1102 missing ``timestamp``/``signature``, -1131 recvWindow over
    60000, -1022 bad signature, -1021 timestamp ahead / outside the recvWindow.
    """

    def __init__(self, config: SimConfig, clock):
        self.clock = clock
        self._keys: dict[str, _Key] = {}
        for acct in config.accounts:
            secret: Any  # HMAC secret str or Ed25519 public key object
            if acct.key_type == signing.ED25519:
                # validate() guarantees an ED25519 account has its public_key
                secret = signing.load_ed25519_public(cast(str, acct.public_key))
            else:
                secret = acct.secret
            self._keys[acct.api_key] = _Key(acct, acct.key_type, secret)

    # -- keys -----------------------------------------------------------------------------
    def account_for_key(self, api_key: str | None) -> AccountSpec | None:
        k = self._keys.get(api_key) if api_key else None
        return k.account if k else None

    def _key(self, api_key: str | None) -> _Key:
        if not api_key:
            raise error(-2015)
        k = self._keys.get(api_key)
        if k is None:
            if not _KEY_FORMAT.match(api_key):
                raise error(-2014)
            raise error(-2015)
        return k

    def check_api_key(self, api_key: str | None) -> str:
        """Account id for a known key; -2015 when missing or unknown, -2014 when malformed."""
        return self._key(api_key).account.api_key

    # -- timestamps -----------------------------------------------------------------------
    def check_timestamp(self, params: Mapping[str, Any]) -> None:
        """Reject a missing/malformed ``timestamp`` (-1102), a bad ``recvWindow`` (-1102 /
        -1131), ``timestamp >= server + 1000`` and ``server - timestamp > recvWindow`` (-1021)."""
        ts_raw = params.get("timestamp")
        ts_s = "" if ts_raw is None else str(ts_raw)
        if not _TIMESTAMP.match(ts_s):
            raise mandatory("timestamp")
        ts = int(ts_s)
        if ts >= _MICROS_THRESHOLD:
            ts_ms = ts / 1000.0
        else:
            ts_ms = float(ts)
        rw_raw = params.get("recvWindow")
        if rw_raw is None or rw_raw == "":
            recv_window = DEFAULT_RECV_WINDOW
        else:
            rw_s = str(rw_raw)
            if not _RECV_WINDOW.match(rw_s):
                raise mandatory("recvWindow")
            recv_window = float(rw_s)
            if recv_window > MAX_RECV_WINDOW:
                raise error(-1131)
        now = self.clock.now_ms()
        if ts_ms >= now + 1000:
            raise BinanceError(-1021, AHEAD_MSG, 400)
        if now - ts_ms > recv_window:
            raise BinanceError(-1021, OUTSIDE_MSG, 400)

    # -- signatures -----------------------------------------------------------------------
    @staticmethod
    def _valid(k: _Key, payload: str, signature: str) -> bool:
        if not payload.isascii():  # non-ASCII must be percent-encoded before signing
            return False
        if k.key_type == signing.ED25519:
            return signing.verify_ed25519(k.secret, payload, signature)
        return signing.verify_hmac(k.secret, payload, signature)

    def verify_rest(self, api_key: str | None, raw_query: str, raw_body: str,
                    params: Mapping[str, str]) -> str:
        """Authenticate a SIGNED REST request; return the account id.

        ``raw_query`` / ``raw_body`` are the still-encoded query string and form body as
        received; ``params`` their decoded union (query wins) from which ``signature`` is read.
        """
        k = self._key(api_key)
        signature = params.get("signature")
        if not signature:
            raise mandatory("signature")
        if params.get("timestamp") in (None, ""):
            raise mandatory("timestamp")
        payload = _strip_signature(raw_query) + _strip_signature(raw_body)
        if not self._valid(k, payload, signature):
            raise error(-1022)
        self.check_timestamp(params)
        return k.account.api_key

    def verify_ws(self, params: Mapping[str, Any]) -> str:
        """Authenticate a signed WebSocket API request (``apiKey``, ``timestamp``,
        ``signature`` in ``params``); return the account id."""
        k = self._key(params.get("apiKey"))
        signature = params.get("signature")
        if not signature or not isinstance(signature, str):
            raise mandatory("signature")
        if params.get("timestamp") in (None, ""):
            raise mandatory("timestamp")
        if not self._valid(k, signing.ws_api_payload(params), signature):
            raise error(-1022)
        self.check_timestamp(params)
        return k.account.api_key

    def key_type(self, api_key: str) -> str | None:
        k = self._keys.get(api_key)
        return k.key_type if k else None


def _strip_signature(raw: str) -> str:
    """``raw`` (an encoded query string or form body) without its ``signature=…`` part,
    byte-for-byte otherwise."""
    if not raw or "signature=" not in raw:
        return raw
    if raw.startswith("signature="):
        _, _, rest = raw.partition("&")
        return rest
    head, sep, tail = raw.rpartition("&signature=")
    if sep:
        # the usual case: appended at the end; otherwise splice the middle parameter out
        _, amp, rest = tail.partition("&")
        return head + (amp + rest if amp else "")
    return raw
