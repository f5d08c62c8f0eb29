"""The one call path (:mod:`.path`) and the request encoding (:mod:`.request`) every exchange
call of the harness shares — raw REST, ccxt (sync, asyncio), the WebSocket API, the harness's own
client, ``letrade-perf check`` and the public API for your code. No Locust, no gevent: the
transports that use it bring those. Importing this package imports nothing."""
