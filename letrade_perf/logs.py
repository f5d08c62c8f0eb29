"""Logging set-up shared by ``letrade-perf`` and the Locust plugin: text or JSON lines, secrets masked,
and the console's live progress line (:class:`StatusLine`)."""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO, Mapping

FORMAT_ENV = "LETRADE_LOG_FORMAT"
CONSOLE_ENV = "LETRADE_CONSOLE"
"""Set by ``letrade-perf run`` for its Locust processes: ``run`` (the parent prints the verdict
block last, after Locust's tables) or ``quiet`` (also no progress line, no Locust stats tables).
Unset (plain ``locust -f``): the gate prints the verdict block itself."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def apply_format(fmt: str | None) -> None:
    """Switch every root handler to ``fmt`` (``json``; anything else leaves them as they are), and
    apply the console mode ``letrade-perf run`` asked for (:func:`apply_console`)."""
    apply_console(os.environ.get(CONSOLE_ENV))
    if fmt != "json":
        return
    formatter = JsonFormatter()
    for h in logging.getLogger().handlers:
        h.setFormatter(formatter)
    for name in ("locust.stats_logger",):   # Locust's console table has its own handler
        for h in logging.getLogger(name).handlers:
            h.setFormatter(formatter)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """One stream handler on the root logger in ``fmt``, secrets masked; child processes inherit
    the format through ``LETRADE_LOG_FORMAT``."""
    from .core.secrets import install_log_masking

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    os.environ[FORMAT_ENV] = fmt
    install_log_masking()


STATS_LOGGER = "locust.stats_logger"
"""Locust's console tables (periodic and final) are INFO records of this logger."""


def apply_console(mode: str | None) -> None:
    """``quiet`` (``letrade-perf run --quiet``): Locust's stats tables, periodic and final, are
    not printed (its stats logger only passes warnings); the CSV and HTML reports still have them."""
    if mode == "quiet":
        logging.getLogger(STATS_LOGGER).setLevel(logging.WARNING)


class _CloseStatus(logging.Filter):
    """Ends an open status line before a log record is written under it (the record gets a line
    of its own, the progress line stays as it was last drawn)."""

    def __init__(self, status: StatusLine) -> None:
        super().__init__()
        self.status = status

    def filter(self, record: logging.LogRecord) -> bool:
        self.status.close()
        return True


class StatusLine:
    """The live progress line: on a terminal with text logs it rewrites itself in place (``\\r``),
    elsewhere (a pipe, a file, ``--log-format json``) each line is an INFO record of ``logger``.

    In place, every log handler writing to a terminal first ends the line, so a log record never
    lands on the end of the progress line; :meth:`close` ends it before a final print."""

    def __init__(self, logger: logging.Logger, *, stream: IO[str] | None = None, fmt: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.logger = logger
        self.stream = stream if stream is not None else sys.stderr
        environ = os.environ if environ is None else environ
        self.inplace = fmt != "json" and environ.get("TERM") != "dumb" and _isatty(self.stream)
        self.open = False
        self._guarded = False

    def show(self, text: str) -> None:
        """Draw ``text`` as the current progress line."""
        if not self.inplace:
            self.logger.info("%s", text)
            return
        if not self._guarded:
            self._guard()
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.open = True

    def close(self) -> None:
        """End the line drawn in place (a newline), if one is open."""
        if self.open:
            self.open = False
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def _guard(self) -> None:
        self._guarded = True
        guard = _CloseStatus(self)
        for name in (None, "locust", STATS_LOGGER):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and _isatty(handler.stream):
                    handler.addFilter(guard)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False
