"""``letrade-perf sim`` arguments: defined here, next to the simulator, so the command line and the
simulator's own child process (:mod:`.process`) parse them the same way without importing the CLI."""
from __future__ import annotations

import argparse

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(value: str) -> str:
    """argparse type of ``--log-level``: one of :data:`LOG_LEVELS`, any case."""
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def add_arguments(sim: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sim.add_argument("--host", default=None, help="address to bind (default 127.0.0.1, loopback only)")
    sim.add_argument("--port", type=int, default=None, help="port to bind (default 8765; 0 = any free port)")
    sim.add_argument("--config", default=None, help="YAML simulator config (symbols, limits, latency, faults)")
    sim.add_argument("--seed", type=int, default=None, help="seed of the synthetic market and fault model")
    sim.add_argument("--fault", action="append", default=[], metavar="SPEC",
                     help="add a fault rule, e.g. 'kind=http_5xx,probability=0.1,endpoints=POST /api/v3/order' (repeatable)")
    sim.add_argument("--latency", default=None, metavar="SPEC",
                     help="default latency, e.g. 'fixed_ms=20,jitter_ms=5,dist=normal'")
    sim.add_argument("--clock-skew-ms", type=int, default=None, help="server clock skew in ms")
    sim.add_argument("--ready-file", default=None, help="write the bound base URL to this file once listening")
    sim.add_argument("--log-level", type=log_level, default="INFO", help="DEBUG, INFO (default), WARNING or ERROR")
    return sim


def main(argv: list[str]) -> int:
    """``letrade-perf sim ARGS`` without the rest of the command line."""
    args = add_arguments(argparse.ArgumentParser(prog="letrade-perf sim")).parse_args(argv)
    from .server import run_from_args

    return run_from_args(args)
