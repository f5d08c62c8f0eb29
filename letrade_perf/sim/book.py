"""A price-time priority order book in integer e8 units.

Each price level holds a FIFO of entries ``[owner, qty8]``: ``owner`` is an account order
(an object with an ``entry`` attribute pointing back at its entry) or ``None`` for the
synthetic market maker's liquidity. Every modification marks the level changed; :meth:`flush`
turns the changed levels into one :class:`~letrade_perf.sim.events.BookChange` with a contiguous
update-id range, and :meth:`snapshot` serves depth from a cache keyed by the update id.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Sequence

from .events import BookChange
from .filters import E8


class Level:
    __slots__ = ("price", "qty", "syn", "entries")

    def __init__(self, price: int):
        self.price = price
        self.qty = 0          # total resting quantity (e8)
        self.syn = 0          # of which synthetic
        self.entries: deque = deque()


class Side:
    """One side of the book: ``prices`` ascending, ``levels`` by price."""

    __slots__ = ("is_bid", "prices", "levels")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.prices: list[int] = []
        self.levels: dict[int, Level] = {}

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def level(self, price: int) -> Level:
        lv = self.levels.get(price)
        if lv is None:
            lv = self.levels[price] = Level(price)
            insort(self.prices, price)
        return lv

    def drop(self, price: int) -> None:
        del self.levels[price]
        prices = self.prices
        i = bisect_left(prices, price)
        if i < len(prices) and prices[i] == price:
            del prices[i]

    def best_first(self):
        """Prices from the best outwards."""
        return reversed(self.prices) if self.is_bid else iter(self.prices)


def _fmt(v: int) -> str:
    return "%d.%08d" % divmod(v, E8)


class OrderBook:
    """Bids and asks of one symbol with change tracking and a depth cache."""

    def __init__(self, symbol: str, update_id: int = 1):
        self.symbol = symbol
        self.bids = Side(True)
        self.asks = Side(False)
        self.update_id = update_id
        self._changed_bids: set[int] = set()
        self._changed_asks: set[int] = set()
        self._depth_cache: dict[int, dict] = {}
        self._depth_cache_id = -1
        self._price_str: dict[int, str] = {}

    # -- helpers ----------------------------------------------------------------------------
    def side(self, is_bid: bool) -> Side:
        return self.bids if is_bid else self.asks

    def _mark(self, is_bid: bool, price: int) -> None:
        (self._changed_bids if is_bid else self._changed_asks).add(price)

    def pstr(self, price: int) -> str:
        s = self._price_str.get(price)
        if s is None:
            if len(self._price_str) > 50_000:
                self._price_str.clear()
            s = self._price_str[price] = _fmt(price)
        return s

    def best_bid(self) -> int | None:
        return self.bids.best()

    def best_ask(self) -> int | None:
        return self.asks.best()

    # -- resting orders ---------------------------------------------------------------------
    def add_order(self, order, is_bid: bool, price: int, qty: int) -> None:
        """Append an account order at the back of its price level."""
        lv = self.side(is_bid).level(price)
        entry = [order, qty]
        order.entry = entry
        lv.entries.append(entry)
        lv.qty += qty
        self._mark(is_bid, price)

    def remove_order(self, order, is_bid: bool, price: int) -> None:
        entry = getattr(order, "entry", None)
        if entry is None:
            return
        side = self.side(is_bid)
        lv = side.levels.get(price)
        order.entry = None
        if lv is None:
            return
        try:
            lv.entries.remove(entry)
        except ValueError:
            return
        lv.qty -= entry[1]
        entry[1] = 0
        if not lv.entries:
            side.drop(price)
        self._mark(is_bid, price)

    # -- synthetic liquidity ----------------------------------------------------------------
    def set_synthetic(self, is_bid: bool, price: int, target: int) -> None:
        side = self.side(is_bid)
        lv = side.levels.get(price)
        cur = lv.syn if lv is not None else 0
        if cur == target:
            return
        if lv is None:
            lv = side.level(price)
        if target > cur:
            lv.entries.append([None, target - cur])
        else:
            excess = cur - target
            ents = lv.entries
            for k in range(len(ents) - 1, -1, -1):
                if excess <= 0:
                    break
                e = ents[k]
                if e[0] is None:
                    take = e[1] if e[1] <= excess else excess
                    e[1] -= take
                    excess -= take
                    if e[1] == 0:
                        del ents[k]
        lv.qty += target - cur
        lv.syn = target
        if not lv.entries:
            side.drop(price)
        self._mark(is_bid, price)

    def synthetic_at(self, is_bid: bool, price: int) -> int:
        lv = self.side(is_bid).levels.get(price)
        return lv.syn if lv is not None else 0

    def clear_synthetic_outside(self, is_bid: bool, lo: int, hi: int) -> None:
        """Remove synthetic liquidity at prices outside ``[lo, hi]`` on one side."""
        side = self.side(is_bid)
        prices = side.prices
        i = bisect_left(prices, lo)
        j = bisect_left(prices, hi + 1)
        for p in prices[:i] + prices[j:]:
            lv = side.levels[p]
            if lv.syn:
                self.set_synthetic(is_bid, p, 0)

    # -- matching ---------------------------------------------------------------------------
    def sweep(self, taker_buy: bool, limit: int | None, max_qty: int | None, max_quote: int | None,
              step: int, dry_run: bool = False) -> list[tuple]:
        """Match a taker against the opposite side, best price first, FIFO within a level.

        Stops at ``limit`` (None: no price limit), after ``max_qty`` base, or when
        ``max_quote`` quote is spent (BUY) / received (SELL), in whole ``step`` lots.
        Returns ``[(maker_owner, price, qty), ...]``; with ``dry_run`` nothing changes.
        """
        side = self.asks if taker_buy else self.bids
        fills: list[tuple] = []
        rem_qty = max_qty
        rem_quote = max_quote
        if not side.prices:
            return fills
        prices: Sequence[int] = list(side.best_first()) if dry_run else ()
        idx = 0
        while True:
            if dry_run:
                if idx >= len(prices):
                    break
                price = prices[idx]
                idx += 1
            else:
                if not side.prices:
                    break
                price = side.prices[0] if taker_buy else side.prices[-1]
            if limit is not None and (price > limit if taker_buy else price < limit):
                break
            lv = side.levels[price]
            cap: int | None
            if rem_quote is not None:
                cap = rem_quote * E8 // price
                cap -= cap % step
                if rem_qty is not None and rem_qty < cap:
                    cap = rem_qty
            else:
                cap = rem_qty
            if cap is not None and cap <= 0:
                break
            taken_here = 0
            if dry_run:
                avail = lv.qty if cap is None else min(lv.qty, cap)
                for owner, q in lv.entries:
                    if taken_here >= avail:
                        break
                    t = min(q, avail - taken_here)
                    if t > 0:
                        fills.append((owner, price, t))
                        taken_here += t
            else:
                ents = lv.entries
                while ents and (cap is None or taken_here < cap):
                    e = ents[0]
                    t = e[1] if cap is None else min(e[1], cap - taken_here)
                    if t <= 0:
                        ents.popleft()
                        continue
                    e[1] -= t
                    taken_here += t
                    lv.qty -= t
                    if e[0] is None:
                        lv.syn -= t
                    fills.append((e[0], price, t))
                    if e[1] == 0:
                        ents.popleft()
                        if e[0] is not None:
                            e[0].entry = None
                self._mark(not taker_buy, price)
                if not ents:
                    side.drop(price)
            if taken_here == 0:
                break
            if rem_qty is not None:
                rem_qty -= taken_here
            if rem_quote is not None:
                rem_quote -= price * taken_here // E8
            if (rem_qty is not None and rem_qty <= 0) or (rem_quote is not None and rem_quote <= 0):
                break
            if dry_run is False and side.levels.get(price) is not None and side.levels[price].qty > 0:
                # The level still has quantity: the cap was reached.
                break
        return fills

    def available(self, taker_buy: bool, limit: int | None) -> int:
        """Quantity a taker could get at ``limit`` or better."""
        side = self.asks if taker_buy else self.bids
        total = 0
        for price in side.best_first():
            if limit is not None and (price > limit if taker_buy else price < limit):
                break
            total += side.levels[price].qty
        return total

    # -- change events and snapshots --------------------------------------------------------
    def flush(self, now: int) -> BookChange | None:
        """Turn the levels changed since the last flush into one BookChange (or None)."""
        cb, ca = self._changed_bids, self._changed_asks
        n = len(cb) + len(ca)
        if not n:
            return None
        first = self.update_id + 1
        self.update_id += n
        bl = self.bids.levels
        al = self.asks.levels
        pstr = self.pstr
        bids = [[pstr(p), _fmt(bl[p].qty) if p in bl else "0.00000000"] for p in sorted(cb, reverse=True)]
        asks = [[pstr(p), _fmt(al[p].qty) if p in al else "0.00000000"] for p in sorted(ca)]
        cb.clear()
        ca.clear()
        return BookChange(self.symbol, first, self.update_id, bids, asks, now)

    def snapshot(self, limit: int) -> dict:
        """``{"lastUpdateId", "bids", "asks"}`` (best first); the same object while unchanged."""
        if self._depth_cache_id != self.update_id:
            self._depth_cache = {}
            self._depth_cache_id = self.update_id
        d = self._depth_cache.get(limit)
        if d is None:
            pstr = self.pstr
            bl = self.bids.levels
            al = self.asks.levels
            bp = self.bids.prices
            ap = self.asks.prices
            bids = [[pstr(p), _fmt(bl[p].qty)] for p in bp[: -limit - 1: -1]] if limit else []
            asks = [[pstr(p), _fmt(al[p].qty)] for p in ap[:limit]]
            d = self._depth_cache[limit] = {"lastUpdateId": self.update_id, "bids": bids, "asks": asks}
        return d
