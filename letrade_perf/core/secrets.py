"""Secret masking: registered secrets never appear in output, logs or reprs.

Every secret the harness loads (API secrets, private keys) is passed to :func:`register_secret`;
:func:`mask` replaces each registered value with ``***`` and shortens anything shaped like a
Binance API key (64 letters and digits) to ``abcd***wxyz``. :func:`install_log_masking` applies
:func:`mask` to every log record (message, arguments, exception and stack text).
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
#: Values shorter than this are not registered: masking them would garble unrelated text.
MIN_SECRET_LEN = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()          # longest first, so a secret containing another is masked whole

# A Binance API key (and an HMAC-SHA256 hex signature) is 64 letters/digits; keep 4 at each end.
_API_KEY = re.compile(r"(?<![A-Za-z0-9])([A-Za-z0-9]{4})[A-Za-z0-9]{56}([A-Za-z0-9]{4})(?![A-Za-z0-9])")
_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----", re.S)


def register_secret(value: Any) -> None:
    """Remember ``value`` (a string or :class:`Secret`) so :func:`mask` hides it from now on.

    For a PEM the base64 body and each of its lines are registered too, so a key printed with
    other line breaks is still hidden.
    """
    global _ordered
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        return
    candidates = {value.strip()}
    for body in _PEM_BODY.findall(value):
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        candidates.update(lines)
        candidates.add("".join(lines))
    with _lock:
        _secrets.update(c for c in candidates if len(c) >= MIN_SECRET_LEN)
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def mask(text: Any) -> str:
    """``text`` with every registered secret replaced by ``***`` and API keys shortened."""
    out = text if isinstance(text, str) else str(text)
    for secret in _ordered:
        if secret in out:
            out = out.replace(secret, MASK)
    return _API_KEY.sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", out)


def mask_api_key(api_key: str) -> str:
    """``abcd***wxyz`` for display (short keys become ``***``)."""
    return f"{api_key[:4]}{MASK}{api_key[-4:]}" if len(api_key) >= 16 else MASK


class Secret:
    """A secret value whose ``str``/``repr``/``format`` print ``***``; :meth:`reveal` returns it.

    Creating one registers the value for masking.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret wraps a string")
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The secret itself (for signing; never print it)."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


class SecretMaskingFilter(logging.Filter):
    """Masks a record's message (with its arguments merged in), exception and stack text."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Merge ``args`` into ``msg`` and mask it; pre-render and mask exception and stack text."""
    if getattr(record, "_letrade_masked", False):
        return record
    try:
        message = record.getMessage()
    except Exception:                     # a broken format string: keep the raw parts, masked
        message = f"{record.msg} {record.args!r}" if record.args else str(record.msg)
    record.msg = mask(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    record._letrade_masked = True
    return record


_FILTER = SecretMaskingFilter()
_factory_installed = False


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Mask secrets in every log record.

    Adds :class:`SecretMaskingFilter` to the handlers of ``logger`` (default: the root logger)
    and wraps the log-record factory so records reaching handlers added later (Locust's own
    logging setup replaces the root handlers) are masked too. Idempotent.
    """
    global _factory_installed
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    with _lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return mask_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _factory_installed = True
