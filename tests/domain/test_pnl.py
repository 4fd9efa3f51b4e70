from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from position_order_service.domain import PositionSide
from position_order_service.domain.pnl import (
    Fill,
    PositionBook,
    average_entry,
    fee,
    realized_pnl,
    replay,
    unrealized_pnl,
)

prices = st.decimals(min_value="0.01", max_value="200000", places=2)
sizes = st.decimals(min_value="0.001", max_value="1000", places=3)
sides = st.sampled_from(list(PositionSide))


def test_examples() -> None:
    assert unrealized_pnl(PositionSide.LONG, Decimal("0.1"), Decimal("45000"), Decimal("46000")) == Decimal(
        "100"
    )
    assert unrealized_pnl(PositionSide.SHORT, Decimal("0.1"), Decimal("45000"), Decimal("46000")) == Decimal(
        "-100"
    )
    assert average_entry(Decimal("1"), Decimal("100"), Decimal("1"), Decimal("80")) == Decimal("90")
    assert fee(Decimal("-5000"), Decimal("0.0005")) == Decimal("2.5")


def test_partial_then_full_close() -> None:
    book = PositionBook(PositionSide.LONG).add(Fill(Decimal("2"), Decimal("100"), Decimal("0.1")))
    book = book.reduce(Fill(Decimal("0.5"), Decimal("110"), Decimal("0.02")))
    assert book.size == Decimal("1.5")
    assert book.entry_price == Decimal("100")
    assert book.realized == Decimal("5")
    book = book.reduce(Fill(Decimal("1.5"), Decimal("90"), Decimal("0.03")))
    assert book.size == 0
    assert book.realized == Decimal("-10")
    assert book.fees == Decimal("0.15")


@given(st.lists(st.tuples(sizes, prices), min_size=1, max_size=12), st.randoms(), sides)
def test_averaging_is_order_independent(
    fills: list[tuple[Decimal, Decimal]], rnd: object, side: PositionSide
) -> None:
    shuffled = list(fills)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = replay(side, [Fill(s, p) for s, p in fills])
    b = replay(side, [Fill(s, p) for s, p in shuffled])
    assert a.size == b.size
    # division rounds at 28 digits; the exact mean is the same
    assert abs(a.entry_price - b.entry_price) <= Decimal("1e-18") * a.entry_price
    expected = sum((s * p for s, p in fills), Decimal(0)) / sum((s for s, _ in fills), Decimal(0))
    assert abs(a.entry_price - expected) <= Decimal("1e-18") * expected


@given(sizes, prices, prices)
def test_open_then_close_full_realizes_exact_difference(
    size: Decimal, entry: Decimal, exit_: Decimal
) -> None:
    long_ = PositionBook(PositionSide.LONG).add(Fill(size, entry)).reduce(Fill(size, exit_))
    assert long_.realized == (exit_ - entry) * size
    assert long_.size == 0
    short = PositionBook(PositionSide.SHORT).add(Fill(size, entry)).reduce(Fill(size, exit_))
    assert short.realized == (entry - exit_) * size


@given(sizes, prices, prices, st.decimals(min_value="0.01", max_value="0.99", places=2), sides)
def test_partial_closes_sum_to_full_close(
    size: Decimal, entry: Decimal, exit_: Decimal, part: Decimal, side: PositionSide
) -> None:
    first = (size * part).quantize(Decimal("0.001"))
    if first == 0 or first == size:
        return
    book = PositionBook(side).add(Fill(size, entry))
    split = book.reduce(Fill(first, exit_)).reduce(Fill(size - first, exit_))
    whole = book.reduce(Fill(size, exit_))
    assert split.realized == whole.realized == realized_pnl(side, size, entry, exit_)


@given(sizes, prices, prices, sides)
def test_unrealized_equals_realized_if_closed_at_mark(
    size: Decimal, entry: Decimal, mark: Decimal, side: PositionSide
) -> None:
    book = PositionBook(side).add(Fill(size, entry))
    assert book.unrealized(mark) == book.reduce(Fill(size, mark)).realized


def test_reduce_more_than_held_is_refused() -> None:
    book = PositionBook(PositionSide.LONG).add(Fill(Decimal("1"), Decimal("1")))
    try:
        book.reduce(Fill(Decimal("2"), Decimal("1")))
    except ValueError as exc:
        assert "holds only 1" in str(exc)
    else:
        raise AssertionError("expected ValueError")
