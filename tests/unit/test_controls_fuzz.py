"""Bad input at the new control surfaces never crashes, fuzzed: a ``PUT /_sim/key`` body (the
simulator's key status) is applied or refused with a ``ValueError`` naming the key, and the
Locust web UI's ``/letrade/orders/*`` and ``/letrade/flatten`` routes answer JSON with 200, 400 or
409 to any body — never a 500, never an exception."""
from __future__ import annotations

import json
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letrade_perf.harness import controls
from letrade_perf.harness.controls import BlockHistory
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import from_mapping
from letrade_perf.sim.keystatus import KeyStatusBook, update_from_mapping

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
KEY_FIELDS = ("api_key", "reset", "ipRestrict", "enableReading", "enableSpotAndMarginTrading", "enableWithdrawals",
              "enableInternalTransfer", "permitsUniversalTransfer", "enableMargin", "enableFutures",
              "tradingAuthorityExpirationTime", "isLocked", "plannedRecoverTime", "status", "triggerCondition")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def _book() -> tuple[KeyStatusBook, str]:
    config = from_mapping(None)
    return KeyStatusBook(config, ManualClock()), config.accounts[0].api_key


@FUZZ
@given(st.dictionaries(st.sampled_from(KEY_FIELDS) | st.text(max_size=10), JSON, max_size=6),
       st.booleans())
def test_a_sim_key_body_is_applied_or_refused_naming_the_key(body, known_key):
    book, key = _book()
    if known_key:
        body = dict(body, api_key=key)
    try:
        view = update_from_mapping(book, body)
    except ValueError as e:          # SimConfigError is a ValueError too: a message, one line
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(view, dict) and json.dumps(view)


class _Ctx:
    def __init__(self):
        self.orders_blocked = None
        self.order_blocks = BlockHistory(lambda: 1000.0)
        self.role = "local"
        self.environment = SimpleNamespace(events=SimpleNamespace(), runner=None)

    def block_orders(self, reason, by):
        return controls.apply(self, True, reason, by)

    def resume_orders(self, by):
        return controls.apply(self, False, None, by)

    def flatten(self, reason, by):
        return {"reason": reason, "by": by, "ok": True}


def _client():
    from flask import Flask

    from letrade_perf.harness.webui_ops import install_operations_tab

    web_ui = SimpleNamespace(app=Flask("fuzz"), template_args={}, auth_required_if_enabled=lambda view: view)
    env = SimpleNamespace(web_ui=web_ui, parsed_options=SimpleNamespace(web_base_path=None))
    assert install_operations_tab(env, _Ctx())
    return web_ui.app.test_client()


CLIENT = _client()


@FUZZ
@given(st.sampled_from(["/letrade/orders/block", "/letrade/orders/resume", "/letrade/flatten"]),
       st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)),
       st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_the_control_routes_answer_json_to_any_body(path, body, ctype):
    r = CLIENT.post(path, data=body, headers={"Content-Type": ctype})
    assert r.status_code in (200, 400, 409), (r.status_code, r.data[:200])
    assert isinstance(r.get_json(), dict)
