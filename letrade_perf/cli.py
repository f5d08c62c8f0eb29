"""``letrade-perf`` command line: ``sim`` (and, as they land, ``run``, ``check``, ``profiles``, ``compare``)."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="letrade-perf", description="Load, latency and acceptance harness for the Binance Spot API.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser("sim", help="run the Binance-compatible exchange simulator")
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
    sim.add_argument("--log-level", default="INFO")
    demo = sub.add_parser("demo", help="a short, bounded tour of the simulator with ccxt and websocket-client")
    demo.add_argument("--seconds", type=float, default=3.0, help="how long to listen to the trade stream")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        from .sim.server import run_from_args
        return run_from_args(args)
    if args.command == "demo":
        from .demo import run_demo
        return run_demo(args.seconds)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
