"""Kline integrity check: a clean series passes; gaps, duplicates, disorder and OHLC violations are found."""
from __future__ import annotations

import copy

import pytest

from letrade_perf.binance.intervals import HOUR_MS, MINUTE_MS
from letrade_perf.users.integrity import CLOSE_TIME, DISORDER, DUPLICATE, GAP, MALFORMED, MISALIGNED, OHLC, check_klines

T0 = 1_700_000_040_000 // MINUTE_MS * MINUTE_MS


def row(t: int, step: int = MINUTE_MS, o="100.00", h="101.00", low="99.00", c="100.50", v="2.0"):
    return [t, o, h, low, c, v, t + step - 1, "200.0", 7, "1.0", "100.0", "0"]


def series(n: int, step: int = MINUTE_MS, start: int = T0):
    return [row(start + i * step, step) for i in range(n)]


def kinds(rows, interval="1m"):
    return [i.kind for i in check_klines(rows, interval)]


def test_clean_series_passes():
    assert check_klines(series(1500), "1m") == []
    assert check_klines(series(48, HOUR_MS, start=T0 // HOUR_MS * HOUR_MS), "1h") == []
    assert check_klines([], "1m") == []


def test_gap_detected_with_missing_count():
    rows = series(10)
    del rows[4:7]
    issues = check_klines(rows, "1m")
    assert [i.kind for i in issues] == [GAP]
    assert issues[0].index == 4 and "3 candle(s) missing" in issues[0].detail


def test_duplicate_detected():
    rows = series(5)
    rows.insert(3, copy.deepcopy(rows[2]))
    assert kinds(rows) == [DUPLICATE]


def test_disorder_detected():
    rows = series(6)
    rows[2], rows[3] = rows[3], rows[2]
    assert DISORDER in kinds(rows)


@pytest.mark.parametrize("field,value", [(2, "98.00"), (3, "100.60"), (1, "102.00"), (4, "98.50")])
def test_ohlc_violation_detected(field, value):
    rows = series(3)
    rows[1][field] = value
    assert kinds(rows) == [OHLC]


def test_negative_volume_detected():
    rows = series(3)
    rows[2][5] = "-1"
    assert kinds(rows) == [OHLC]


def test_close_time_and_alignment():
    rows = series(3)
    rows[1][6] += 1
    assert kinds(rows) == [CLOSE_TIME]
    rows = series(3)
    rows[0][0] += 5
    assert MISALIGNED in kinds(rows)


def test_malformed_rows_are_reported_not_raised():
    rows = series(3)
    rows[1] = rows[1][:5]
    rows[2][2] = "not-a-number"
    assert kinds(rows) == [MALFORMED, MALFORMED]


def test_issue_count_is_capped():
    rows = series(100)
    for r in rows:
        r[2] = "1.00"
    assert len(check_klines(rows, "1m", max_issues=5)) == 5


def test_check_depth_flags_crossed_and_malformed_books():
    from letrade_perf.users.integrity import check_depth

    assert check_depth({"lastUpdateId": 1, "bids": [["100.0", "1"]], "asks": [["100.5", "2"]]}) is None
    assert check_depth({"bids": [], "asks": []}) is None
    assert "crossed" in check_depth({"bids": [["101", "1"]], "asks": [["100", "1"]]})
    assert "crossed" in check_depth({"bids": [["100", "1"]], "asks": [["100", "1"]]})
    assert "missing" in check_depth({"bids": [["1", "1"]]})
    assert "malformed" in check_depth({"bids": [["x", "1"]], "asks": [["2", "1"]]})
    assert "not an object" in check_depth([1, 2])
