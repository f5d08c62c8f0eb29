"""Task mixes of letrade-perf's users: the profile's weights apply to the built-in tasks, and the
tasks a subclass declares itself are never dropped."""
from __future__ import annotations

import pytest
from locust import TaskSet, task

from letrade_perf.users.ccxt_user import CcxtUser
from letrade_perf.users.rest import MarketDataUser


def names(cls) -> list[str]:
    return [t.__name__ for t in cls.tasks]


def test_profile_weights_rebuild_the_built_in_tasks():
    class Plain(MarketDataUser):
        pass

    Plain.set_task_weights({"depth": 1, "klines": 0, "trades": 0, "ticker": 0, "book_ticker": 2})
    assert sorted(names(Plain)) == ["book_ticker", "book_ticker", "depth"]


def test_a_subclasss_own_tasks_survive_the_profile_weights():
    class Strategy(TaskSet):
        @task
        def step(self):
            pass

    class Mine(MarketDataUser):

        @task(3)
        def my_signal(self):
            pass

    Mine.tasks = Mine.tasks + [Strategy]
    Mine.set_task_weights({"depth": 2, "klines": 0, "trades": 0, "ticker": 0, "book_ticker": 0})
    got = names(Mine)
    assert got.count("depth") == 2 and got.count("my_signal") == 3 and got.count("Strategy") == 1
    assert "klines" not in got
    Mine.set_task_weights({"depth": 1})          # applied again: still kept, not duplicated
    assert names(Mine).count("my_signal") == 3 and names(Mine).count("Strategy") == 1


def test_an_overridden_built_in_task_takes_the_profile_weight():
    class Override(CcxtUser):
        @task(9)
        def ticker(self):
            return "mine"

    Override.set_task_weights({"ticker": 2})
    ticker = [t for t in Override.tasks if t.__name__ == "ticker"]
    assert len(ticker) == 2 and all(t is Override.ticker for t in ticker)


def test_unknown_names_and_all_zero_mixes_are_errors():
    class Bare(MarketDataUser):
        pass

    with pytest.raises(ValueError, match="unknown market-data task"):
        Bare.set_task_weights({"nope": 1})
    with pytest.raises(ValueError, match="all 0"):
        Bare.set_task_weights({k: 0 for k in Bare.settings.task_weights})
