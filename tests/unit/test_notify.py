"""Webhook notifications against real local HTTP receivers (loopback, port 0)."""
from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from letrade_perf import notify
from letrade_perf.config.profile import WebhookSettings
from letrade_perf.core.errors import ConfigError
from reportdata import criterion, make_summary

SLACK_PATH = "/services/T0001/B0002/sEcReTsLaCkToKeN123"
TG_TOKEN = "123456:ABCdefSECRETtoken"


class Receiver:
    """An HTTP server on 127.0.0.1:<free port> recording every POST; answers ``status``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[dict] = []
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                          "body": json.loads(body)})
                receiver.got.set()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):          # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    started: list[Receiver] = []

    def make(status: int = 200) -> Receiver:
        r = Receiver(status)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                       # nothing listens there now: connection refused
    return port


def failing_summary() -> dict:
    crit = [criterion(value=251.3), criterion("ws_lag avg<50", metric="ws_lag", tags={}, threshold=50.0, value=8.0)]
    return make_summary(criteria=crit, baseline={
        "path": "base/summary.json", "tolerance": 0.1, "verdict": "fail", "checked": 30,
        "regressions": [{"kind": "endpoint", "key": "REST GET /api/v3/depth", "figure": "p95_ms", "baseline": 120.0,
                         "current": 156.0, "change": 0.3, "limit": "+10 % and +1 ms"}]})


def assert_no_url(text: str, *urls: str) -> None:
    for u in urls:
        assert u not in text
    assert SLACK_PATH not in text and TG_TOKEN not in text and "http://" not in text and "https://" not in text


# --- targets -------------------------------------------------------------------------------------------

def test_parse_webhook_spec_slack_and_telegram():
    slack = notify.parse_webhook_spec(f"slack=https://hooks.slack.com{SLACK_PATH}")
    assert (slack.kind, slack.url, slack.chat_id, slack.events) == (
        "slack", f"https://hooks.slack.com{SLACK_PATH}", None, ("verdict", "abort", "criterion_failed"))
    tg = notify.parse_webhook_spec(f"telegram=https://api.telegram.org/bot{TG_TOKEN}/sendMessage?chat_id=-100123")
    assert tg.url == f"https://api.telegram.org/bot{TG_TOKEN}/sendMessage" and tg.chat_id == "-100123"
    assert tg.payload("hi") == {"chat_id": "-100123", "text": "hi", "disable_web_page_preview": True}
    assert slack.payload("p(95)<200 & more")["text"] == "p(95)&lt;200 &amp; more"
    assert_no_url(repr(slack) + repr(tg))


@pytest.mark.parametrize("spec", [
    f"https://hooks.slack.com{SLACK_PATH}",                              # no kind
    f"discord=https://hooks.slack.com{SLACK_PATH}",                      # unknown kind
    f"slack=ftp://hooks.slack.com{SLACK_PATH}",                          # not http(s)
    f"telegram=https://api.telegram.org/bot{TG_TOKEN}/sendMessage",      # no chat_id
    f"telegram=https://api.telegram.org/bot{TG_TOKEN}/sendMessage?chat_id=1&parse_mode=HTML",
    "slack=",
])
def test_bad_webhook_specs_raise_without_the_url(spec):
    with pytest.raises(ValueError) as err:
        notify.parse_webhook_spec(spec)
    assert_no_url(str(err.value) + repr(err.value))


def test_targets_from_settings_reads_the_environment():
    settings = (WebhookSettings(kind="slack", url_env="LP_SLACK_URL"),
                WebhookSettings(kind="telegram", url_env="LP_TG_URL", chat_id="42", events=("verdict",)))
    env = {"LP_SLACK_URL": f"https://hooks.slack.com{SLACK_PATH}",
           "LP_TG_URL": f"https://api.telegram.org/bot{TG_TOKEN}/sendMessage"}
    slack, tg = notify.targets_from_settings(settings, env)
    assert slack.url == env["LP_SLACK_URL"] and slack.kind == "slack"
    assert (tg.kind, tg.chat_id, tg.events) == ("telegram", "42", ("verdict",))
    from letrade_perf.core.secrets import mask
    assert TG_TOKEN not in mask(f"token {TG_TOKEN} leaked") and SLACK_PATH not in mask(f"path {SLACK_PATH}")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_url_variable_is_a_config_error_naming_key_and_variable(value):
    settings = (WebhookSettings(kind="slack", url_env="LP_SLACK_URL"), WebhookSettings(kind="slack", url_env="LP_NOPE"))
    env = {"LP_SLACK_URL": f"https://hooks.slack.com{SLACK_PATH}"}
    if value is not None:
        env["LP_NOPE"] = value
    with pytest.raises(ConfigError, match=r"notify\[1\]\.url_env: environment variable LP_NOPE is not set"):
        notify.targets_from_settings(settings, env)


def test_a_bad_url_in_the_environment_is_a_config_error_without_the_url():
    settings = (WebhookSettings(kind="slack", url_env="LP_SLACK_URL"),)
    with pytest.raises(ConfigError, match=r"notify\[0\]\.url_env: environment variable LP_SLACK_URL") as err:
        notify.targets_from_settings(settings, {"LP_SLACK_URL": f"hooks.slack.com{SLACK_PATH}"})
    assert_no_url(str(err.value))


# --- texts -----------------------------------------------------------------------------------------------

def test_texts():
    assert notify.verdict_text(make_summary()) == (
        "letrade-perf ci-gate (sim, run 20260301T120000Z-ci-gate): PASS — 9/9 criteria passed")
    text = notify.verdict_text(failing_summary())
    assert text.splitlines() == [
        "letrade-perf ci-gate (sim, run 20260301T120000Z-ci-gate): FAIL — 1/2 criteria passed",
        '• request{name="GET /api/v3/depth"} p(95)<200: 251.3 ms (threshold < 200 ms) — threshold exceeded',
        "baseline: 1 regression in 30 figures"]
    run = make_summary()["run"]
    assert notify.abort_text(run, "HTTP 418 (IP ban)") == (
        "letrade-perf ci-gate (sim, run 20260301T120000Z-ci-gate): ABORTED: HTTP 418 (IP ban)")
    rate = criterion("api_success rate>99.9%", metric="api_success", tags={}, op=">", threshold=0.999, value=0.9912,
                     unit="ratio")
    assert notify.criterion_failed_text(run, rate).endswith(
        "criterion failing: api_success rate>99.9% = 99.12 % (threshold > 99.9 %) — threshold exceeded")


# --- delivery against real receivers ---------------------------------------------------------------------

def test_slack_and_telegram_receive_the_verdict(receiver_factory, caplog):
    caplog.set_level(logging.DEBUG)
    rx = receiver_factory()
    slack_url = f"{rx.base}{SLACK_PATH}"
    tg_url = f"{rx.base}/bot{TG_TOKEN}/sendMessage"
    targets = [notify.parse_webhook_spec(f"slack={slack_url}"),
               notify.parse_webhook_spec(f"telegram={tg_url}?chat_id=-1001")]
    n = notify.Notifier(targets, timeout_s=5.0)
    n.verdict(failing_summary())
    assert n.flush(10.0) is True
    assert n.stats() == {"sent": 2, "failed": 0}
    by_path = {r["path"]: r for r in rx.requests}
    assert set(by_path) == {SLACK_PATH, f"/bot{TG_TOKEN}/sendMessage"}     # the chat_id query is not posted
    slack, tg = by_path[SLACK_PATH], by_path[f"/bot{TG_TOKEN}/sendMessage"]
    assert slack["content_type"] == tg["content_type"] == "application/json"
    assert list(slack["body"]) == ["text", "attachments"]
    assert slack["body"]["text"].startswith("letrade-perf ci-gate (sim, run 20260301T120000Z-ci-gate): FAIL — 1/2")
    detail = slack["body"]["attachments"][0]["blocks"][1]["text"]["text"]
    assert "p(95)&lt;200: 251.3 ms (threshold &lt; 200 ms)" in detail
    assert tg["body"]["chat_id"] == "-1001" and tg["body"]["disable_web_page_preview"] is True
    assert tg["body"]["text"] == notify.verdict_text(failing_summary())
    assert_no_url(caplog.text, slack_url, tg_url)


def test_events_reach_only_subscribed_targets(receiver_factory):
    rx = receiver_factory()
    everything = notify.WebhookTarget("slack", f"{rx.base}/all-events-hook")
    verdict_only = notify.WebhookTarget("telegram", f"{rx.base}/bot{TG_TOKEN}/sendMessage", chat_id="7",
                                        events=("verdict",))
    n = notify.Notifier([everything, verdict_only])
    run = make_summary()["run"]
    n.abort(run, "kill switch")
    n.criterion_failed(run, criterion(value=300.0))
    assert n.flush(10.0)
    assert [r["path"] for r in rx.requests] == ["/all-events-hook", "/all-events-hook"]
    texts = [r["body"]["text"] for r in rx.requests]
    assert texts[0].endswith("ABORTED: kill switch")
    assert 'criterion failing: request{name="GET /api/v3/depth"} p(95)&lt;200 = 300 ms' in texts[1]
    assert n.stats() == {"sent": 2, "failed": 0}


def test_failing_receivers_are_retried_once_counted_and_never_raise(receiver_factory, closed_port, caplog):
    caplog.set_level(logging.WARNING, logger="letrade_perf.notify")
    rx500 = receiver_factory(status=500)
    hung = socket.socket()                          # accepts connections (backlog) and never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    urls = [f"{rx500.base}{SLACK_PATH}", f"http://127.0.0.1:{closed_port}/bot{TG_TOKEN}/sendMessage",
            f"http://127.0.0.1:{hung.getsockname()[1]}/hung/hook/path"]
    delays: list[float] = []
    try:
        n = notify.Notifier([notify.WebhookTarget("slack", urls[0]),
                             notify.WebhookTarget("telegram", urls[1], chat_id="1"),
                             notify.WebhookTarget("slack", urls[2])],
                            timeout_s=0.3, sleep=delays.append)
        n.verdict(make_summary())
        assert n.flush(15.0) is True
    finally:
        hung.close()
    assert n.stats() == {"sent": 0, "failed": 3}
    assert len(rx500.requests) == 2                                   # one retry
    assert delays == [notify.RETRY_DELAY_S] * 3 and notify.RETRY_DELAY_S == 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert any("slack #1" in m and "HTTP 500" in m and "dropped after 2 attempts" in m for m in messages)
    assert any("telegram #2" in m and "refused" in m.lower() for m in messages), messages
    assert any("slack #3" in m and "timed out" in m.lower() for m in messages), messages
    assert_no_url(caplog.text + "\n".join(messages), *urls)


def test_exceptions_from_the_post_seam_are_counted_and_masked(caplog):
    url = f"https://hooks.example.invalid{SLACK_PATH}"

    def post(u, body, timeout):
        raise RuntimeError(f"cannot post to {u}")       # a careless transport quoting the URL

    n = notify.Notifier([notify.WebhookTarget("slack", url)], post=post, retry_delay_s=0.0)
    n.abort({"profile": "p", "env": "sim", "run_id": "r"}, "test")
    assert n.flush(5.0)
    assert n.stats() == {"sent": 0, "failed": 1}
    assert caplog.records and "RuntimeError" in caplog.text
    assert_no_url(caplog.text, url)


def test_callers_never_block_and_flush_is_bounded():
    release = threading.Event()
    calls = []

    def post(url, body, timeout):
        calls.append(json.loads(body))
        release.wait(10)
        return 204

    n = notify.Notifier([notify.WebhookTarget("slack", "https://hooks.example.invalid/services/X/Y/Z")], post=post)
    run = make_summary()["run"]
    n.abort(run, "first")                       # returns at once although post blocks
    n.abort(run, "second")
    assert n.flush(0.2) is False
    release.set()
    assert n.flush(5.0) is True
    assert n.stats() == {"sent": 2, "failed": 0}
    assert [c["text"].rsplit(": ", 1)[1] for c in calls] == ["first", "second"]


def test_no_targets_no_thread():
    n = notify.Notifier([])
    n.verdict(make_summary())
    assert n.flush(0.1) and n.stats() == {"sent": 0, "failed": 0}
    assert n._worker is None
