"""The configuration error type shared by profiles, environments, credentials and the simulator config."""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value. The message names the source (file, variable) and the key path.

    The message is always one line: control characters a bad value or key brings in (a newline in
    a YAML key, say) are escaped.
    """

    #: every error when several were found at once (:func:`combined`); else just this one
    errors: tuple[ConfigError, ...]

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if not text.isprintable():
            text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        super().__init__(text, *args)
        self.errors = (self,)


#: How :func:`combined` joins several errors into one line.
SEPARATOR = " | "


def combined(errors: list[ConfigError], error: type[ConfigError] = ConfigError) -> ConfigError:
    """One error reporting all of ``errors`` (each flattened): the only one itself, else an
    ``error`` whose message joins them and whose ``errors`` lists them (a CLI prints one per line)."""
    flat = [x for e in errors for x in e.errors]
    if len(flat) == 1:
        return flat[0]
    out = error(SEPARATOR.join(str(e) for e in flat))
    out.errors = tuple(flat)
    return out


#: Profiles raise :class:`ConfigError`; the alias reads better at some call sites.
ProfileError = ConfigError


class FieldError(ValueError):
    """Raised by a config dataclass's ``__post_init__`` for one field (``field`` may be a sub-path).

    The strict loader turns it into a :class:`ConfigError` whose key path ends in ``field``.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def internal_error(what: str, exc: BaseException, log_dir: str | None = None) -> int:
    """Report an unexpected exception the way the tool ends on one: the traceback into a log file
    (``log_dir``, else the temp directory), one line on stderr naming it, exit code 70
    (:data:`~letrade_perf.core.endings.EXIT_HARNESS`). Returns the exit code."""
    import datetime as _dt
    import os
    import sys
    import tempfile
    import traceback

    from .endings import EXIT_HARNESS
    from .secrets import mask as mask_text

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = mask_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    path = None
    for directory in (log_dir, tempfile.gettempdir()):
        if not directory:
            continue
        candidate = os.path.join(directory, f"letrade-perf-error-{stamp}-{os.getpid()}.log")
        try:
            with open(candidate, "w", encoding="utf-8") as fh:
                fh.write(f"{what}: internal error\n{text}")
            path = candidate
            break
        except OSError:
            continue
    where = f"details in {path}" if path else "no log could be written"
    first = mask_text(f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__)
    print(f"{what}: internal error ({first}); {where}; exit code {EXIT_HARNESS}", file=sys.stderr)
    return EXIT_HARNESS
