"""``letrade-perf profiles [--validate] [PROFILE ...]``: the bundled profiles as a table; with
``--validate`` each one (or each given name/path) is loaded, and any error exits 2.
``letrade-perf profiles --schema`` prints the profile's JSON Schema (:mod:`.jsonschema`)."""
from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..core.errors import ConfigError
from ..criteria.grammar import unproduced
from .profile import list_profiles, load_profile


def run_from_args(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    refs = list(getattr(args, "refs", []) or [])
    if getattr(args, "schema", False):
        if refs:
            print("letrade-perf profiles: --schema takes no profile names", file=err)
            return 2
        from .jsonschema import profile_json_schema_text
        out.write(profile_json_schema_text())
        return 0
    if refs and not args.validate:
        print("letrade-perf profiles: naming profiles needs --validate", file=err)
        return 2
    listed = list_profiles()
    if not args.validate:
        if not listed:
            print("no bundled profiles found", file=err)
            return 2
        width = max(len(n) for n, _, _ in listed)
        print(f"{'profile':<{width}}  description", file=out)
        print(f"{'-' * width}  {'-' * 11}", file=out)
        for name, desc, _ in listed:
            print(f"{name:<{width}}  {desc}", file=out)
        return 0
    targets = refs or [name for name, _, _ in listed]
    if not targets:
        print("no bundled profiles found", file=err)
        return 2
    failed = 0
    width = max(len(t) for t in targets)
    for ref in targets:
        try:
            p = load_profile(ref)
        except ConfigError as e:
            failed += 1
            for i, one in enumerate(e.errors):      # several found at once: one per line
                print(f"{ref if i == 0 else '':<{width}}  {'INVALID' if i == 0 else '':<7}  {one}", file=out)
            continue
        kinds = ", ".join(p.users.active())
        print(f"{ref:<{width}}  ok       env {p.env}, {p.duration_s:g} s, {len(p.stages)} stage(s), users: {kinds}, "
              f"{len(p.criteria)} criteria", file=out)
        for problem in unproduced(p.criteria, p.users.produces(), p.users.places_orders, p.source):
            # only a run knows its locustfile: with letrade-perf's users alone it stops with exit 2
            print(f"{'':<{width}}  note     {problem} — the run stops (exit 2) unless the locustfile's own "
                  f"user classes produce it", file=out)
    if failed:
        print(f"{failed} of {len(targets)} profile(s) invalid", file=err)
        return 2
    return 0
