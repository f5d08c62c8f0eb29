"""Webhook notifications (Slack-compatible incoming webhooks and Telegram bots) about a run.

Events (:data:`EVENTS`): the final ``verdict``, a safety ``abort`` and a live ``criterion_failed``
(sent by default, :data:`DEFAULT_EVENTS`), and the opt-in trading-operation alerts ``trade``
(batched fills), ``balance`` (a balance moved beyond a threshold), ``orders_blocked`` (new
orders blocked or resumed) and ``flatten`` (a flatten finished). Deciding *when* an opt-in alert
is due (batching, thresholds) is the harness's job (:mod:`letrade_perf.harness.alerts`); this
module only formats and delivers, and knows nothing of Locust.

Each event becomes an :class:`Alert` (a title, detail lines and a level: good, bad, warn, info).
A Slack target receives ``{"text": <title — the plain fallback>, "attachments": [{"color": ...,
"fallback": <full text>, "blocks": [section and context blocks in mrkdwn]}]}``; a Telegram target
the plain text. Every message ends with the link to the run's reports (:func:`report_link`).
The :class:`Notifier` queues one message per target subscribed to the event;
a daemon worker thread posts them, so the harness never waits on a chat server (under Locust,
gevent's monkey-patching makes that thread a greenlet — which is fine: the post yields while it
waits on the socket). At quit, :meth:`Notifier.flush` waits a bounded time so the verdict goes out.

A webhook URL is a credential (whoever has it can post to the channel; a Telegram URL holds the
bot token), so every URL — and the bot token on its own — is registered with
:func:`~letrade_perf.core.secrets.register_secret`, and no message, exception or return value
of this module contains one: targets are named ``slack #1``, ``telegram #2``.

Delivery is best effort: a receiver that refuses the connection, times out or answers non-2xx is
retried once after :data:`RETRY_DELAY_S`, then logged at WARNING and counted in
:meth:`Notifier.stats` — never raised into the run. A rate-limited answer (HTTP 429) that says
how long to wait — Telegram's ``parameters.retry_after`` in the JSON body, Slack's
``Retry-After`` header — is waited for (at most :data:`RETRY_AFTER_CAP_S`) and retried, up to
:data:`MAX_RATE_LIMITED_RETRIES` times, besides the one ordinary retry.
"""
from __future__ import annotations

import dataclasses
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
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Union
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .core.errors import ConfigError
from .core.secrets import MASK, mask, register_secret
from .reports import fmt

log = logging.getLogger(__name__)

KINDS = ("slack", "telegram")
DEFAULT_EVENTS = ("verdict", "abort", "criterion_failed")
"""What a target receives unless it names its events."""
EVENTS = DEFAULT_EVENTS + ("trade", "balance", "orders_blocked", "flatten")
"""Every event; the last four are opt-in (``events:`` of a profile's ``notify`` entry)."""
RETRY_DELAY_S = 1.0
"""Seconds before the one retry of a failed post."""
RETRY_AFTER_CAP_S = 30.0
"""Longest wait for a 429's ``retry_after`` / ``Retry-After`` (a longer one is cut to this)."""
MAX_RATE_LIMITED_RETRIES = 3
"""Retries after 429 answers that say when to come back (besides the one ordinary retry)."""
REPORTS_URL_ENV = "LETRADE_REPORTS_URL"
"""Public base URL of the reports (``{run_id}`` is replaced); a profile's ``reports_url`` wins."""
REPORT_FILE = "summary.html"

GOOD, BAD, WARN, INFO = "good", "bad", "warn", "info"
COLOURS = {GOOD: "#2eb886", BAD: "#a30200", WARN: "#daa038", INFO: "#439fe0"}
"""Slack attachment colour per alert level."""
SLACK_SECTION_MAX = 3000
"""Slack's limit on a section block's text."""
MAX_QUEUED = 100
"""Messages waiting beyond this are dropped (and counted as failed): a hung receiver must not grow memory."""
MAX_TEXT = 3500
"""Texts are cut to this many characters (Telegram's limit is 4096; Slack folds long messages)."""
MAX_LISTED = 10
"""At most this many failing criteria are listed in a verdict message."""

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_TELEGRAM_TOKEN = re.compile(r"/bot([^/]+)/")



@dataclass(frozen=True)
class PostResult:
    """A receiver's answer: the HTTP status and, for a rate-limited answer, how long to wait."""

    status: int
    retry_after: float | None = None


PostFn = Callable[[str, bytes, float], Union[int, PostResult]]
"""``post(url, body, timeout)``: the HTTP status, or a :class:`PostResult` (an int means no retry_after)."""


@dataclass(frozen=True)
class Alert:
    """One message: ``title`` (the headline and Slack's plain ``text``), detail ``lines`` and a
    ``level`` (:data:`GOOD`, :data:`BAD`, :data:`WARN`, :data:`INFO`: the Slack colour)."""

    event: str
    title: str
    lines: tuple[str, ...] = ()
    level: str = INFO

    def text(self) -> str:
        """The whole message as plain text (title, then one line each)."""
        return "\n".join((self.title, *self.lines))


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
    """Where to post: a Slack-compatible incoming webhook or a Telegram ``sendMessage`` URL.

    ``url`` is a secret (registered for masking, hidden from ``repr``); ``chat_id`` is required for
    Telegram; ``events`` are the events this target receives. The harness reads the opt-in
    alerts' settings from here: ``trade_batch_s`` (at most one ``trade`` message per that many
    seconds; 0: one per fill, at most a fixed number a minute), ``balance_threshold`` (asset →
    absolute amount) and ``balance_threshold_fraction`` (of the asset's start balance, for assets
    without an amount; 0: off). ``reports_url``: this target's link to the reports (already
    resolved, see :func:`report_link`); None: the notifier's.
    """

    kind: str
    url: str = field(repr=False)
    chat_id: str | None = None
    events: tuple[str, ...] = DEFAULT_EVENTS
    trade_batch_s: float = 60.0
    balance_threshold: Mapping[str, Decimal] = field(default_factory=dict)
    balance_threshold_fraction: float = 0.05
    reports_url: str | None = None

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
        thresholds = {str(k).strip().upper(): _decimal(v) for k, v in dict(self.balance_threshold).items()}
        bad_amounts = [k for k, v in thresholds.items() if v is None or v <= 0]
        if bad_amounts:
            raise ValueError(f"{self.kind} webhook: balance_threshold must be amounts > 0 (not for {bad_amounts!r})")
        object.__setattr__(self, "balance_threshold", thresholds)
        if self.trade_batch_s < 0 or self.balance_threshold_fraction < 0:
            raise ValueError(f"{self.kind} webhook: trade_batch_s and balance_threshold_fraction must be >= 0")

    def payload(self, message: Alert | str, link: str | None = None) -> dict:
        """The JSON body for ``message`` (an :class:`Alert`, or a plain text), ending with ``link``."""
        alert = message if isinstance(message, Alert) else Alert("", str(message))
        if self.kind == "slack":
            return _slack_payload(alert, link)
        text = alert.text()
        if link:
            text += f"\nreports: {link}"
        return {"chat_id": self.chat_id, "text": _cut(text), "disable_web_page_preview": True}


def _slack_escape(text: str) -> str:
    # Slack mrkdwn reads <...> as links and &...; as entities: escape exactly those three.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _slack_payload(alert: Alert, link: str | None) -> dict:
    """``{"text": title, "attachments": [{"color", "fallback", "blocks"}]}``: the title is the plain
    ``text`` every Slack-compatible receiver shows (Mattermost and others ignore blocks); the
    coloured attachment holds the detail in Block Kit."""
    title = _slack_escape(alert.title)
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{title}*",
                                                                                        SLACK_SECTION_MAX)}}]
    if alert.lines:
        body = _slack_escape("\n".join(alert.lines))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(body, SLACK_SECTION_MAX)}})
    context = [{"type": "mrkdwn", "text": f"letrade-perf · {alert.event or 'message'}"}]
    fallback = alert.text()
    text = title
    if link:
        if link.startswith("file:"):
            # a chat client cannot open the run machine's file: show where it is
            shown = f"reports: `{_slack_escape(link)}`"
        else:
            shown = f"<{link.replace('&', '&amp;').replace('>', '%3E').replace('|', '%7C')}|reports: {REPORT_FILE}>"
        context.append({"type": "mrkdwn", "text": shown})
        text += f" — {shown}"
        fallback += f"\nreports: {link}"
    blocks.append({"type": "context", "elements": context})
    return {"text": _cut(text), "attachments": [{"color": COLOURS.get(alert.level, COLOURS[INFO]),
                                                 "fallback": _cut(fallback), "blocks": blocks}]}


def _decimal(value: object) -> Decimal | None:
    """``value`` as a finite Decimal (via ``str``: 0.1 stays 0.1), else None."""
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def report_link(run_id: str, reports_dir: str | None, base: str | None = None,
                environ: Mapping[str, str] = os.environ) -> str | None:
    """The link every alert carries: ``base`` (a profile's ``reports_url``) or else
    :data:`REPORTS_URL_ENV`, with ``{run_id}`` replaced and ``/summary.html`` appended unless it
    already names an ``.html`` or ``.md`` file; without either, ``file://<reports_dir>/summary.html``;
    None without a reports directory. A base that is not http(s), or that holds credentials
    (``user:pass@``), raises :class:`ValueError` — a message must never carry a secret."""
    where = "reports_url" if base else REPORTS_URL_ENV
    raw = (base or environ.get(REPORTS_URL_ENV) or "").strip()
    if raw:
        url = raw.replace("{run_id}", run_id)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{where}: must be an http(s) URL, got {raw!r}")
        if parts.username is not None or parts.password is not None:
            register_secret(url)
            raise ValueError(f"{where}: must not hold credentials (user:password@): every chat member sees it")
        if not parts.path.lower().endswith((".html", ".md")):
            url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + REPORT_FILE))
        return url
    if not reports_dir:
        return None
    return (Path(reports_dir).resolve() / REPORT_FILE).as_uri()


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


def targets_from_settings(settings: Iterable, environ: Mapping[str, str] = os.environ, *, run_id: str = "",
                          reports_dir: str | None = None) -> list[WebhookTarget]:
    """Targets from a profile's ``notify`` entries (:class:`~letrade_perf.config.profile.WebhookSettings`).

    Each entry names the environment variable holding its URL; a missing or empty variable, or a
    URL that is not http(s), raises :class:`ConfigError` naming ``notify[i].url_env`` and the variable.
    An entry's ``reports_url`` is resolved with ``run_id`` (:func:`report_link`).
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
            extra: dict[str, Any] = {}
            for name in ("trade_batch_s", "balance_threshold", "balance_threshold_fraction"):
                if hasattr(s, name):
                    extra[name] = getattr(s, name)
            targets.append(WebhookTarget(s.kind, url, chat_id=chat, events=tuple(s.events), **extra))
        except ValueError as e:
            raise ConfigError(f"{where}: environment variable {s.url_env}: {_scrub(e)}") from None
        if getattr(s, "reports_url", ""):
            try:
                link = report_link(run_id, reports_dir, s.reports_url, environ)
            except ValueError as e:
                raise ConfigError(f"notify[{i}].{e}") from None
            targets[-1] = dataclasses.replace(targets[-1], reports_url=link)
    return targets


def default_post(url: str, body: bytes, timeout: float) -> PostResult:
    """POST ``body`` as JSON; the HTTP status (an error status is returned, not raised) and, on a
    429, the wait the receiver asked for (:func:`retry_after`)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "letrade-perf"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:   # noqa: S310 (http(s) checked)
            response.read()
            return PostResult(response.status)
    except urllib.error.HTTPError as e:
        try:
            answer = e.read(65536) if e.code == 429 else b""
            wait = retry_after(e.code, e.headers.get("Retry-After") if e.headers else None, answer)
        finally:
            e.close()
        return PostResult(e.code, wait)


def retry_after(status: int, header: str | None, body: bytes) -> float | None:
    """Seconds a 429 answer asks to wait: Telegram's ``{"parameters": {"retry_after": N}}`` in the
    body, else a ``Retry-After: N`` header (seconds; an HTTP date is not honoured); None otherwise."""
    if status != 429:
        return None
    try:
        data = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        data = None
    candidates: list[object] = []
    if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
        candidates.append(data["parameters"].get("retry_after"))
    candidates.append(header)
    for value in candidates:
        if isinstance(value, bool) or value is None:
            continue
        try:
            seconds = float(str(value).strip())
        except ValueError:
            continue
        if seconds >= 0 and seconds == seconds:
            return seconds
    return None


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


VERDICT_LEVELS = {"pass": GOOD, "fail": BAD, "aborted": BAD, "error": BAD, "incomplete": WARN, "interrupted": WARN}
MAX_FLATTEN_LINES = 8
"""At most this many lines of a flatten report's detail."""


def verdict_alert(summary: dict) -> Alert:
    """The final verdict: green pass, red fail / aborted / error, amber incomplete / interrupted."""
    if summary.get("verdict") == "aborted":
        run = summary["run"]
        return abort_alert(run, run.get("aborted") or "aborted")
    title, *lines = verdict_text(summary).split("\n")
    return Alert("verdict", title, tuple(lines), VERDICT_LEVELS.get(str(summary.get("verdict", "fail")), BAD))


def abort_alert(run: dict, reason: str) -> Alert:
    """A safety abort (red)."""
    return Alert("abort", abort_text(run, reason), (), BAD)


def criterion_failed_alert(run: dict, criterion: dict) -> Alert:
    """A criterion turning to fail during the run (red)."""
    return Alert("criterion_failed", criterion_failed_text(run, criterion), (), BAD)


def _amount(value: object) -> str:
    """A Decimal-ish amount without exponent or trailing zeros (``0.00120000`` → ``0.0012``)."""
    d = _decimal(value)
    if d is None:
        return str(value)
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fill_line(fill: Mapping[str, Any]) -> str:
    """``BUY 0.0012 BTCUSDT ≈ 120.5 USDT FILLED (pipeline, rest) lp-abc123``: side, quantity when
    known, symbol, quote value, status, source and route, client order id."""
    parts = [str(fill.get("side") or "?")]
    if fill.get("qty") not in (None, ""):
        parts.append(_amount(fill["qty"]))
    parts.append(str(fill.get("symbol") or "?"))
    if fill.get("notional") not in (None, ""):
        parts.append(f"≈ {_amount(fill['notional'])}" + (f" {fill['quote']}" if fill.get("quote") else ""))
    parts.append(str(fill.get("status") or "?"))
    route = ", ".join(str(fill[k]) for k in ("source", "via") if fill.get(k))
    if route:
        parts.append(f"({route})")
    if fill.get("client_order_id"):
        parts.append(str(fill["client_order_id"]))
    return " ".join(parts)


def trade_alert(run: dict, fills: Iterable[Mapping[str, Any]], omitted: int = 0) -> Alert:
    """The fills since the last ``trade`` message, one line each, and how many were left out."""
    fills = list(fills)
    n = len(fills) + omitted
    lines = [f"• {fill_line(f)}" for f in fills]
    if omitted:
        lines.append(f"… and {omitted} more not listed")
    return Alert("trade", f"{fmt.run_title(run)}: {n} fill{'s' if n != 1 else ''}", tuple(lines), INFO)


def balance_alert(run: dict, asset: str, reference: object, after: object, start: object,
                  threshold: str) -> Alert:
    """A balance moved by at least its threshold since the last alert about it (amber)."""
    ref, now, first = _decimal(reference), _decimal(after), _decimal(start)
    change = f"{now - ref:+f}" if now is not None and ref is not None else "?"
    lines = [f"threshold: {threshold}"]
    if first is not None and now is not None:
        lines.insert(0, f"since the start of the run: {_amount(first)} → {_amount(now)} ({now - first:+f})")
    return Alert("balance", f"{fmt.run_title(run)}: balance {asset} {change} ({_amount(reference)} → "
                            f"{_amount(after)})", tuple(lines), WARN)


def orders_blocked_alert(run: dict, blocked: bool, reason: object = None, by: object = None) -> Alert:
    """New orders blocked (red when a criterion blocked them, amber otherwise) or resumed (green)."""
    who = f" by {by}" if by else ""
    why = f": {reason}" if reason else ""
    if blocked:
        level = BAD if str(by or "").lower().startswith("criterion") else WARN
        return Alert("orders_blocked", f"{fmt.run_title(run)}: new orders BLOCKED{who}{why}",
                     ("monitoring and market-data users go on; open orders stay",), level)
    return Alert("orders_blocked", f"{fmt.run_title(run)}: new orders RESUMED{who}{why}", (), GOOD)


_FLATTEN_LINE_KEYS = ("line", "summary", "message", "text", "human", "description")


def flatten_alert(run: dict, report: object) -> Alert:
    """A flatten finished: green when ``report["ok"]`` is true, red when false, amber when unknown.
    Defensive about the report's shape: a missing key is left out, a non-dict is shown as text."""
    rep: Mapping[str, Any] = report if isinstance(report, Mapping) else {"line": str(report)}
    ok = rep.get("ok")
    state = "done" if ok is True else "FAILED" if ok is False else "finished"
    what = ", ".join(f"{k} {rep[k]}" for k in ("reason", "by") if rep.get(k) not in (None, ""))
    title = f"{fmt.run_title(run)}: flatten {state}" + (f" ({what})" if what else "")
    lines: list[str] = []
    for key in _FLATTEN_LINE_KEYS:
        value = rep.get(key)
        if isinstance(value, str) and value.strip():
            lines.append(value.strip())
            break
        if isinstance(value, (list, tuple)):
            lines += [str(v) for v in value[:MAX_FLATTEN_LINES]]
            break
    errors = rep.get("errors")
    if isinstance(errors, (list, tuple)) and errors:
        lines += [f"error: {e}" for e in errors[:MAX_FLATTEN_LINES]]
    level = GOOD if ok is True else BAD if ok is False else WARN
    return Alert("flatten", title, tuple(lines[:MAX_FLATTEN_LINES * 2]), level)


class Notifier:
    """Queues event messages for ``targets`` and posts them from a daemon worker thread.

    ``report_link`` is the link every message ends with (a target's own ``reports_url`` wins; see
    :func:`report_link`). ``post(url, body, timeout) -> status | PostResult`` is the sending seam
    (default :func:`default_post`); ``retry_delay_s``, ``retry_after_cap_s`` and ``sleep`` exist
    so tests need not wait real seconds.
    """

    def __init__(self, targets: Iterable[WebhookTarget], *, timeout_s: float = 5.0, post: PostFn | None = None,
                 retry_delay_s: float = RETRY_DELAY_S, sleep: Callable[[float], None] = time.sleep,
                 report_link: str | None = None, retry_after_cap_s: float = RETRY_AFTER_CAP_S):
        self.targets = list(targets)
        self.timeout_s = timeout_s
        self.report_link = report_link
        self._post = post or default_post
        self._retry_delay_s = retry_delay_s
        self._retry_after_cap_s = retry_after_cap_s
        self._sleep = sleep
        self._queue: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._sent = 0
        self._failed = 0
        self._worker: threading.Thread | None = None

    def wants(self, event: str) -> bool:
        """Whether any target receives ``event``."""
        return any(event in t.events for t in self.targets)

    # -- events
    def verdict(self, summary: dict) -> None:
        """Queue the final verdict (with failing criteria and the baseline regression count)."""
        self.send(verdict_alert(summary))

    def abort(self, run: dict, reason: str) -> None:
        """Queue a safety-abort message."""
        self.send(abort_alert(run, reason))

    def criterion_failed(self, run: dict, criterion: dict) -> None:
        """Queue a message about a criterion turning to fail during the run."""
        self.send(criterion_failed_alert(run, criterion))

    # -- queue
    def send(self, alert: Alert, only: Collection[int] | None = None) -> None:
        """Queue ``alert`` for every target subscribed to its event (``only``: just the targets at
        these 0-based indices — the harness batches and thresholds per target)."""
        # a reason may quote a URL or key the harness registered
        alert = Alert(alert.event, mask(alert.title), tuple(mask(line) for line in alert.lines), alert.level)
        for index, target in enumerate(self.targets, start=1):
            if alert.event not in target.events or (only is not None and index - 1 not in only):
                continue
            with self._cond:
                if self._pending >= MAX_QUEUED:
                    self._failed += 1
                    log.warning("webhook %s #%d: queue full, %s message dropped", target.kind, index, alert.event)
                    continue
                self._pending += 1
                self._start_worker()
            link = target.reports_url or self.report_link
            body = json.dumps(target.payload(alert, link)).encode("utf-8")
            self._queue.put((index, target, alert.event, body))

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
        failures = limited = 0
        while True:
            try:
                answer = self._post(target.url, body, self.timeout_s)
                result = answer if isinstance(answer, PostResult) else PostResult(int(answer))
                if 200 <= result.status < 300:
                    return True
                problem = f"HTTP {result.status}"
                if (result.status == 429 and result.retry_after is not None
                        and limited < MAX_RATE_LIMITED_RETRIES):
                    limited += 1
                    wait = min(result.retry_after, self._retry_after_cap_s)
                    log.warning("webhook %s #%d: %s message rate limited (HTTP 429, retry after %g s), "
                                "retrying in %g s", target.kind, index, event, result.retry_after, wait)
                    self._sleep(wait)
                    continue
            except Exception as e:
                problem = _describe(e)
            failures += 1
            if failures == 1:
                log.warning("webhook %s #%d: %s message failed (%s), retrying in %g s",
                            target.kind, index, event, problem, self._retry_delay_s)
                self._sleep(self._retry_delay_s)
            else:
                log.warning("webhook %s #%d: %s message dropped after %d attempts (%s)",
                            target.kind, index, event, failures + limited, problem)
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
