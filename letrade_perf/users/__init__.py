"""Abstract Locust users: REST, ccxt, WebSocket streams, user data and the trading pipeline.

* :mod:`.rest` — ``BinanceRestUser`` (the one paced, signed ``call()``) and ``MarketDataUser``;
* :mod:`.ccxt_user` — ``CcxtUser`` (ccxt's sync ``binance`` class, shared markets);
* :mod:`.ws` — ``WsStreamUser`` (combined streams, lag per stream, reconnects);
* :mod:`.userdata` — the WebSocket API client and the user-data tracker;
* :mod:`.pipeline` — ``TradingPipelineUser`` (signal → order → fill → reconciliation);
* :mod:`.ledger` — the process-wide ``OrderLedger`` and the kill switch;
* :mod:`.integrity` — the kline integrity check; :mod:`.symbols` — exchangeInfo order rules;
* :mod:`.exchange` — the call result, pacing feedback and the harness's own REST client.

Every base class is ``abstract = True``; concrete classes live in ``locustfiles/``. The
plugin (:mod:`letrade_perf.harness.plugin`) configures them from the profile.
"""
