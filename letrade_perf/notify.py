"""Webhook notifications (Slack-compatible incoming webhooks and Telegram bots) about a run.

Three events: the final ``verdict``, a safety ``abort``, and a live ``criterion_failed``. The
:class:`Notifier` formats one text per event and queues one message per target subscribed to it;
a daemon worker thread posts them, so the harness never waits on a chat server (under Locust,
gevent's monkey-patching makes that thread a greenlet — which is fine: the post yields while it
waits on the socket). At quit, :meth:`Notifier.flush` waits a bounded time so the verdict goes out.

A webhook URL is a credential (whoever has it can post to the channel; a Telegram URL holds the
bot token), so every URL — and the bot token on its own — is registered with
:func:`~letrade_perf.core.secrets.register_secret`, and no message, exception or return value
of this module contains one: targets are named ``slack #1``, ``telegram #2``.

Delivery is best effort: a receiver that refuses the connection, times out or answers non-2xx is
retried once after :data:`RETRY_DELAY_S`, then logged at WARNING and counted in
:meth:`Notifier.stats` — never raised into the run.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .core.errors import ConfigError
from .core.secrets import MASK, mask, register_secret
from .reports import fmt

log = logging.getLogger(__name__)

KINDS = ("slack", "telegram")
EVENTS = ("verdict", "abort", "criterion_failed")
RETRY_DELAY_S = 1.0
"""Seconds before the one retry of a failed post."""
MAX_QUEUED = 100
"""Messages waiting beyond this are dropped (and counted as failed): a hung receiver must not grow memory."""
MAX_TEXT = 3500
"""Texts are cut to this many characters (Telegram's limit is 4096; Slack folds long messages)."""
MAX_LISTED = 10
"""At most this many failing criteria are listed in a verdict message."""

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_TELEGRAM_TOKEN = re.compile(r"/bot([^/]+)/")

PostFn = Callable[[str, bytes, float], int]


def _scrub(text: object) -> str:
    """``text`` with registered secrets masked and any remaining URL replaced (belt and braces)."""
    return _URL_IN_TEXT.sub("<url>", mask(text))


def _register_url(kind: str, url: str) -> None:
    parts = urlsplit(url)
    register_secret(url)
    register_secret(urlunsplit(parts._replace(query="", fragment="")))
    if kind == "telegram":
        m = _TELEGRAM_TOKEN.search(parts.path)
        if m:
            register_secret(m.group(1))
    elif parts.path.strip("/"):
        register_secret(parts.path)          # a Slack hook's path is the secret part


@dataclass(frozen=True)
class WebhookTarget:
    """Where to post: a Slack-compatible webhook (``{"text": ...}``) or a Telegram ``sendMessage`` URL.

    ``url`` is a secret (registered for masking, hidden from ``repr``); ``chat_id`` is required for
    Telegram; ``events`` are the events this target receives.
    """

    kind: str
    url: str = field(repr=False)
    chat_id: str | None = None
    events: tuple[str, ...] = EVENTS

    def __post_init__(self) -> None:
        if isinstance(self.url, str):
            _register_url(self.kind, self.url)           # first: any later message may quote it
        if self.kind not in KINDS:
            raise ValueError(f"webhook kind must be slack or telegram, got {self.kind!r}")
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{self.kind} webhook URL must be an http(s) URL (got {MASK})")
        events = tuple(self.events)
        bad = [e for e in events if e not in EVENTS]
        if bad:
            raise ValueError(f"{self.kind} webhook: unknown event(s) {bad!r} (known: {', '.join(EVENTS)})")
        object.__setattr__(self, "events", events)
        chat = None if self.chat_id is None else str(self.chat_id).strip() or None
        object.__setattr__(self, "chat_id", chat)
        if self.kind == "telegram" and not chat:
            raise ValueError("telegram webhook needs a chat_id")

    def payload(self, text: str) -> dict:
        """The JSON body for ``text``."""
        if self.kind == "slack":
            # Slack mrkdwn reads <...> as links and &...; as entities: escape exactly those three.
            return {"text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}
        return {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}


def _split_telegram_query(url: str) -> tuple[str, str | None]:
    """``(url without query, chat_id from ?chat_id=)``; other query parameters are refused."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"chat_id"})
    if unknown:
        raise ValueError(f"telegram webhook URL {MASK}: unsupported query parameter(s) {unknown!r} (only chat_id)")
    chat = query.get("chat_id", [None])[-1]
    return urlunsplit(parts._replace(query="", fragment="")), chat


def parse_webhook_spec(spec: str) -> WebhookTarget:
    """A target from a CLI spec: ``slack=URL`` or ``telegram=URL?chat_id=N``.

    For Telegram the ``chat_id`` query parameter moves into the JSON body and the URL posted has
    no query. Raises :class:`ValueError` (the URL masked) for anything else.
    """
    kind, sep, url = str(spec).partition("=")
    kind = kind.strip().lower()
    if sep and url:
        _register_url(kind if kind in KINDS else "slack", url.strip())
    else:
        register_secret(str(spec))
    if not sep or kind not in KINDS or not url.strip():
        raise ValueError(f"webhook spec must be slack=URL or telegram=URL?chat_id=N (got {MASK})")
    url = url.strip()
    if kind == "telegram":
        url, chat = _split_telegram_query(url)
        if not chat:
            raise ValueError(f"telegram webhook URL {MASK} needs ?chat_id=N")
        return WebhookTarget("telegram", url, chat_id=chat)
    return WebhookTarget("slack", url)


def targets_from_settings(settings: Iterable, environ: Mapping[str, str] = os.environ) -> list[WebhookTarget]:
    """Targets from a profile's ``notify`` entries (:class:`~letrade_perf.config.profile.WebhookSettings`).

    Each entry names the environment variable holding its URL; a missing or empty variable, or a
    URL that is not http(s), raises :class:`ConfigError` naming ``notify[i].url_env`` and the variable.
    """
    targets = []
    for i, s in enumerate(settings):
        where = f"notify[{i}].url_env"
        url = (environ.get(s.url_env) or "").strip()
        if not url:
            raise ConfigError(f"{where}: environment variable {s.url_env} is not set or empty "
                              f"(it must hold the {s.kind} webhook URL)")
        try:
            _register_url(s.kind, url)
            chat = str(s.chat_id or "").strip() or None
            if s.kind == "telegram":
                url, url_chat = _split_telegram_query(url)
                if url_chat and chat and url_chat != chat:
                    raise ValueError(f"telegram webhook URL {MASK}: ?chat_id= differs from notify[{i}].chat_id")
                chat = chat or url_chat
            targets.append(WebhookTarget(s.kind, url, chat_id=chat, events=tuple(s.events)))
        except ValueError as e:
            raise ConfigError(f"{where}: environment variable {s.url_env}: {_scrub(e)}") from None
    return targets


def default_post(url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` as JSON and return the HTTP status (an error status is returned, not raised)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "letrade-perf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:   # noqa: S310 (http(s) checked)
            response.read()
            return response.status
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


# --- texts ------------------------------------------------------------------------------------------

def verdict_text(summary: dict) -> str:
    """``letrade-perf <profile> (<env>, run <id>): PASS|FAIL — n/m criteria passed`` + failing criteria."""
    run = summary["run"]
    if summary.get("verdict") == "aborted":
        return abort_text(run, run.get("aborted") or "aborted")
    criteria = summary.get("criteria") or []
    failed, _, total = fmt.criterion_counts(criteria)
    lines = [f"{fmt.run_title(run)}: {str(summary.get('verdict', 'fail')).upper()} — "
             f"{total - failed}/{total} criteria passed"
             + (f" — ending {summary['ending']}" if summary.get("ending") not in (None, "completed") else "")
             + (f": {run['ending_reason']}" if run.get("ending_reason") else "")]
    for sf in (summary.get("achieved") or {}).get("shortfalls") or []:
        if not sf.get("tolerated"):
            lines.append(f"• shortfall: {sf['kind']}: {sf['message']}")
    failing = [c for c in criteria if c.get("gate") == "fail"]
    lines += [f"• {fmt.criterion_line(c)}" for c in failing[:MAX_LISTED]]
    if len(failing) > MAX_LISTED:
        lines.append(f"… and {len(failing) - MAX_LISTED} more")
    baseline = summary.get("baseline")
    if baseline:
        n = len(baseline.get("regressions") or [])
        lines.append(f"baseline: {n} regression{'s' if n != 1 else ''} in {baseline.get('checked')} figures"
                     if n else f"baseline: no regression in {baseline.get('checked')} figures")
    return "\n".join(lines)


def abort_text(run: dict, reason: str) -> str:
    """``letrade-perf <profile> (<env>, run <id>): ABORTED: <reason>``."""
    return f"{fmt.run_title(run)}: ABORTED: {reason}"


def criterion_failed_text(run: dict, criterion: dict) -> str:
    """``… criterion failing: <label> = <value> (threshold <op> <limit>)``."""
    unit = criterion.get("unit", "")
    limit = fmt.threshold(criterion["op"], criterion["threshold"], unit)
    text = (f"{fmt.run_title(run)}: criterion failing: {criterion['label']} = "
            f"{fmt.value(criterion.get('value'), unit)} (threshold {limit})")
    if criterion.get("reason"):
        text += f" — {criterion['reason']}"
    return text


class Notifier:
    """Queues event messages for ``targets`` and posts them from a daemon worker thread.

    ``post(url, body, timeout) -> status`` is the sending seam (default :func:`default_post`);
    ``retry_delay_s`` and ``sleep`` exist so tests need not wait a real second.
    """

    def __init__(self, targets: Iterable[WebhookTarget], *, timeout_s: float = 5.0, post: PostFn | None = None,
                 retry_delay_s: float = RETRY_DELAY_S, sleep: Callable[[float], None] = time.sleep):
        self.targets = list(targets)
        self.timeout_s = timeout_s
        self._post = post or default_post
        self._retry_delay_s = retry_delay_s
        self._sleep = sleep
        self._queue: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._sent = 0
        self._failed = 0
        self._worker: threading.Thread | None = None

    # -- events
    def verdict(self, summary: dict) -> None:
        """Queue the final verdict (with failing criteria and the baseline regression count)."""
        self._emit("verdict", verdict_text(summary))

    def abort(self, run: dict, reason: str) -> None:
        """Queue a safety-abort message."""
        self._emit("abort", abort_text(run, reason))

    def criterion_failed(self, run: dict, criterion: dict) -> None:
        """Queue a message about a criterion turning to fail during the run."""
        self._emit("criterion_failed", criterion_failed_text(run, criterion))

    # -- queue
    def _emit(self, event: str, text: str) -> None:
        text = mask(text)                    # a reason may quote a URL or key the harness registered
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT - 1] + "…"
        for index, target in enumerate(self.targets, start=1):
            if event not in target.events:
                continue
            with self._cond:
                if self._pending >= MAX_QUEUED:
                    self._failed += 1
                    log.warning("webhook %s #%d: queue full, %s message dropped", target.kind, index, event)
                    continue
                self._pending += 1
                self._start_worker()
            self._queue.put((index, target, event, json.dumps(target.payload(text)).encode("utf-8")))

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="letrade-perf-notify", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            index, target, event, body = self._queue.get()
            ok = False
            try:
                ok = self._deliver(index, target, event, body)
            except Exception as e:           # never let the worker die: the next message must go out
                log.warning("webhook %s #%d: %s message not sent: %s", target.kind, index, event, _describe(e))
            with self._cond:
                if ok:
                    self._sent += 1
                else:
                    self._failed += 1
                self._pending -= 1
                self._cond.notify_all()

    def _deliver(self, index: int, target: WebhookTarget, event: str, body: bytes) -> bool:
        for attempt in (1, 2):
            try:
                status = self._post(target.url, body, self.timeout_s)
                if 200 <= status < 300:
                    return True
                problem = f"HTTP {status}"
            except Exception as e:
                problem = _describe(e)
            if attempt == 1:
                log.warning("webhook %s #%d: %s message failed (%s), retrying in %g s",
                            target.kind, index, event, problem, self._retry_delay_s)
                self._sleep(self._retry_delay_s)
            else:
                log.warning("webhook %s #%d: %s message dropped after 2 attempts (%s)",
                            target.kind, index, event, problem)
        return False

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait up to ``timeout_s`` for every queued message to be sent or given up; True if drained."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stats(self) -> dict[str, int]:
        """``{"sent": n, "failed": n}`` — messages delivered and messages given up."""
        with self._cond:
            return {"sent": self._sent, "failed": self._failed}


def _describe(e: BaseException) -> str:
    """An exception as ``Type: text`` with secrets and URLs removed."""
    reason = getattr(e, "reason", None)          # URLError wraps the socket error
    text = f"{type(e).__name__}: {reason if reason is not None else e}"
    return _scrub(text)
