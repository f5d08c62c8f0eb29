"""The bottom of the package: what every other part may use and which uses none of them.

:mod:`.errors` (``ConfigError``), :mod:`.strict` (the strict YAML → dataclass loader behind the
profile and the simulator config), :mod:`.secrets` (masking), :mod:`.runmeta` (versions and git
commit a run reports), :mod:`.procs` (process helpers), :mod:`.resources` (package data paths).
Nothing here imports Locust, gevent or another ``letrade_perf`` package.
"""
