"""Bad input never crashes: each reported case exits 2 (or raises :class:`ConfigError`) with one line
naming the file, the key path and, for YAML, the line — never a traceback, never a run that does not end."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from letrade_perf import cli
from letrade_perf import run as run_mod
from letrade_perf.config.credentials import load_credentials
from letrade_perf.config.environments import environment
from letrade_perf.config.profile import MAX_SPAWN_RATE, MAX_STAGE_USERS, load_profile
from letrade_perf.core.errors import ConfigError
from letrade_perf.sim import config as simconfig

GOOD = """\
description: a small profile
stages:
  - {duration: 10s, users: 2, spawn_rate: 2}
users:
  rest_market: {weight: 1, wait_min_s: 0.2, wait_max_s: 0.5}
"""


def write(tmp_path, text: str | bytes, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def validate(capsys, path: str) -> tuple[int, str]:
    """``letrade-perf profiles --validate PATH``: the exit code and the INVALID line."""
    code = cli.main(["profiles", "--validate", path])
    out = capsys.readouterr().out.strip()
    return code, out


def load_error(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


def test_the_good_profile_loads(tmp_path):
    p = load_profile(write(tmp_path, GOOD))
    assert p.stages[0].users == 2 and p.stages[0].spawn_rate == 2.0


# --- not UTF-8 --------------------------------------------------------------------------------------

def test_a_profile_that_is_not_utf8_exits_2_naming_file_key_and_line(tmp_path, capsys):
    path = write(tmp_path, GOOD.encode().replace(b"a small profile", b"a small \xff profile"))
    code, out = validate(capsys, path)
    assert code == 2
    assert f"{path}: description: not UTF-8 text (byte 0xff at offset 21, line 1)" in out


def test_a_simulator_config_that_is_not_utf8_names_file_key_and_line(tmp_path):
    path = write(tmp_path, b"seed: 3\nmarket:\n  book_levels: 20 # \xe9t\xe9\n", "sim.yaml")
    with pytest.raises(simconfig.SimConfigError, match=r"sim\.yaml: market\.book_levels: not UTF-8 text .*line 3\)$"):
        simconfig.load(path)


def test_a_key_file_that_is_not_utf8_names_the_file(tmp_path):
    path = write(tmp_path, b"api_key: abc\nsecret: s\xffcret\n", "key.yaml")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match=rf"^key file {path}: not UTF-8 text \(line 2, offset 22\)$"):
        load_credentials(environment("sim", "http://127.0.0.1:1"), key_file=path)


# --- NaN, infinities, unbounded numbers -----------------------------------------------------------------

@pytest.mark.parametrize("old,new,expected", [
    ("duration: 10s", "duration: .inf", "stages[0].duration: .inf is not a finite number (line 3)"),
    ("spawn_rate: 2", "spawn_rate: .nan", "stages[0].spawn_rate: .nan is not a finite number (line 3)"),
    ("wait_min_s: 0.2", "wait_min_s: .NaN", "users.rest_market.wait_min_s: .NaN is not a finite number (line 5)"),
    ("wait_max_s: 0.5", "wait_max_s: -.inf", "users.rest_market.wait_max_s: -.inf is not a finite number (line 5)"),
    ("wait_max_s: 0.5", "wait_max_s: '.inf'", "users.rest_market.wait_max_s: invalid duration '.inf'"),
    ("duration: 10s", "duration: 1.0e+400", "stages[0].duration: 1.0e+400 is not a finite number (line 3)"),
    ("duration: 10s", "duration: 'inf'", "stages[0].duration: invalid duration 'inf' (at most 365 days) (line 3)"),
    ("duration: 10s", "duration: 400d", "stages[0].duration: invalid duration '400d' (at most 365 days) (line 3)"),
])
def test_nan_and_infinity_are_refused_with_key_and_line(tmp_path, capsys, old, new, expected):
    path = write(tmp_path, GOOD.replace(old, new))
    code, out = validate(capsys, path)
    assert code == 2 and f"{path}: {expected}" in out, out


def test_nan_decimals_in_the_simulator_config_are_refused(tmp_path):
    path = write(tmp_path, "symbols:\n  - {symbol: BTCUSDT, base: BTC, quote: USDT, price: 'NaN'}\n", "sim.yaml")
    with pytest.raises(simconfig.SimConfigError,
                       match=r"sim\.yaml: symbols\[0\]\.price: expected a non-negative decimal, got 'NaN' \(line 2\)"):
        simconfig.load(path)
    path = write(tmp_path, "market: {trades_per_second: .nan}\n", "sim2.yaml")
    with pytest.raises(simconfig.SimConfigError, match=r"market\.trades_per_second: \.nan is not a finite number"):
        simconfig.load(path)


@pytest.mark.parametrize("old,new,expected", [
    ("users: 2,", "users: 1000000,", f"stages[0].users: must be at most {MAX_STAGE_USERS} per stage, got 1000000 "
                                     "(line 3)"),
    ("users: 2,", "users: 100000000000000000000,", "stages[0].users: integer out of range (more than 64 bits) (line 3)"),
    ("users: 2,", "users: " + "9" * 5000 + ",", "stages[0].users: integer out of range (more than 64 bits) (line 3)"),
    ("users: 2,", "users: 1e20,", "stages[0].users: expected an integer, got '1e20' (line 3)"),
    ("spawn_rate: 2", "spawn_rate: 1.0e+9", f"stages[0].spawn_rate: must be at most {MAX_SPAWN_RATE:g} users per "
                                            "second, got 1e+09 (line 3)"),
    ("{weight: 1,", "{weight: 1000000000,", "users.rest_market.weight: must be at most 100000, got 1000000000 (line 5)"),
    ("{weight: 1,", "{task_weights: {depth: 100000000}, weight: 1,",
     "users.rest_market.task_weights.depth: must be at most 1000, got 100000000 (line 5)"),
])
def test_user_counts_and_spawn_rates_are_bounded(tmp_path, capsys, old, new, expected):
    path = write(tmp_path, GOOD.replace(old, new))
    code, out = validate(capsys, path)
    assert code == 2 and f"{path}: {expected}" in out, out


def test_the_user_count_bound_itself_is_accepted(tmp_path):
    path = write(tmp_path, GOOD.replace("users: 2, spawn_rate: 2", f"users: {MAX_STAGE_USERS}, spawn_rate: "
                                                                  f"{MAX_SPAWN_RATE:g}"))
    assert load_profile(path).stages[0].users == MAX_STAGE_USERS


@pytest.mark.parametrize("value,expected", [
    ("2026-13-45", "'2026-13-45' is not a valid timestamp (ValueError)"),
    ("!!float abc", "'abc' is not a valid float (ValueError)"),
    ("!!bool maybe", "'maybe' is not a valid bool (KeyError)"),
])
def test_values_their_yaml_tag_cannot_hold_are_refused(tmp_path, value, expected):
    path = write(tmp_path, GOOD + f"sim: {{seed: {value}}}\n")
    assert load_error(path) == f"{path}: sim.seed: {expected} (line 6)"


# --- deep nesting, aliases --------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("[" * 3000 + "]" * 3000, r"sim(\[0\]){32}: nested deeper than 32 levels \(line 6\)"),
    ("{a: " * 3000 + "1" + "}" * 3000, r"sim(\.a){31,32}: nested deeper than 32 levels \(line 6\)"),
    ("&x [*x]", r"sim\[0\]: an alias refers to itself \(line 6\)"),
])
def test_deep_nesting_and_recursive_aliases_are_refused(tmp_path, value, expected):
    path = write(tmp_path, GOOD + f"sim: {value}\n")
    message = load_error(path)
    assert re.search(rf"^{re.escape(path)}: {expected}$", message), message


def test_an_alias_bomb_is_refused(tmp_path):
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = write(tmp_path, GOOD + "sim:\n" + "".join(f"  {line}\n" for line in bomb))
    assert "expands to more than 100000 values (aliases)" in load_error(path)


def test_deep_nesting_in_a_simulator_config_is_refused(tmp_path):
    path = write(tmp_path, "faults: " + "[" * 2000 + "]" * 2000 + "\n", "sim.yaml")
    with pytest.raises(simconfig.SimConfigError, match=r"nested deeper than 32 levels \(line 1\)"):
        simconfig.load(path)


# --- duplicate keys --------------------------------------------------------------------------------

def test_a_duplicate_key_names_both_lines(tmp_path, capsys):
    path = write(tmp_path, GOOD + "description: another\n")
    code, out = validate(capsys, path)
    assert code == 2 and f"{path}: description: duplicate key (lines 1 and 6)" in out, out


def test_a_duplicate_key_in_a_flow_mapping_names_the_key_path(tmp_path):
    path = write(tmp_path, GOOD.replace("spawn_rate: 2}", "spawn_rate: 2, users: 3}"))
    assert load_error(path) == f"{path}: stages[0].users: duplicate key (lines 3 and 3)"


def test_a_duplicate_key_in_a_key_file_is_refused_without_its_value(tmp_path):
    path = write(tmp_path, "api_key: abc\nsecret: first-secret\nsecret: second-secret\n", "key.yaml")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        load_credentials(environment("sim", "http://127.0.0.1:1"), key_file=path)
    assert str(info.value) == f"key file {path}: secret: duplicate key (lines 2 and 3)"


def test_merge_keys_still_override(tmp_path):
    text = GOOD.replace("  rest_market: {weight: 1, wait_min_s: 0.2, wait_max_s: 0.5}",
                        "  rest_market:\n    <<: {weight: 3}\n    weight: 2")
    assert load_profile(write(tmp_path, text)).users.rest_market.weight == 2


# --- the command line ---------------------------------------------------------------------------------

def plan(argv: list[str], capsys) -> tuple[object, str]:
    """``letrade-perf run ARGV`` up to the validated plan (nothing started): the result and stderr."""
    args = cli.build_parser().parse_args(["run", *argv])
    result = run_mod.plan_from_args(args)
    return result, capsys.readouterr().err


def test_reports_pointing_at_a_file_exits_2(tmp_path, capsys):
    afile = tmp_path / "reports.txt"
    afile.write_text("not a directory")
    for reports in (str(afile), str(afile / "below")):
        result, err = plan(["--profile", write(tmp_path, GOOD), "--reports", reports], capsys)
        assert result == 2
        assert err.strip() == f"letrade-perf run: --reports {reports}: {afile} exists and is not a directory"
    assert afile.read_text() == "not a directory"


@pytest.mark.parametrize("run_id", ["../up", "a/b", "..", " "])
def test_a_run_id_that_is_a_path_exits_2(tmp_path, capsys, run_id):
    result, err = plan(["--profile", write(tmp_path, GOOD), "--reports", str(tmp_path), "--run-id", run_id], capsys)
    assert result == 2 and err.startswith("letrade-perf run: --run-id: "), err


@pytest.mark.parametrize("workers", ["-1", "257", "1000000", "99999999999999999999", "x", "1.5", ""])
def test_bad_worker_counts_exit_2_naming_the_option(capsys, workers):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["run", f"--workers={workers}"])
    assert info.value.code == 2
    assert "letrade-perf run: error: argument --workers: " in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["0", "1", str(cli.MAX_WORKERS)])
def test_good_worker_counts_make_a_plan(tmp_path, capsys, workers):
    result, err = plan(["--profile", write(tmp_path, GOOD), "--reports", str(tmp_path), "--workers", workers], capsys)
    assert not isinstance(result, int), err
    assert result[0].workers == int(workers)
    assert os.listdir(tmp_path) == ["p.yaml"]        # validation creates no directory


def test_a_worker_count_out_of_bounds_from_code_is_refused_too(tmp_path, capsys):
    args = cli.build_parser().parse_args(["run", "--profile", write(tmp_path, GOOD), "--reports", str(tmp_path)])
    args.workers = -1
    assert run_mod.plan_from_args(args) == 2
    assert "--workers: must be within 0..256, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "1e9"])
def test_demo_seconds_are_bounded(capsys, seconds):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["demo", f"--seconds={seconds}"])
    assert info.value.code == 2 and "argument --seconds" in capsys.readouterr().err


def test_the_command_exits_2_without_a_traceback(tmp_path):
    """One end-to-end check through the console entry point (a bad profile stops before anything starts)."""
    path = write(tmp_path, GOOD.replace("spawn_rate: 2", "spawn_rate: .nan"))
    proc = subprocess.run([sys.executable, "-m", "letrade_perf", "run", "--profile", path, "--reports", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{path}: stages[0].spawn_rate: .nan is not a finite number (line 3)" in proc.stderr
