"""The synthetic market: seeded history trades, the market maker's ladder that follows the price path,
and the Poisson taker flow that trades against the book on every tick."""
from __future__ import annotations

import random

from ..binance.intervals import MINUTE_MS
from .config import SimConfig
from .filters import E8
from .market import _u01, stable_hash
from .matching import SymbolMatcher
from .outbox import Outbox
from .state import MarketSeq, SymbolState

#: Trades generated before the start so ``/trades`` and ``/aggTrades`` are never empty.
SEED_TRADES = 500
#: At most this many taker arrivals per symbol and tick (the rest are skipped, not queued).
MAX_ARRIVALS_PER_TICK = 50


class SymbolFlow:
    """The synthetic flow's own state for one symbol: ladder grid and level sizes, the flow's random
    stream and next arrival, and the ladder's last top."""

    def __init__(self, st: SymbolState, config: SimConfig, now: int):
        r = st.rules
        seed = config.seed
        self.st = st
        # Grid of the synthetic ladder: ~0.5 bp apart, whole ticks.
        self.grid = max(1, int(st.ref8 * 0.00005) // r.tick) * r.tick
        # Typical level size from the symbol's minimum notional.
        self.level_qty = st.lot(400 * st.min_notional * E8 // st.ref8)
        self.size_salt = stable_hash("size", seed, st.symbol)
        self.rng = random.Random(stable_hash("flow", seed, st.symbol))
        self.sizes: dict[int, int] = {}
        self.next_arrival: float = now
        self.mm_top: tuple[int, int] | None = None
        self.mm_dirty = True

    def level_size(self, price: int) -> int:
        idx = price // self.grid
        q = self.sizes.get(idx)
        if q is None:
            if len(self.sizes) > 20_000:
                self.sizes.clear()
            u = _u01(self.size_salt, idx)
            q = self.st.lot(int(self.level_qty * (0.3 + 1.4 * u)))
            self.sizes[idx] = q
        return q


class Flow:
    """Drives the synthetic market of every symbol (in the engine's symbol order)."""

    def __init__(self, config: SimConfig, syms: dict[str, SymbolState], matchers: dict[str, SymbolMatcher],
                 out: Outbox, seq: MarketSeq, now: int):
        self.config = config
        self._out = out
        self._seq = seq
        self._symbols: list[tuple[SymbolState, SymbolFlow, SymbolMatcher]] = [
            (st, SymbolFlow(st, config, now), matchers[sym]) for sym, st in syms.items()]

    def start(self, now: int) -> None:
        """Seed the trade history and lay out the first ladder of every symbol."""
        out = self._out
        for st, f, m in self._symbols:
            self._seed_trades(st, f, now)
            out.begin(now)
            self._refresh_ladder(st, f, m, now)
            out.end()

    def tick(self, now_ms: int) -> None:
        """Advance the synthetic market to ``now_ms``: refresh the ladder, run the taker flow and stops."""
        seq = self._seq
        now = max(now_ms, seq.last_tick)
        seq.tick_seq += 1
        rate = self.config.market.trades_per_second
        out = self._out
        out.begin(now)
        try:
            for st, f, m in self._symbols:
                self._refresh_ladder(st, f, m, now)
                if rate > 0 and st.rules.trading:
                    self._flow(st, f, m, now, rate)
                if st.stops:
                    m.run_stops(now)
        finally:
            seq.last_tick = now
            out.end()

    def _seed_trades(self, st: SymbolState, f: SymbolFlow, now: int) -> None:
        """Trades before the start so /trades and /aggTrades are never empty."""
        rate = max(self.config.market.trades_per_second, 0.2)
        rng = random.Random(stable_hash("seed-trades", self.config.seed, st.symbol))
        times = []
        t = float(now)
        for _ in range(SEED_TRADES):
            t -= rng.expovariate(rate) * 1000.0
            times.append(int(t))
        times.reverse()
        prices = st.path.prices8(times)
        g2 = f.grid
        r = st.rules
        for t_, p_ in zip(times, prices):
            buy = rng.random() < 0.5
            price = (p_ // g2) * g2 + (g2 if buy else 0)
            price = max(price, r.tick)
            qty = st.lot(int(st.taker_qty * rng.lognormvariate(0.0, 0.6)))
            tid = st.next_trade_id
            st.next_trade_id += 1
            quote = price * qty // E8
            buyer_maker = not buy
            st.trades.append((tid, price, qty, quote, t_, buyer_maker))
            st.trade_times.append(t_)
            if not st.minutes or st.minutes[-1][0] != t_ - t_ % MINUTE_MS:
                st.minutes.append((t_ - t_ % MINUTE_MS, tid))
            st.aggs.append([st.next_agg_id, price, qty, tid, tid, t_, buyer_maker])
            st.next_agg_id += 1
            st.last_price, st.last_qty, st.last_time = price, qty, t_
        st.trade_seq += 1

    def _refresh_ladder(self, st: SymbolState, f: SymbolFlow, m: SymbolMatcher, now: int) -> None:
        book = st.book
        g = f.grid
        n = self.config.market.book_levels
        mid = st.path.price8(now)
        bid_top = max(g, mid // g * g)
        ask_top = bid_top + g
        top = (bid_top, ask_top)
        if top == f.mm_top and not f.mm_dirty:
            return
        f.mm_top = top
        f.mm_dirty = False
        bid_lo = max(g, bid_top - (n - 1) * g)
        ask_hi = ask_top + (n - 1) * g
        book.clear_synthetic_outside(True, bid_lo, bid_top)
        book.clear_synthetic_outside(False, ask_top, ask_hi)
        self._out.books_touched.add(st.symbol)
        # Account orders the move crossed trade with the market maker at their own price.
        if book.bids.prices and book.bids.prices[-1] >= ask_top:
            m.take(None, ask_top, None, None, now, taker_buy=False)
        if book.asks.prices and book.asks.prices[0] <= bid_top:
            m.take(None, bid_top, None, None, now, taker_buy=True)
        size = f.level_size
        for k in range(n):
            pb = bid_top - k * g
            if pb >= bid_lo:
                book.set_synthetic(True, pb, size(pb))
            pa = ask_top + k * g
            book.set_synthetic(False, pa, size(pa))

    def _flow(self, st: SymbolState, f: SymbolFlow, m: SymbolMatcher, now: int, rate: float) -> None:
        rng = f.rng
        n = 0
        while f.next_arrival <= now:
            if n >= MAX_ARRIVALS_PER_TICK:
                f.next_arrival = now + rng.expovariate(rate) * 1000.0
                break
            n += 1
            buy = rng.random() < 0.5
            qty = st.lot(int(st.taker_qty * rng.lognormvariate(0.0, 0.6)))
            book = st.book
            matched = book.sweep(buy, None, qty, None, st.rules.step)
            if matched:
                self._out.books_touched.add(st.symbol)
                f.mm_dirty = True
                key = object()
                for maker, price, fq in matched:
                    m.trade(None, maker, price, fq, buy, key, None, now)
            f.next_arrival += rng.expovariate(rate) * 1000.0
