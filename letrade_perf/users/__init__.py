"""Abstract Locust users: REST, ccxt, WebSocket streams, user data and the trading pipeline."""
