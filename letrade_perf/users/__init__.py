"""Abstract Locust users: REST, ccxt, WebSocket streams, user data and the trading pipeline.

* :mod:`.rest` — ``BinanceRestUser`` (the one paced, signed ``call()``) and ``MarketDataUser``;
* :mod:`.ccxt_user` — ``CcxtUser`` (ccxt's sync ``binance`` class, shared markets);
* :mod:`.ws` — ``WsStreamUser`` (combined streams, lag per stream, reconnects);
* :mod:`.userdata` — the WebSocket API client and the user-data tracker;
* :mod:`.pipeline` — ``TradingPipelineUser`` (signal → order → fill → reconciliation);
* :mod:`.errorpaths` — ``ErrorPathUser`` (requests the exchange must reject, classified by code);
* :mod:`.own`, :mod:`.guarded`, :mod:`.aio` — your own code: a profile's factory, guarded ccxt,
  the asyncio ↔ gevent bridge (the public face is :mod:`letrade_perf.api`);
* :mod:`.integrity` — the kline integrity check; :mod:`.symbols` — exchangeInfo order rules.

Every exchange call takes the one call path (:mod:`letrade_perf.calls.path`); the order ledger,
the kill switch and the harness's own REST client are in the harness wing.

Every base class is ``abstract = True``; concrete classes live in ``locustfiles/``. The
plugin (:mod:`letrade_perf.harness.plugin`) configures them from the profile.
"""
