"""Trailing-stop semantics (SPEC section 5) and the bulk book against the one-stop-at-a-time rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from position_order_service.domain import PositionSide
from position_order_service.domain.trailing import Step, StopState, advance
from position_order_service.domain.trailing_book import TrailingBook

D = Decimal
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def run_one(
    side: PositionSide, rate: D, activation: D | None, path: list[D]
) -> tuple[list[tuple[int, str]], D | None]:
    """Apply `advance` tick by tick; return (index, step) of each change and the final extreme."""
    state = StopState.PENDING
    extreme: D | None = None
    steps = []
    for i, p in enumerate(path):
        a = advance(side, state, rate, activation, extreme, p)
        if a is None:
            continue
        steps.append((i, a.step.value))
        if a.step is Step.TRIGGERED:
            return steps, extreme
        state, extreme = StopState.ACTIVE, a.extreme
    return steps, extreme


def test_long_activates_trails_and_triggers_at_exact_tick() -> None:
    path = [D(p) for p in ("49000", "50000", "51000", "52000", "51500", "50960", "50959.9")]
    steps, extreme = run_one(LONG, D("0.02"), D("50000"), path)
    # stop after 52000 is 52000 * 0.98 = 50960: 50960 triggers (price <= stop)
    assert steps == [(1, "activated"), (2, "updated"), (3, "updated"), (5, "triggered")]
    assert extreme == D("52000")


def test_short_mirrored() -> None:
    path = [D(p) for p in ("3100", "3000", "2900", "2950", "2958", "2957.9")]
    steps, _ = run_one(SHORT, D("0.02"), D("3000"), path)
    # extreme 2900, stop 2958: 2958 triggers (price >= stop)
    assert steps == [(1, "activated"), (2, "updated"), (4, "triggered")]


def test_no_activation_price_means_active_at_once() -> None:
    steps, _ = run_one(LONG, D("0.1"), None, [D("100"), D("90")])
    assert steps == [(0, "activated"), (1, "triggered")]


prices = st.integers(min_value=900, max_value=1100).map(lambda i: D(i) / 10)


@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from([LONG, SHORT]),
    rate=st.sampled_from([D("0.005"), D("0.01"), D("0.02"), D("0.05")]),
    activation=st.none() | prices,
    path=st.lists(prices, min_size=1, max_size=60),
)
def test_stop_never_moves_against_trader_and_triggers_iff_crossed(
    side: PositionSide, rate: D, activation: D | None, path: list[D]
) -> None:
    state = StopState.PENDING
    extreme: D | None = None
    stop: D | None = None
    for p in path:
        a = advance(side, state, rate, activation, extreme, p)
        if state is StopState.ACTIVE and stop is not None:
            crossed = p <= stop if side is LONG else p >= stop
            favourable = p > extreme if side is LONG else p < extreme  # type: ignore[operator]
            assert (a is not None and a.step is Step.TRIGGERED) == (crossed and not favourable)
        if a is None:
            continue
        if a.step is Step.TRIGGERED:
            return
        if stop is not None:
            assert (a.stop >= stop) if side is LONG else (a.stop <= stop)  # only in the trader's favour
        state, extreme, stop = StopState.ACTIVE, a.extreme, a.stop


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from([LONG, SHORT]),
    stops=st.lists(
        st.tuples(
            st.sampled_from([D("0.01"), D("0.02"), D("0.03"), D("0.05")]),
            st.none() | prices,
            st.integers(0, 20),
        ),
        min_size=1,
        max_size=25,
    ),
    path=st.lists(prices, min_size=1, max_size=50),
)
def test_book_matches_one_stop_at_a_time(
    side: PositionSide, stops: list[tuple[D, D | None, int]], path: list[D]
) -> None:
    """Stops join at different ticks; the book's activations and triggers equal the per-stop rule's."""
    book = TrailingBook(side)
    expected: dict[str, list[tuple[int, str]]] = {}
    got: dict[str, list[tuple[int, str]]] = {}
    joins: dict[int, list[tuple[str, D, D | None]]] = {}
    for n, (rate, act, at) in enumerate(stops):
        at = min(at, len(path) - 1)
        sid = f"s{n}"
        joins.setdefault(at, []).append((sid, rate, act))
        steps, _ = run_one(side, rate, act, path[at:])
        expected[sid] = [(i + at, k) for i, k in steps if k != "updated"]
    for i, p in enumerate(path):
        for sid, rate, act in joins.get(i, []):
            if act is None:  # active at once: the first price it sees is its extreme
                book.add(sid, rate, None, p)
                got.setdefault(sid, []).append((i, "activated"))
            else:
                book.add(sid, rate, act, None)
        for c in book.on_price(p):
            got.setdefault(c.stop_id, []).append((i, c.kind))
    for sid, want in expected.items():
        assert got.get(sid, []) == want, sid


def test_book_reports_moved_extremes_and_removal() -> None:
    book = TrailingBook(LONG)
    book.add("a", D("0.1"), None, D("100"))
    book.add("b", D("0.2"), None, D("105"))
    assert book.on_price(D("110")) == []
    assert sorted(book.take_moved()) == [("a", D("110")), ("b", D("110"))]
    assert book.take_moved() == []
    book.remove("a")
    changes = book.on_price(D("88"))
    assert [(c.stop_id, c.kind, c.stop) for c in changes] == [("b", "triggered", D("88.0"))]
    assert len(book) == 0


def test_book_with_many_stops_is_cheap_per_tick() -> None:
    """Not a timing test: it checks the structure stays small (groups) with 10k stops."""
    book = TrailingBook(LONG)
    for i in range(10_000):
        book.add(f"s{i}", D("0.01") + D(i % 50) / 1000, None, D(100 + i % 7))
    book.on_price(D("120"))
    assert len(book._groups) == 1
    changes = book.on_price(D("118.8"))  # 120 * 0.99 = 118.8: only the 1% stops fire
    assert len(changes) == 200 and all(c.kind == "triggered" for c in changes)


@pytest.mark.parametrize("side", [LONG, SHORT])
def test_readd_same_id_does_not_fire_twice(side: PositionSide) -> None:
    book = TrailingBook(side)
    book.add("x", D("0.1"), None, D("100"))
    book.add("x", D("0.1"), None, D("100"))
    p = D("89") if side is LONG else D("111")
    assert [c.stop_id for c in book.on_price(p)] == ["x"]
