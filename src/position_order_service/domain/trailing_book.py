"""Evaluates many trailing stops of one (symbol, side, price source) per tick, in bulk. Pure.

The per-stop rule (domain/trailing.py) is applied to all stops at once by exploiting its shape:

- Active stops are grouped by their extreme E. A new favourable price p gives every stop whose extreme is worse
  than p the same extreme p, so those groups merge into one: the number of groups stays small.
- Within a group, stop_i = E x (1 - r_i) for a long (E x (1 + r_i) short), so the stops that trigger at price P are
  exactly those with the smallest callback rates: r_i <= 1 - P/E (long) or r_i <= P/E - 1 (short). A group keeps
  its stops in a heap by rate, so a tick checks one rate per group.
- Merging is a union of trees, never a move of stops: the merged groups become children of the one of highest
  rank (union by rank, so a tree is at most log2(groups) deep); each parent keeps a heap of its children keyed by
  their smallest live rate. A tick that merges k groups costs O(k log k) whatever the number of stops in them,
  and the smallest rate of a tree is found through at most its depth of heaps.
- Pending stops wait in a heap by activation price.

A tick costs O(groups changed + changes x depth x log n) Decimal operations instead of O(stops). Which extremes
moved is reported in bounded chunks (`moved_chunks`), so persisting 100k moved extremes never holds the event loop
for more than a chunk. Decimal stays the truth: every comparison is exact.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from .enums import PositionSide
from .trailing import stop_from_extreme

_Item = tuple[Decimal, int, str]  # (rate, token, stop id): valid while the stop's token is still `token`


@dataclass(slots=True, eq=False)
class _Group:
    extreme: Decimal
    rates: list[_Item] = field(default_factory=list)  # heap of this node's own stops
    # heap of (smallest rate, its token, its stop id, child): the child's smallest live stop when pushed; a
    # child only loses stops (joins go to roots), so an entry whose stop is still live is exact
    kids: list[tuple[Decimal, int, str, _Group]] = field(default_factory=list)
    parent: _Group | None = None
    rank: int = 0
    members: int = 0  # live stops in the tree (kept on roots only)
    version: int = 0  # bumped whenever its trigger threshold is re-announced (or it stops being a root)
    announced: Decimal | None = None  # the rate of its latest announced threshold


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
        self._groups: list[
            _Group
        ] = []  # roots, sorted: worst extreme first (lowest for long, highest for short)
        self._pending: list[tuple[Decimal, int, str]] = []  # heap: nearest activation first
        self._rate: dict[str, Decimal] = {}
        self._token: dict[str, int] = {}
        self._node_of: dict[str, _Group] = {}  # the tree node whose own heap holds the stop
        self._dirty: list[_Group] = []
        self._n = 0
        # each root's trigger threshold, best first (highest stop for longs, lowest for shorts): a tick that
        # triggers nothing looks at one entry. Entries may over-announce (a removed stop): checked, then fixed.
        self._thresholds: list[tuple[Decimal, int, int, _Group]] = []

    def __len__(self) -> int:
        return len(self._rate)

    def extreme_of(self, stop_id: str) -> Decimal | None:
        g = self._node_of.get(stop_id)
        return self._root(g).extreme if g else None

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
        node = self._node_of.pop(stop_id, None)
        if node is not None:
            root = self._root(node)
            root.members -= 1
            if root.members == 0:
                self._drop_group(root)

    def _drop_group(self, g: _Group) -> None:
        i = self._index_of(g.extreme)
        if i < len(self._groups) and self._groups[i] is g:
            del self._groups[i]
        g.rates, g.kids = [], []

    def _root(self, g: _Group) -> _Group:
        root = g
        while root.parent is not None:
            root = root.parent
        while g.parent is not None and g.parent is not root:  # path compression
            g.parent, g = root, g.parent
        return root

    def _join(self, stop_id: str, extreme: Decimal) -> None:
        g = self._group_at(extreme)
        self._n += 1
        self._token[stop_id] = self._n
        rate = self._rate[stop_id]
        heapq.heappush(g.rates, (rate, self._n, stop_id))
        g.members += 1
        self._node_of[stop_id] = g
        if g.announced is None or rate < g.announced:  # else the group's threshold covers it already
            self._announce(g)

    def _smallest(self, g: _Group) -> _Item | None:
        """The live stop of smallest rate in g's tree (dropping dead heap tops on the way)."""
        token = self._token
        rates = g.rates
        while rates and token.get(rates[0][2]) != rates[0][1]:
            heapq.heappop(rates)
        kids = g.kids
        while kids:
            _rate, tok, sid, child = kids[0]
            if token.get(sid) == tok:
                break
            best = self._smallest(child)
            if best is None:
                heapq.heappop(kids)
            else:
                heapq.heapreplace(kids, (best[0], best[1], best[2], child))
        if not kids:
            return rates[0] if rates else None
        top = kids[0]
        if rates and rates[0] < top[:3]:
            return rates[0]
        return top[0], top[1], top[2]

    def _announce(self, g: _Group) -> None:
        """(Re)publish the root's threshold: the stop of its smallest live rate."""
        best = self._smallest(g)
        if best is None:
            return
        stop = stop_from_extreme(self.side, g.extreme, best[0])
        g.announced = best[0]
        g.version += 1
        self._n += 1
        heapq.heappush(self._thresholds, (-stop if self._long else stop, self._n, g.version, g))

    def _worse(self, a: Decimal, b: Decimal) -> bool:
        """True when extreme a is less favourable than b."""
        return a < b if self._long else a > b

    def _index_of(self, extreme: Decimal) -> int:
        lo, hi = 0, len(self._groups)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._worse(self._groups[mid].extreme, extreme):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _group_at(self, extreme: Decimal) -> _Group:
        lo = self._index_of(extreme)
        if lo < len(self._groups) and self._groups[lo].extreme == extreme:
            return self._groups[lo]
        g = _Group(extreme)
        self._groups.insert(lo, g)
        return g

    # -- the tick ---------------------------------------------------------------------------------------
    def on_price(self, price: Decimal) -> list[BookChange]:
        """Activations and triggers at this price. Extremes that moved are collected for `moved_chunks`."""
        changes: list[BookChange] = []
        self._activate(price, changes)
        self._raise_extremes(price)
        self._trigger(price, changes)
        return changes

    def take_moved(self) -> list[tuple[str, Decimal]]:
        """(stop id, extreme) of every stop whose extreme moved since the last call, all at once."""
        return [item for chunk in self.moved_chunks() for item in chunk]

    def moved_chunks(self, size: int = 1000) -> MovedReport:
        """(stop id, extreme) of every stop whose extreme moved since the last call, in chunks of at most `size`.

        The trees to report are taken at the call; each chunk is computed when it is asked for, so the book may
        tick between chunks: a stop removed meanwhile is skipped, and a stop's extreme is its latest. A tree
        that moves again after the call is reported by the next call; `requeue` hands the trees back (a write
        that failed) so the next call reports them again.
        """
        roots, self._dirty = self._dirty, []
        return MovedReport(self, roots, size)

    def _requeue(self, roots: list[_Group]) -> None:
        self._dirty += [self._root(g) for g in roots]

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
        """Every group whose extreme is worse than the price moves to it; they merge into one tree.

        The root of highest rank is kept and moved in place (its extreme changes; no stop moves); the other
        roots become its children: O(groups merged x log), whatever the number of stops in them.
        """
        groups = self._groups
        if not groups or not self._worse(groups[0].extreme, price):
            return  # the common tick: no extreme is worse than the price
        moved = self._index_of(price)  # groups[:moved] are worse than the price
        merged = groups[:moved]
        del groups[:moved]
        # what is left is no worse than the price: a group already at the price, if any, comes first
        existing = groups[0] if groups and groups[0].extreme == price else None
        if existing is not None:
            merged.append(existing)
            del groups[0]
        keep = merged[0]
        for g in merged:
            if g.rank > keep.rank or (g.rank == keep.rank and g.members > keep.members):
                keep = g
        keep.extreme = price
        if len(merged) > 1:
            kids = keep.kids
            token = self._token
            pop = heapq.heappop
            for g in merged:
                if g is keep:
                    continue
                g.parent = keep
                g.version += 1  # its thresholds are void: the tree is announced by its root
                keep.members += g.members
                g.members = 0
                if g.rank == keep.rank:
                    keep.rank += 1
                if g.kids:
                    best = self._smallest(g)
                else:  # a group never merged before: its own heap's top, once dead tops are dropped
                    rates = g.rates
                    while rates and token.get(rates[0][2]) != rates[0][1]:
                        pop(rates)
                    best = rates[0] if rates else None
                if best is not None:
                    kids.append((best[0], best[1], best[2], g))
            heapq.heapify(kids)
        groups.insert(0, keep)  # the new worst extreme: every other group is better
        self._dirty.append(keep)
        self._announce(keep)

    def _trigger(self, price: Decimal, out: list[BookChange]) -> None:
        while self._thresholds:
            key, _, version, g = self._thresholds[0]
            if g.version != version or g.members == 0 or g.parent is not None:
                heapq.heappop(self._thresholds)  # superseded, emptied or merged
                continue
            threshold = -key if self._long else key
            if not (price <= threshold if self._long else price >= threshold):
                return  # the most exposed group does not trigger, so none does
            heapq.heappop(self._thresholds)
            self._fire(g, price, out)
            if g.members > 0:
                self._announce(g)

    def _fire(self, g: _Group, price: Decimal, out: list[BookChange]) -> None:
        while g.members > 0:
            best = self._smallest(g)
            if best is None:
                break
            rate, _, sid = best
            stop = stop_from_extreme(self.side, g.extreme, rate)
            if not (price <= stop if self._long else price >= stop):
                break  # the smallest rate does not trigger, so no larger one does
            out.append(BookChange(sid, "triggered", g.extreme, stop, price))
            self.remove(sid)


class MovedReport:
    """The chunks of `TrailingBook.moved_chunks`: iterate them; `requeue()` if they could not be persisted."""

    def __init__(self, book: TrailingBook, roots: list[_Group], size: int) -> None:
        self._book = book
        self._roots = roots
        self._size = size

    def requeue(self) -> None:
        self._book._requeue(self._roots)

    def __iter__(self) -> Iterator[list[tuple[str, Decimal]]]:
        book, size = self._book, self._size
        token = book._token
        seen: set[int] = set()
        nodes: list[_Group] = []
        for root in self._roots:
            if id(root) in seen or root.parent is not None or root.members == 0:
                continue  # a root merged since is reported through the root it joined (marked by the merge)
            seen.add(id(root))
            todo = [root]
            while todo:
                node = todo.pop()
                nodes.append(node)
                todo += [k[3] for k in node.kids]
        out: list[tuple[str, Decimal]] = []
        for node in nodes:
            items = list(node.rates)  # a copy: the heap may change between two chunks
            start = 0
            while start < len(items):
                end = start + size - len(out)
                extreme = book._root(node).extreme
                out += [(sid, extreme) for _, tok, sid in items[start:end] if token.get(sid) == tok]
                start = end
                if len(out) >= size:
                    yield out
                    out = []
        if out:
            yield out
