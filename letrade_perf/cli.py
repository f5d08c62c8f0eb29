"""``letrade-perf`` command line: ``sim``, ``run``, ``check``, ``profiles``, ``compare``, ``demo``, ``paths``."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from .core.endings import EXIT_CODES
from .sim.args import LOG_LEVELS  # noqa: F401 - re-exported (tests, callers)
from .sim.args import add_arguments as add_sim_arguments
from .sim.args import log_level as _log_level


class _VersionAction(argparse.Action):
    """``--version``: computed only when asked (it reads package metadata)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .core.runmeta import versions_line
        print(versions_line())
        parser.exit()


#: Most Locust worker processes ``letrade-perf run --workers`` starts on this machine.
MAX_WORKERS = 256


def int_within(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer within ``low..high`` (argparse exits 2 naming the option otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be within {low}..{high}, got {value}")
        return value
    parse.__name__ = "integer"      # argparse names the type in some messages
    return parse


def seconds_within(high: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number of seconds within ``(0, high]``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text[:40]!r}") from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(f"must be within (0, {high:g}] seconds, got {text[:40]}")
        return value
    parse.__name__ = "seconds"
    return parse


def _target_options(parser: argparse.ArgumentParser, host_help: str) -> None:
    parser.add_argument("--host", default=None, metavar="URL", help=host_help)
    parser.add_argument("--rest-url", default=None, metavar="URL",
                        help="REST base URL on its own (a mirror or proxy); overrides the one --host or the env gives")
    parser.add_argument("--stream-url", default=None, metavar="URL",
                        help="market-stream base URL on its own (ws:// or wss://)")
    parser.add_argument("--ws-api-url", default=None, metavar="URL",
                        help="WebSocket API URL on its own (ws:// or wss://…/ws-api/v3)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="letrade-perf", description="Load, latency and acceptance harness for the Binance Spot API.")
    p.add_argument("--version", action=_VersionAction,
                   help="print the versions of letrade-perf, Locust, ccxt and Python")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser("sim", help="run the Binance-compatible exchange simulator")
    add_sim_arguments(sim)
    run = sub.add_parser("run", help="run a load profile with Locust (default: smoke against the simulator)",
                         description="Run a load profile. Arguments after -- go to Locust.",
                         epilog="exit codes: " + "; ".join(f"{code} {text}" for code, text in sorted(EXIT_CODES.items())))
    run.add_argument("--profile", default="smoke", help="bundled profile name or YAML path (default smoke)")
    run.add_argument("-f", "--locustfile", default=None, metavar="PATH",
                     help="your own locustfile (it imports letrade_perf.locustfile; its own users run beside "
                          "letrade-perf's); default: the bundled one")
    run.add_argument("--env", choices=("sim", "testnet", "production"), default=None,
                     help="target environment (default: the profile's env)")
    _target_options(run, "base URL from which the REST, stream and WebSocket API URLs derive (default: the "
                         "env's own URLs; sim: an embedded simulator)")
    run.add_argument("--web", action="store_true", help="run with Locust's web UI on 127.0.0.1:8089")
    run.add_argument("--workers", type=int_within(0, MAX_WORKERS), default=0, metavar="N",
                     help=f"run a local master and N worker processes (0..{MAX_WORKERS}; default 0: one process)")
    run.add_argument("--reports", default="reports", help="reports directory (default reports/)")
    run.add_argument("--run-id", default=None, help="run id (default: UTC time and profile name)")
    run.add_argument("--key-file", default=None, help="API key file (mode 0600)")
    run.add_argument("--operator", default=None, metavar="NAME",
                     help="who runs the run, for the audit trail and the reports (default: the OS user)")
    run.add_argument("--allow-production-orders", action="store_true",
                     help="allow a production profile to place (capped) orders")
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress line and no Locust stats tables: only warnings, errors and the final "
                          "verdict block")
    run.add_argument("--log-level", type=_log_level, default=None,
                     help="DEBUG, INFO (default), WARNING or ERROR; also Locust's --loglevel")
    run.add_argument("--baseline", default=None, metavar="SUMMARY",
                     help="compare with a previous run's summary.json (or its report directory); "
                          "a regression beyond the tolerance fails the run (exit 99)")
    run.add_argument("--tolerance", default=None,
                     help="regression tolerance for --baseline, e.g. 10%% or 0.1 (default: the profile's gate."
                          "baseline_tolerance, 10%%)")
    run.add_argument("--webhook", action="append", default=[], metavar="KIND=URL",
                     help="notify a webhook of the verdict, aborts and failing criteria: slack=URL or "
                          "telegram=URL?chat_id=N (repeatable; passed to Locust through the environment)")
    run.add_argument("--influx-url", default=None, metavar="URL",
                     help="write metrics to InfluxDB at URL (2.x/3.x/1.8+; token from $LETRADE_INFLUX_TOKEN; "
                          "default: $LETRADE_INFLUX_URL or the profile's sink)")
    run.add_argument("--influx-org", default=None, help="InfluxDB organisation (default letrade)")
    run.add_argument("--influx-bucket", default=None, help="InfluxDB bucket, or db/rp on 1.8 (default letrade_perf)")
    run.add_argument("--influx-mode", choices=("aggregate", "raw"), default=None,
                     help="aggregate: one point per series and interval (default); raw: also one point per sample")
    run.add_argument("locust_args", nargs=argparse.REMAINDER, help="-- extra Locust arguments")
    check = sub.add_parser("check", help="check configuration, connectivity, clock, limits, credentials and "
                           "market data before a run (read-only)")
    check.add_argument("--env", choices=("sim", "testnet", "production"), default=None,
                       help="target environment (default: the profile's, else sim)")
    _target_options(check, "base URL from which the REST, stream and WebSocket API URLs derive (default: the "
                           "env's own URLs; sim: start an embedded simulator)")
    check.add_argument("--log-level", type=_log_level, default=None, help="DEBUG, INFO, WARNING (default) or ERROR")
    check.add_argument("--key-file", default=None, help="API key file (YAML/JSON, mode 0600)")
    check.add_argument("--profile", default=None, help="also validate this profile (bundled name or YAML path)")
    check.add_argument("--expiry-warn-days", type=int_within(1, 3650), default=30, metavar="N",
                       help="key audit: WARN when the key's trading authority expires within N days (1..3650; "
                            "default 30)")
    profiles = sub.add_parser("profiles", help="list the bundled profiles")
    profiles_mode = profiles.add_mutually_exclusive_group()
    profiles_mode.add_argument("--validate", action="store_true",
                               help="load and validate each profile (exit 2 on any error)")
    profiles_mode.add_argument("--schema", action="store_true",
                               help="print the profile's JSON Schema (draft 2020-12) for editors; the package "
                                    "ships it as profiles/profile.schema.json")
    profiles.add_argument("refs", nargs="*", metavar="PROFILE",
                          help="with --validate: profiles or YAML paths to validate instead of the bundled ones")
    demo = sub.add_parser("demo", help="a short, bounded tour of the simulator with ccxt and websocket-client")
    demo.add_argument("--seconds", type=seconds_within(600), default=3.0,
                      help="how long to listen to the trade stream (at most 600)")
    from .compare_cli import add_parser as add_compare_parser
    add_compare_parser(sub)
    paths = sub.add_parser("paths", help="where the installed locustfile, profiles and Grafana dashboards are",
                           description="Print the package's data paths, e.g. locust -f \"$(letrade-perf paths "
                                       "locustfile)\" --profile smoke")
    paths.add_argument("name", nargs="?", choices=("locustfile", "profiles", "dashboards", "grafana", "package"),
                       help="print only this path")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except KeyboardInterrupt:
        print(f"letrade-perf {args.command or ''}: interrupted".rstrip(), file=sys.stderr)
        from .core.endings import EXIT_INTERRUPTED
        return EXIT_INTERRUPTED
    except Exception as e:      # never a traceback on the console: the log has it, the exit code says so
        from .core.errors import internal_error
        return internal_error(f"letrade-perf {args.command}", e)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "sim":
        from .sim.server import run_from_args
        return run_from_args(args)
    if args.command == "run":
        from .run import run_from_args as run_profile
        return run_profile(args)
    if args.command == "check":
        from .check import run_from_args as run_check
        return run_check(args)
    if args.command == "profiles":
        from .config.listing import run_from_args as run_profiles
        return run_profiles(args)
    if args.command == "compare":
        from .compare_cli import run_from_args as run_compare
        return run_compare(args)
    if args.command == "paths":
        from .core.resources import run_from_args as run_paths
        return run_paths(args)
    if args.command == "demo":
        from .demo import run_demo
        return run_demo(args.seconds)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
