"""Logging set-up shared by ``letrade-perf`` and the Locust plugin: text or JSON lines, secrets masked."""
from __future__ import annotations

import json
import logging
import os

FORMAT_ENV = "LETRADE_LOG_FORMAT"
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
    """Switch every root handler to ``fmt`` (``json``; anything else leaves them as they are)."""
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
