"""Evaluates many trailing stops of one (symbol, side, price source) per tick, in bulk. Pure.

The per-stop rule (domain/trailing.py) is applied to all stops at once by exploiting its shape:

- Active stops are grouped by their extreme E. A new favourable price p gives every stop whose extreme is worse
  than p the same extreme p, so those groups merge into one: the number of groups stays small.
- Within a group, stop_i = E x (1 - r_i) for a long (E x (1 + r_i) short), so the stops that trigger at price P are
  exactly those with the smallest callback rates: r_i <= 1 - P/E (long) or r_i <= P/E - 1 (short). Each group
  keeps a heap by rate, so a tick checks one rate per group.
- Pending stops wait in a heap by activation price.

A tick costs O(groups + changes x log n) Decimal operations instead of O(stops): with 100k stops on one symbol
and no trigger it is a handful of comparisons. Decimal stays the truth: every comparison is exact.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal

from .enums import PositionSide
from .trailing import stop_from_extreme


@dataclass(slots=True, eq=False)
class _Group:
    extreme: Decimal
    rates: list[tuple[Decimal, int, str]] = field(default_factory=list)  # heap of (rate, token, stop id)
    members: int = 0
    version: int = 0  # bumped whenever its trigger threshold is re-announced


@dataclass(frozen=True, slots=True)
class BookChange:
    stop_id: str
    kind: str  # activated | triggered
    extreme: Decimal
    stop: Decimal
    price: Decimal


class TrailingBook:
    """Stops of one side. Heap entries are validated by a token, so removing a stop is O(1) (lazy)."""

    def __init__(self, side: PositionSide) -> None:
        self.side = side
        self._long = side is PositionSide.LONG
        self._groups: list[_Group] = []  # sorted: worst extreme first (lowest for long, highest for short)
        self._pending: list[tuple[Decimal, int, str]] = []  # heap: nearest activation first
        self._rate: dict[str, Decimal] = {}
        self._token: dict[str, int] = {}
        self._group_of: dict[str, _Group] = {}
        self._dirty: list[_Group] = []
        self._n = 0
        # each group's trigger threshold, best first (highest stop for longs, lowest for shorts): a tick that
        # triggers nothing looks at one entry. Entries may over-announce (a removed stop): checked, then fixed.
        self._thresholds: list[tuple[Decimal, int, int, _Group]] = []

    def __len__(self) -> int:
        return len(self._rate)

    def extreme_of(self, stop_id: str) -> Decimal | None:
        g = self._group_of.get(stop_id)
        return g.extreme if g else None

    # -- membership --------------------------------------------------------------------------------------
    def add(self, stop_id: str, rate: Decimal, activation: Decimal | None, extreme: Decimal | None) -> None:
        """Add a pending stop (extreme None) or an active one (with its persisted extreme)."""
        self.remove(stop_id)
        self._rate[stop_id] = rate
        if extreme is None:
            if activation is None:
                raise ValueError("a stop without an activation price is active at once: give its extreme")
            self._n += 1
            self._token[stop_id] = self._n
            heapq.heappush(self._pending, (activation if self._long else -activation, self._n, stop_id))
        else:
            self._join(stop_id, extreme)

    def remove(self, stop_id: str) -> None:
        if self._rate.pop(stop_id, None) is None:
            return
        self._token.pop(stop_id, None)
        g = self._group_of.pop(stop_id, None)
        if g is not None:
            g.members -= 1
            if g.members == 0:
                self._drop_group(g)

    def _drop_group(self, g: _Group) -> None:
        for i, other in enumerate(self._groups):
            if other is g:
                del self._groups[i]
                return

    def _join(self, stop_id: str, extreme: Decimal) -> None:
        g = self._group_at(extreme)
        self._n += 1
        self._token[stop_id] = self._n
        heapq.heappush(g.rates, (self._rate[stop_id], self._n, stop_id))
        g.members += 1
        self._group_of[stop_id] = g
        self._announce(g)

    def _announce(self, g: _Group) -> None:
        """(Re)publish the group's threshold: the stop of its smallest live rate."""
        while g.rates and not self._valid(g.rates[0], g):
            heapq.heappop(g.rates)
        if not g.rates:
            return
        stop = stop_from_extreme(self.side, g.extreme, g.rates[0][0])
        g.version += 1
        self._n += 1
        heapq.heappush(self._thresholds, (-stop if self._long else stop, self._n, g.version, g))

    def _worse(self, a: Decimal, b: Decimal) -> bool:
        """True when extreme a is less favourable than b."""
        return a < b if self._long else a > b

    def _group_at(self, extreme: Decimal) -> _Group:
        lo, hi = 0, len(self._groups)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._worse(self._groups[mid].extreme, extreme):
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self._groups) and self._groups[lo].extreme == extreme:
            return self._groups[lo]
        g = _Group(extreme)
        self._groups.insert(lo, g)
        return g

    def _valid(self, item: tuple[Decimal, int, str], g: _Group) -> bool:
        sid = item[2]
        return self._token.get(sid) == item[1] and self._group_of.get(sid) is g

    # -- the tick ---------------------------------------------------------------------------------------
    def on_price(self, price: Decimal) -> list[BookChange]:
        """Activations and triggers at this price. Extremes that moved are collected for `take_moved`."""
        changes: list[BookChange] = []
        self._activate(price, changes)
        self._raise_extremes(price)
        self._trigger(price, changes)
        return changes

    def take_moved(self) -> list[tuple[str, Decimal]]:
        """(stop id, extreme) of every stop whose extreme moved since the last call: O(those stops)."""
        out: list[tuple[str, Decimal]] = []
        seen: set[int] = set()
        for g in self._dirty:
            if id(g) in seen or g.members == 0:
                continue
            seen.add(id(g))
            out += [(item[2], g.extreme) for item in g.rates if self._valid(item, g)]
        self._dirty = []
        return out

    def _activate(self, price: Decimal, out: list[BookChange]) -> None:
        key = price if self._long else -price
        while self._pending and self._pending[0][0] <= key:
            _, token, stop_id = heapq.heappop(self._pending)
            if self._token.get(stop_id) != token:
                continue
            self._join(stop_id, price)
            stop = stop_from_extreme(self.side, price, self._rate[stop_id])
            out.append(BookChange(stop_id, "activated", price, stop, price))

    def _raise_extremes(self, price: Decimal) -> None:
        """Every group whose extreme is worse than the price moves to it; they merge into one.

        The biggest group is kept and moved in place (its extreme changes; its members do not move), so a
        new high with 100k stops in one group costs O(1); only the members of smaller groups are re-pointed.
        """
        moved = 0
        while moved < len(self._groups) and self._worse(self._groups[moved].extreme, price):
            moved += 1
        if moved == 0:
            return
        merged = self._groups[:moved]
        del self._groups[:moved]
        # what is left is no worse than the price: a group already at the price, if any, comes first
        existing = self._groups[0] if self._groups and self._groups[0].extreme == price else None
        candidates = [*merged, existing] if existing is not None else merged
        keep = max(candidates, key=lambda g: g.members)
        if existing is not None and keep is not existing:
            del self._groups[0]
        keep.extreme = price
        for g in candidates:
            if g is keep:
                continue
            for item in g.rates:
                if self._valid(item, g):
                    heapq.heappush(keep.rates, item)
                    self._group_of[item[2]] = keep
                    keep.members += 1
            g.rates, g.members = [], 0
        if keep is not existing:
            self._groups.insert(0, keep)  # the new worst extreme: every other group is better
        self._dirty.append(keep)
        self._announce(keep)

    def _trigger(self, price: Decimal, out: list[BookChange]) -> None:
        while self._thresholds:
            key, _, version, g = self._thresholds[0]
            if g.version != version or g.members == 0:
                heapq.heappop(self._thresholds)  # superseded or emptied
                continue
            threshold = -key if self._long else key
            if not (price <= threshold if self._long else price >= threshold):
                return  # the most exposed group does not trigger, so none does
            heapq.heappop(self._thresholds)
            self._fire(g, price, out)
            if g.members > 0:
                self._announce(g)

    def _fire(self, g: _Group, price: Decimal, out: list[BookChange]) -> None:
        while g.rates:
            item = g.rates[0]
            if not self._valid(item, g):
                heapq.heappop(g.rates)
                continue
            rate, _, sid = item
            stop = stop_from_extreme(self.side, g.extreme, rate)
            if not (price <= stop if self._long else price >= stop):
                break  # the smallest rate does not trigger, so no larger one does
            heapq.heappop(g.rates)
            out.append(BookChange(sid, "triggered", g.extreme, stop, price))
            self.remove(sid)
