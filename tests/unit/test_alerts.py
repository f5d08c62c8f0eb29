"""The opt-in trading-operation alerts: batching (injected clock), balance thresholds, block and
flatten messages, the Slack and Telegram payloads, 429 retry_after handling, report links, the
Locust wiring (events in, worker forwarding) and one real loopback receiver."""
from __future__ import annotations

import json
import os
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import yaml
from locust.event import Events

from letrade_perf import notify
from letrade_perf.config.profile import WebhookSettings, profile_from_mapping
from letrade_perf.core import resources
from letrade_perf.core.errors import ConfigError
from letrade_perf.harness import alerts
from letrade_perf.harness.ledger import OrderLedger
from letrade_perf.harness.plugin import define_events
from reportdata import make_summary

SLACK_PATH = "/services/T0009/B0008/aLeRtSsEcReT77"
TG_TOKEN = "987654:ALERTsecretTOKEN"
RUN = {"profile": "canary", "env": "sim", "run_id": "20260301T120000Z-canary"}
TITLE = "letrade-perf canary (sim, run 20260301T120000Z-canary)"


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Posts:
    """A scripted post seam: answers from ``script`` (then 200), bodies recorded per URL."""

    def __init__(self, *script):
        self.script = list(script)
        self.bodies: list[tuple[str, dict]] = []

    def __call__(self, url, body, timeout):
        self.bodies.append((url, json.loads(body)))
        return self.script.pop(0) if self.script else 200

    def texts(self, url_part: str = "") -> list[str]:
        return [_plain(b) for u, b in self.bodies if url_part in u]


def _plain(body: dict) -> str:
    """The full text of a posted body (Telegram text, or Slack's attachment fallback)."""
    if "attachments" in body:
        return body["attachments"][0]["fallback"]
    return body["text"]


def slack(events=notify.EVENTS, path=SLACK_PATH, **kw) -> notify.WebhookTarget:
    return notify.WebhookTarget("slack", f"https://hooks.example.invalid{path}", events=tuple(events), **kw)


def telegram(events=notify.EVENTS, **kw) -> notify.WebhookTarget:
    return notify.WebhookTarget("telegram", f"https://tg.example.invalid/bot{TG_TOKEN}/sendMessage", chat_id="-42",
                                events=tuple(events), **kw)


def notifier(*targets, post=None, **kw) -> tuple[notify.Notifier, Posts]:
    posts = post or Posts()
    return notify.Notifier(list(targets), post=posts, retry_delay_s=0.0, sleep=lambda s: None, **kw), posts


def fill(n: int, side: str = "BUY") -> dict:
    return {"symbol": "BTCUSDT", "side": side, "qty": "0.001", "notional": f"{60 + n}.5", "quote": "USDT",
            "status": "FILLED", "source": "pipeline", "via": "rest", "client_order_id": f"lp-{n:04d}"}


# --- trade batching ------------------------------------------------------------------------------

def test_trades_are_batched_per_window_with_an_injected_clock():
    clock = Clock()
    n, posts = notifier(slack(trade_batch_s=60.0))
    router = alerts.AlertRouter(n, RUN, clock=clock)
    router.fill(fill(1))                       # the first fill goes at once
    clock.t += 10
    router.fill(fill(2))
    clock.t += 10
    router.fill(fill(3, "SELL"))
    clock.t += 39.9
    router.tick()                              # 59.9 s after the first message: still closed
    assert n.flush(5.0)
    assert len(posts.bodies) == 1
    clock.t += 0.1
    router.tick()
    router.tick()                              # nothing pending: no empty message
    assert n.flush(5.0)
    texts = posts.texts()
    assert len(texts) == 2
    assert texts[0].splitlines() == [f"{TITLE}: 1 fill",
                                     "• BUY 0.001 BTCUSDT ≈ 61.5 USDT FILLED (pipeline, rest) lp-0001"]
    assert texts[1].splitlines()[0] == f"{TITLE}: 2 fills"
    assert texts[1].splitlines()[2] == "• SELL 0.001 BTCUSDT ≈ 63.5 USDT FILLED (pipeline, rest) lp-0003"
    assert posts.bodies[0][1]["attachments"][0]["color"] == notify.COLOURS[notify.INFO]


def test_a_long_batch_lists_twenty_fills_and_counts_the_rest():
    clock = Clock()
    n, posts = notifier(telegram(trade_batch_s=30.0))
    router = alerts.AlertRouter(n, RUN, clock=clock)
    router.fill(fill(0))
    for i in range(1, 26):
        router.fill(fill(i))
    clock.t += 30
    router.tick()
    assert n.flush(5.0)
    lines = posts.texts()[1].splitlines()
    assert lines[0] == f"{TITLE}: 25 fills"
    assert len([line for line in lines if line.startswith("• ")]) == alerts.MAX_LISTED_FILLS == 20
    assert lines[-1] == "… and 5 more not listed"


def test_batch_zero_sends_each_fill_up_to_a_cap_per_minute():
    clock = Clock()
    n, posts = notifier(slack(trade_batch_s=0.0))
    router = alerts.AlertRouter(n, RUN, clock=clock)
    for i in range(alerts.TRADES_PER_MINUTE + 3):
        router.fill(fill(i))
        clock.t += 1
    assert n.flush(5.0)
    assert len(posts.bodies) == alerts.TRADES_PER_MINUTE     # the cap: 3 fills wait
    clock.t = 1000.0 + 59.9
    router.tick()
    assert n.flush(5.0) and len(posts.bodies) == alerts.TRADES_PER_MINUTE
    clock.t = 1000.0 + 60.0                                  # the first message's slot is free
    router.tick()
    assert n.flush(5.0)
    assert posts.texts()[-1].splitlines()[0] == f"{TITLE}: 3 fills"


def test_close_sends_what_is_pending_and_later_fills_are_ignored():
    clock = Clock()
    n, posts = notifier(slack(trade_batch_s=600.0))
    router = alerts.AlertRouter(n, RUN, clock=clock)
    router.fill(fill(1))
    router.fill(fill(2))
    router.close()
    router.fill(fill(3))
    router.tick(final=True)
    assert n.flush(5.0)
    assert [t.splitlines()[0] for t in posts.texts()] == [f"{TITLE}: 1 fill", f"{TITLE}: 1 fill"]
    assert "lp-0002" in posts.texts()[1]


def test_each_target_has_its_own_window_and_only_subscribers_get_trades():
    clock = Clock()
    fast = slack(trade_batch_s=5.0, path="/services/fast/hook/A1")
    slow = slack(trade_batch_s=60.0, path="/services/slow/hook/B2")
    default = slack(events=notify.DEFAULT_EVENTS, path="/services/default/hook/C3")
    n, posts = notifier(fast, slow, default)
    router = alerts.AlertRouter(n, RUN, clock=clock)
    router.fill(fill(1))
    router.fill(fill(2))
    clock.t += 5
    router.tick()
    assert n.flush(5.0)
    assert len(posts.texts("fast")) == 2 and len(posts.texts("slow")) == 1 and posts.texts("default") == []


# --- balance thresholds ----------------------------------------------------------------------------

def test_balance_absolute_and_fraction_thresholds_measure_from_the_last_alert():
    n, posts = notifier(telegram(balance_threshold={"usdt": 100}, balance_threshold_fraction=0.05))
    router = alerts.AlertRouter(n, RUN)
    router.balance("USDT", "1000", "950", "-50")          # 50 < 100
    router.balance("USDT", "950", "899.5", "-50.5")       # 100.5 since the start: alert
    router.balance("USDT", "899.5", "899.5", "0")         # the same balance reported again (another worker)
    router.balance("BTC", Decimal("1.0"), Decimal("1.03"), Decimal("0.03"))   # 5 % of 1.0 = 0.05
    router.balance("BTC", Decimal("1.03"), Decimal("1.06"), Decimal("0.03"))  # 0.06 since the start: alert
    router.balance("BTC", Decimal("1.06"), Decimal("1.08"), Decimal("0.02"))  # 0.02 since the alert
    router.balance("ETH", "0", "5", "5")                  # started at 0, no amount: not watched
    assert n.flush(5.0)
    texts = posts.texts()
    assert len(texts) == 2
    assert texts[0].splitlines() == [f"{TITLE}: balance USDT -100.5 (1000 → 899.5)",
                                     "since the start of the run: 1000 → 899.5 (-100.5)",
                                     "threshold: 100 USDT"]
    assert texts[1].splitlines()[0] == f"{TITLE}: balance BTC +0.06 (1 → 1.06)"
    assert texts[1].splitlines()[-1] == "threshold: 5 % of the start balance (0.05 BTC)"


def test_balance_alerts_are_amber_and_only_for_subscribed_targets():
    n, posts = notifier(slack(balance_threshold={"BTC": 0.01}), slack(events=("verdict",), path="/services/x/y/z"))
    router = alerts.AlertRouter(n, RUN)
    router.balance(asset="BTC", before="0", after="0.02", delta="0.02")
    assert n.flush(5.0)
    assert len(posts.bodies) == 1
    assert posts.bodies[0][1]["attachments"][0]["color"] == notify.COLOURS[notify.WARN] == "#daa038"


# --- blocks and flattens ---------------------------------------------------------------------------

def test_orders_blocked_messages_on_state_changes_with_colours():
    n, posts = notifier(slack())
    router = alerts.AlertRouter(n, RUN)
    router.orders_blocked(False, None, "operator")                      # nothing was blocked
    router.orders_blocked(True, "maintenance", "operator (web UI)")
    router.orders_blocked(True, "maintenance", "master (operator (web UI))")   # a worker relaying it
    router.orders_blocked(False, None, "SIGUSR2")
    router.orders_blocked(blocked=True, reason="order_success rate<0.99", by="criterion order_success")
    assert n.flush(5.0)
    bodies = [b for _, b in posts.bodies]
    assert [b["text"] for b in bodies] == [
        f"{TITLE}: new orders BLOCKED by operator (web UI): maintenance",
        f"{TITLE}: new orders RESUMED by SIGUSR2",
        f"{TITLE}: new orders BLOCKED by criterion order_success: order_success rate&lt;0.99"]
    assert [b["attachments"][0]["color"] for b in bodies] == ["#daa038", "#2eb886", "#a30200"]


def test_flatten_reports_are_read_defensively():
    n, posts = notifier(telegram(), slack())
    router = alerts.AlertRouter(n, RUN)
    ok = {"reason": "abort", "by": "kill switch", "ok": True, "line": "cancelled 3 orders; sold 0.002 BTC"}
    router.flatten(ok)
    router.flatten(dict(ok))                                   # the same flatten seen twice
    router.flatten({"ok": False, "errors": ["-2010 insufficient balance"], "summary": "1 position left"})
    router.flatten(report={})
    router.flatten("flatten done, nothing open")
    assert n.flush(5.0)
    tg = posts.texts("tg.example")
    assert tg[0].splitlines() == [f"{TITLE}: flatten done (reason abort, by kill switch)",
                                  "cancelled 3 orders; sold 0.002 BTC"]
    assert tg[1].splitlines() == [f"{TITLE}: flatten FAILED", "1 position left", "error: -2010 insufficient balance"]
    assert tg[2] == f"{TITLE}: flatten finished"
    assert tg[3].splitlines()[1] == "flatten done, nothing open"
    colours = [b["attachments"][0]["color"] for u, b in posts.bodies if "hooks" in u]
    assert colours == ["#2eb886", "#a30200", "#daa038", "#daa038"]


# --- payloads and links ----------------------------------------------------------------------------

def test_slack_payload_has_a_plain_text_and_a_coloured_block_attachment():
    alert = notify.Alert("verdict", "run: FAIL — 1/2 <passed> & more", ("• p(95)<200: 251 ms", "• x"), notify.BAD)
    body = slack().payload(alert, "https://reports.example.com/runs/r1/summary.html?a=1&b=2")
    assert list(body) == ["text", "attachments"]
    assert body["text"] == ("run: FAIL — 1/2 &lt;passed&gt; &amp; more — "
                            "<https://reports.example.com/runs/r1/summary.html?a=1&amp;b=2|reports: summary.html>")
    (att,) = body["attachments"]
    assert att["color"] == "#a30200"
    assert att["fallback"] == ("run: FAIL — 1/2 <passed> & more\n• p(95)<200: 251 ms\n• x\n"
                               "reports: https://reports.example.com/runs/r1/summary.html?a=1&b=2")
    assert [b["type"] for b in att["blocks"]] == ["section", "section", "context"]
    assert att["blocks"][0]["text"] == {"type": "mrkdwn", "text": "*run: FAIL — 1/2 &lt;passed&gt; &amp; more*"}
    assert att["blocks"][1]["text"]["text"] == "• p(95)&lt;200: 251 ms\n• x"
    assert [e["text"] for e in att["blocks"][2]["elements"]] == [
        "letrade-perf · verdict",
        "<https://reports.example.com/runs/r1/summary.html?a=1&amp;b=2|reports: summary.html>"]
    local = slack().payload(alert, "file:///srv/reports/r1/summary.html")
    assert local["attachments"][0]["blocks"][2]["elements"][1]["text"] == "reports: `file:///srv/reports/r1/summary.html`"
    tg = telegram().payload(alert, "file:///srv/reports/r1/summary.html")
    assert tg["text"].splitlines()[-1] == "reports: file:///srv/reports/r1/summary.html"


@pytest.mark.parametrize("verdict,colour", [("pass", "#2eb886"), ("fail", "#a30200"), ("incomplete", "#daa038"),
                                            ("aborted", "#a30200")])
def test_verdict_colours(verdict, colour):
    summary = make_summary(verdict=verdict)
    if verdict == "aborted":
        summary["run"]["aborted"] = "HTTP 418"
    assert notify.COLOURS[notify.verdict_alert(summary).level] == colour


def test_report_links(tmp_path):
    env = {notify.REPORTS_URL_ENV: "https://ci.example.com/artifacts/{run_id}/"}
    assert notify.report_link("r1", str(tmp_path), environ=env) == "https://ci.example.com/artifacts/r1/summary.html"
    assert notify.report_link("r1", None, "https://x.example/{run_id}/summary.md", env) == "https://x.example/r1/summary.md"
    assert notify.report_link("r1", str(tmp_path), environ={}) == (tmp_path.resolve() / "summary.html").as_uri()
    assert notify.report_link("r1", None, environ={}) is None
    with pytest.raises(ValueError, match="must not hold credentials") as err:
        notify.report_link("r1", None, environ={notify.REPORTS_URL_ENV: "https://bob:hunter2@x.example/r"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="LETRADE_REPORTS_URL: must be an http"):
        notify.report_link("r1", None, environ={notify.REPORTS_URL_ENV: "ftp://x.example/r"})


def test_every_message_links_to_the_reports_and_a_target_link_wins(tmp_path):
    settings = (WebhookSettings(kind="slack", url_env="LP_ALERT_SLACK", events=("abort", "flatten")),
                WebhookSettings(kind="telegram", url_env="LP_ALERT_TG", chat_id="5", events=("abort",),
                                reports_url="https://grafana.example.com/d/letrade?var-run={run_id}&x=summary.html"))
    env = {"LP_ALERT_SLACK": f"https://hooks.example.invalid{SLACK_PATH}",
           "LP_ALERT_TG": f"https://tg.example.invalid/bot{TG_TOKEN}/sendMessage"}
    targets = notify.targets_from_settings(settings, env, run_id="r9", reports_dir=str(tmp_path))
    assert targets[1].reports_url == "https://grafana.example.com/d/letrade/summary.html?var-run=r9&x=summary.html"
    n, posts = notifier(*targets, report_link=notify.report_link("r9", str(tmp_path), environ={}))
    n.abort(RUN, "kill switch")
    alerts.AlertRouter(n, RUN).flatten({"ok": True})
    assert n.flush(5.0)
    local = (tmp_path.resolve() / "summary.html").as_uri()
    assert [t.splitlines()[-1] for t in posts.texts()] == [
        f"reports: {local}", f"reports: {targets[1].reports_url}", f"reports: {local}"]


def test_profile_notify_settings_load_validate_and_keep_today_s_defaults():
    with open(os.path.join(resources.profiles_dir(), "smoke.yaml"), encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    data["notify"] = [{"kind": "slack", "url_env": "LP_SLACK"},
                      {"kind": "slack", "url_env": "LP_SLACK", "events": ["trade", "balance", "flatten"],
                       "trade_batch_s": "2m", "balance_threshold": {"USDT": 250, "BTC": 0.01},
                       "balance_threshold_fraction": 0, "reports_url": "https://ci.example.com/{run_id}/"}]
    profile = profile_from_mapping(data, "t.yaml", "t")
    plain, opted = profile.notify
    assert plain.events == ("verdict", "abort", "criterion_failed") and plain.trade_batch_s == 60.0
    assert (opted.trade_batch_s, opted.balance_threshold, opted.balance_threshold_fraction) == (
        120.0, {"USDT": 250, "BTC": 0.01}, 0.0)
    for bad, where in (({"balance_threshold": {"USDT": -1}}, "balance_threshold.USDT"),
                       ({"events": ["trades"]}, "events"),
                       ({"reports_url": "https://u:p@ci.example.com/"}, "reports_url"),
                       ({"balance_threshold_fraction": -0.1}, "balance_threshold_fraction")):
        data["notify"] = [{"kind": "slack", "url_env": "LP_SLACK", **bad}]
        with pytest.raises(ConfigError, match=where):
            profile_from_mapping(data, "t.yaml", "t")


# --- 429 retry_after ----------------------------------------------------------------------------------

def test_telegram_retry_after_is_waited_for_capped_and_bounded():
    sleeps: list[float] = []
    posts = Posts(notify.PostResult(429, 3.0), 200,                   # message 1: wait 3 s, then sent
                  notify.PostResult(429, 600.0), 200,                 # message 2: 600 s is cut to the cap
                  *[notify.PostResult(429, 1.0)] * 5)                 # message 3: rate limited for good
    n = notify.Notifier([telegram()], post=posts, sleep=sleeps.append, retry_delay_s=1.0)
    for reason in ("one", "two", "three"):
        n.abort(RUN, reason)
    assert n.flush(5.0)
    assert n.stats() == {"sent": 2, "failed": 1}
    assert sleeps == [3.0, notify.RETRY_AFTER_CAP_S, 1.0, 1.0, 1.0, 1.0]
    assert notify.RETRY_AFTER_CAP_S == 30.0 and notify.MAX_RATE_LIMITED_RETRIES == 3
    assert len(posts.bodies) == 4 + 5                                   # 1 + 3 rate-limited + 1 ordinary retry
    assert {b["text"] for _, b in posts.bodies[:2]} == {f"{TITLE}: ABORTED: one"}


def test_retry_after_is_read_from_telegram_json_or_the_header():
    tg = b'{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":7}}'
    assert notify.retry_after(429, None, tg) == 7.0
    assert notify.retry_after(429, "12", b"") == 12.0
    assert notify.retry_after(429, "Wed, 21 Oct 2026 07:28:00 GMT", b"not json") is None
    assert notify.retry_after(500, "12", tg) is None


# --- from the ledger and Locust's events -------------------------------------------------------------

def test_fill_details_come_from_the_ledger_record():
    ledger = OrderLedger()
    ledger.sent("lp-77", "BTCUSDT", "SELL", "pipeline", via="ws_api", notional="61.25")
    ledger.accepted("lp-77", "FILLED", 1)
    rules = {"BTCUSDT": SimpleNamespace(quote="USDT")}
    details = alerts.fill_details(ledger, rules, "filled", client_order_id="lp-77", symbol="BTCUSDT", side="SELL",
                                  source="pipeline", via="ws_api")
    assert details["status"] == "FILLED" and details["notional"] == "61.25" and details["quote"] == "USDT"
    assert notify.fill_line(details).endswith("BTCUSDT ≈ 61.25 USDT FILLED (pipeline, ws_api) lp-77")


class FakeRunner:
    def __init__(self):
        self.handlers: dict = {}
        self.sent: list = []

    def register_message(self, msg_type, listener, concurrent=False):
        self.handlers[msg_type] = listener

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append((msg_type, data))


def _ctx(role: str, notify_settings=()) -> SimpleNamespace:
    events = Events()
    define_events(events)
    runner = FakeRunner()
    environment = SimpleNamespace(events=events, runner=runner)
    ctx = SimpleNamespace(role=role, profile=SimpleNamespace(name="canary", notify=tuple(notify_settings)),
                          env=SimpleNamespace(name="sim"), run_id=RUN["run_id"], ledger=OrderLedger(),
                          symbol_rules={"BTCUSDT": SimpleNamespace(quote="USDT")}, environment=environment)
    ctx.ledger.on_outcome = lambda rec, outcome: events.letrade_order.fire(
        outcome=outcome, client_order_id=rec.client_order_id, symbol=rec.symbol, side=rec.side, source=rec.source,
        via=rec.via)
    return ctx


def test_a_worker_forwards_what_the_profile_asks_for_and_the_master_sends_it():
    settings = (WebhookSettings(kind="slack", url_env="LP_X", events=("trade", "orders_blocked")),)
    worker = _ctx("worker", settings)
    assert alerts.install_alerts(worker, worker.environment, None) is None
    worker.ledger.sent("lp-1", "BTCUSDT", "BUY", "pipeline", notional="60")
    worker.ledger.accepted("lp-1", "FILLED", 11)                      # sent, placed, filled: one fill
    worker.environment.events.letrade_orders_blocked.fire(blocked=True, reason="maintenance", by="master (op)")
    worker.environment.events.letrade_balance.fire(asset="BTC", before="0", after="1", delta="1")   # not asked for
    sent = worker.environment.runner.sent
    assert [(t, d["event"]) for t, d in sent] == [(alerts.MSG_ALERT, "trade"), (alerts.MSG_ALERT, "orders_blocked")]
    assert sent[0][1]["data"]["client_order_id"] == "lp-1" and sent[0][1]["data"]["notional"] == "60"

    master = _ctx("master", settings)
    n, posts = notifier(slack(events=("verdict", "trade", "orders_blocked")))
    router = alerts.install_alerts(master, master.environment, n)
    assert router is not None
    handler = master.environment.runner.handlers[alerts.MSG_ALERT]
    for _, data in sent:
        handler(environment=master.environment, msg=SimpleNamespace(data=data))
    master.environment.events.quitting.fire(environment=master.environment)
    assert router.closed and n.flush(5.0)
    assert [t.splitlines()[0] for t in posts.texts()] == [f"{TITLE}: 1 fill",
                                                          f"{TITLE}: new orders BLOCKED by master (op): maintenance"]


def test_a_local_process_listens_to_the_events_and_nothing_is_wired_without_subscribers():
    local = _ctx("local")
    n, posts = notifier(slack(events=("balance", "flatten")))
    router = alerts.install_alerts(local, local.environment, n)
    assert router is not None
    local.environment.events.letrade_balance.fire(asset="USDT", before="1000", after="900", delta="-100")
    local.environment.events.letrade_flatten.fire(report={"ok": True, "reason": "end of run", "by": "canary"})
    local.ledger.sent("lp-2", "BTCUSDT", "BUY", "pipeline", notional="60")
    local.ledger.accepted("lp-2", "FILLED", 12)                        # no target wants trades
    local.environment.events.quitting.fire(environment=local.environment)
    assert n.flush(5.0)
    assert [t.splitlines()[0] for t in posts.texts()] == [
        f"{TITLE}: balance USDT -100 (1000 → 900)", f"{TITLE}: flatten done (reason end of run, by canary)"]
    plain = _ctx("local")
    assert alerts.install_alerts(plain, plain.environment, notifier(slack(events=notify.DEFAULT_EVENTS))[0]) is None
    assert alerts.install_alerts(plain, plain.environment, None) is None


# --- a real receiver ---------------------------------------------------------------------------------

class ScriptedReceiver:
    """HTTP on 127.0.0.1:<free port>: answers each POST to a path from ``script[path]`` (status,
    headers, body) in turn, then 200."""

    def __init__(self, script: dict):
        self.script = {k: list(v) for k, v in script.items()}
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "body": json.loads(body)})
                answers = receiver.script.get(self.path)
                status, headers, answer = answers.pop(0) if answers else (200, {}, b"ok")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_real_slack_receiver_gets_blocks_after_a_429_with_retry_after(tmp_path, caplog):
    tg_answer = b'{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":4}}'
    rx = ScriptedReceiver({SLACK_PATH: [(429, {"Retry-After": "2"}, b"rate limited")],
                           f"/bot{TG_TOKEN}/sendMessage": [(429, {"Content-Type": "application/json"}, tg_answer)]})
    sleeps: list[float] = []
    try:
        slack_url = f"{rx.base}{SLACK_PATH}"
        tg_url = f"{rx.base}/bot{TG_TOKEN}/sendMessage"
        n = notify.Notifier([notify.WebhookTarget("slack", slack_url, events=("verdict", "trade"), trade_batch_s=60.0),
                             notify.WebhookTarget("telegram", tg_url, chat_id="-7", events=("verdict",))],
                            sleep=sleeps.append, timeout_s=5.0,
                            report_link=notify.report_link("r1", None, environ={
                                notify.REPORTS_URL_ENV: "https://reports.example.com/{run_id}"}))
        router = alerts.AlertRouter(n, RUN, clock=Clock())
        router.fill(fill(1))
        assert n.flush(10.0)
        n.verdict(make_summary())
        assert n.flush(10.0)
    finally:
        rx.stop()
    assert n.stats() == {"sent": 3, "failed": 0}
    assert sleeps == [2.0, 4.0]
    paths = [r["path"] for r in rx.requests]
    assert paths == [SLACK_PATH, SLACK_PATH, SLACK_PATH, f"/bot{TG_TOKEN}/sendMessage", f"/bot{TG_TOKEN}/sendMessage"]
    first, again = rx.requests[0]["body"], rx.requests[1]["body"]
    assert first == again and first["text"].startswith(f"{TITLE}: 1 fill — <https://reports.example.com/r1/summary")
    att = first["attachments"][0]
    assert att["color"] == "#439fe0" and [b["type"] for b in att["blocks"]] == ["section", "section", "context"]
    verdict = rx.requests[2]["body"]
    assert verdict["attachments"][0]["color"] == "#2eb886" and "PASS" in verdict["text"]
    assert rx.requests[4]["body"]["text"].endswith("reports: https://reports.example.com/r1/summary.html")
    assert SLACK_PATH not in caplog.text and TG_TOKEN not in caplog.text and "rate limited" in caplog.text
