"""The user-kind registry: every kind a profile may name maps to one user class and one settings
class, the users read their settings from the frozen profile, and keep no copies of them."""
from __future__ import annotations

import dataclasses
import typing
from collections import Counter

import pytest

import letrade_perf.config.profile as profile_module
from letrade_perf.config.profile import UserMix, load_profile
from letrade_perf.harness.plugin import _user_kind, configure_user_class
from letrade_perf.locustfile import USER_KINDS

HINTS = typing.get_type_hints(UserMix, vars(profile_module))


def settings_class(kind: str) -> type:
    [cls] = [a for a in typing.get_args(HINTS[kind]) if a is not type(None)]
    return cls


def test_every_profile_kind_has_one_user_class_and_its_settings_class():
    assert set(USER_KINDS) == set(UserMix.kinds())
    for kind, user in USER_KINDS.items():
        assert _user_kind(user) == kind
        assert type(user.settings) is settings_class(kind), kind


@pytest.mark.parametrize("kind", UserMix.kinds())
def test_users_keep_no_copy_of_their_settings(kind):
    """A setting lives in the frozen settings only: no user class attribute shadows a field."""
    user = USER_KINDS[kind]
    fields = {f.name for f in dataclasses.fields(settings_class(kind))}
    # the Locust knobs the plugin sets from the settings are Locust's own attributes
    locust_knobs = {"weight", "fixed_count", "wait_min_s", "wait_max_s"}
    copies = {name for name in fields - locust_knobs for klass in user.__mro__ if name in vars(klass)}
    assert not copies, f"{user.__name__} copies settings {sorted(copies)}"


def test_the_default_task_mix_is_the_settings_default():
    for kind in ("rest_market", "ccxt"):
        user = USER_KINDS[kind]
        weights = dict(settings_class(kind)().task_weights)
        if kind == "ccxt":
            weights["order"] = 0      # orders are off by default
        got = Counter(t.__name__ for t in user.tasks)
        assert got == Counter({k: w for k, w in weights.items() if w}), kind


def test_configure_gives_the_class_the_frozen_profile_settings(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("description: kinds\nenv: sim\nsymbols: [BTCUSDT]\nstages: [{duration: 5s, users: 1, spawn_rate: 1}]\n"
                    "users:\n  rest_market: {depth_limit: 50, task_weights: {klines: 0, ticker: 0}}\n")
    settings = load_profile(str(path)).users.rest_market

    class Mine(USER_KINDS["rest_market"]):
        pass

    configure_user_class(Mine, settings)
    assert Mine.settings is settings and Mine.settings.depth_limit == 50
    assert "klines" not in {t.__name__ for t in Mine.tasks} and "ticker" not in {t.__name__ for t in Mine.tasks}
    with pytest.raises(dataclasses.FrozenInstanceError):
        Mine.settings.depth_limit = 7     # type: ignore[misc]
    # the base class is untouched
    assert USER_KINDS["rest_market"].settings.depth_limit == settings_class("rest_market")().depth_limit
