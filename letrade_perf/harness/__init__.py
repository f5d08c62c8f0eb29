"""The harness wing: everything that holds a Locust Environment.

:mod:`.plugin` (the per-process context, command-line options, load shape, start-up and the kill
switch), :mod:`.gate` (the criteria gate on Locust's events and greenlets), :mod:`.sink` (the
InfluxDB sink on Locust's events), :mod:`.distributed` (the master's shared weight budget and its
workers), :mod:`.webui` (the web UI's Criteria tab). The Locust users are in
:mod:`letrade_perf.users`. The domain packages below (``config``, ``criteria``, ``metrics``,
``reports``, ``pacing``, ``binance``, ``sim``, ``core``) import no Locust; import-linter checks it
(``.importlinter``). Importing this package imports nothing.
"""
