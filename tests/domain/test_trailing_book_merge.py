"""The bulk book's merged groups and chunked reports of moved extremes against a naive one-stop-at-a-time model.

Operations are generated (hypothesis): stops join (active at a given extreme, or pending), leave and rejoin, prices
move (merging groups over and over, so trees of merged groups get deep), and the moved extremes are taken in small
chunks with ticks in between. The book must fire, activate and report extremes exactly as the naive model does.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from position_order_service.domain import PositionSide
from position_order_service.domain.trailing import Step, StopState, advance
from position_order_service.domain.trailing_book import TrailingBook

D = Decimal
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT

prices = st.integers(80, 120).map(D)
rates = st.sampled_from([D("0.01"), D("0.02"), D("0.03"), D("0.05"), D("0.08"), D("0.1")])
adds = st.tuples(st.just("add"), st.integers(0, 11), rates, st.one_of(st.none(), prices), prices)
ops = st.one_of(
    adds,
    adds,
    st.tuples(st.just("remove"), st.integers(0, 11)),
    st.tuples(st.just("price"), prices),
    st.tuples(st.just("price"), prices),
    st.tuples(st.just("chunk")),
    st.tuples(st.just("flush")),
)


class Naive:
    """Every stop on its own through the per-stop rule (domain/trailing.advance)."""

    def __init__(self, side: PositionSide) -> None:
        self.side = side
        self.stops: dict[str, list[object]] = {}  # id -> [rate, activation, state, extreme]

    def add(self, sid: str, rate: D, activation: D | None, extreme: D | None) -> None:
        state = StopState.PENDING if extreme is None else StopState.ACTIVE
        self.stops[sid] = [rate, activation, state, extreme]

    def on_price(self, price: D) -> set[tuple[str, str]]:
        out = set()
        for sid, s in list(self.stops.items()):
            rate, act, state, extreme = s
            a = advance(self.side, state, rate, act, extreme, price)  # type: ignore[arg-type]
            if a is None:
                continue
            if a.step is Step.TRIGGERED:
                out.add((sid, "triggered"))
                del self.stops[sid]
                continue
            if a.step is Step.ACTIVATED:
                out.add((sid, "activated"))
            s[2], s[3] = StopState.ACTIVE, a.extreme
        return out


@pytest.mark.parametrize("side", [LONG, SHORT])
@settings(max_examples=150, deadline=None)
@given(script=st.lists(ops, min_size=1, max_size=80))
@example(script=[("add", 0, D("0.01"), None, D(100)), ("add", 1, D("0.01"), None, D(101)), ("price", D(105)),
                 ("add", 2, D("0.02"), None, D(90)), ("price", D(106)), ("chunk",), ("price", D(107)),
                 ("chunk",), ("flush",)])  # fmt: skip
def test_merged_groups_fire_and_report_like_the_naive_model(side: PositionSide, script: list[tuple]) -> None:
    book, naive = TrailingBook(side), Naive(side)
    persisted: dict[str, D] = {}  # what a flush would have written
    running: Iterator[list[tuple[str, D]]] | None = None
    for op in script:
        if op[0] == "add":
            _, n, rate, activation, extreme = op
            sid = f"s{n}"
            if activation is None:  # active at once, at a persisted extreme
                book.add(sid, rate, None, extreme)
                naive.add(sid, rate, None, extreme)
                persisted[sid] = extreme
            else:
                book.add(sid, rate, activation, None)
                naive.add(sid, rate, activation, None)
                persisted.pop(sid, None)
        elif op[0] == "remove":
            sid = f"s{op[1]}"
            book.remove(sid)
            naive.stops.pop(sid, None)
            persisted.pop(sid, None)
        elif op[0] == "price":
            changes = book.on_price(op[1])
            got = {(c.stop_id, c.kind) for c in changes}
            assert len(got) == len(changes), "a stop reported twice in one tick"
            assert got == naive.on_price(op[1])
            for c in changes:
                if c.kind == "activated":
                    persisted[c.stop_id] = c.extreme  # the engine records an activation with its extreme
                else:
                    persisted.pop(c.stop_id, None)
        elif op[0] == "chunk":  # one chunk of a flush under way, ticks may come between two chunks
            if running is None:
                running = iter(book.moved_chunks(size=2))
            chunk = next(running, None)
            if chunk is None:
                running = None
            else:
                assert len(chunk) <= 2
                for sid, extreme in chunk:
                    if sid in naive.stops:
                        persisted[sid] = extreme
        else:
            if running is not None:
                for chunk in running:
                    persisted.update((sid, e) for sid, e in chunk if sid in naive.stops)
                running = None
            for chunk in book.moved_chunks(size=3):
                persisted.update((sid, e) for sid, e in chunk if sid in naive.stops)
        assert len(book) == len(naive.stops)
        for sid, (_rate, _act, state, extreme) in naive.stops.items():
            assert book.extreme_of(sid) == (extreme if state is StopState.ACTIVE else None), sid
    # a final flush (after finishing one under way) leaves every active stop's extreme persisted
    if running is not None:
        for chunk in running:
            persisted.update((sid, e) for sid, e in chunk if sid in naive.stops)
    for chunk in book.moved_chunks(size=3):
        persisted.update((sid, e) for sid, e in chunk if sid in naive.stops)
    for sid, (_rate, _act, state, extreme) in naive.stops.items():
        if state is StopState.ACTIVE:
            assert persisted.get(sid) == extreme, sid


def test_a_merging_tick_moves_no_stop() -> None:
    """200 groups of 500 stops merge on one new high: the stops stay where they are (the trees are joined),
    every one of them reports the new extreme, and the smallest rates still fire first."""
    book = TrailingBook(LONG)
    for i in range(100_000):
        book.add(f"s{i}", D(50 + i % 451) / D(10_000), None, D(59_999 - i % 200))
    sizes = [len(g.rates) for g in book._groups]
    assert len(sizes) == 200
    book.on_price(D(60_000))
    assert len(book._groups) == 1
    assert sorted(len(node.rates) for node in _nodes(book._groups[0])) == sorted(sizes)  # nothing moved
    moved = [item for chunk in book.moved_chunks(size=4096) for item in chunk]
    assert len(moved) == 100_000 and {e for _, e in moved} == {D(60_000)}
    changes = book.on_price(D("59700"))  # 60000 x 0.995: the 0.5% stops fire, no other
    assert len(changes) == sum(1 for i in range(100_000) if i % 451 == 0)
    assert {c.stop for c in changes} == {D("59700.0000")}


def _nodes(root: object) -> list[object]:
    out, todo = [], [root]
    while todo:
        node = todo.pop()
        out.append(node)
        todo += [k[3] for k in node.kids]  # type: ignore[attr-defined]
    return out
