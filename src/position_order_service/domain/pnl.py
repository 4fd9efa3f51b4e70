"""Pure PnL arithmetic for linear contracts (SPEC section 1). No I/O; Decimal in, Decimal out.

Sizes are in base currency and always non-negative; the side carries the direction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from .enums import PositionSide

ZERO = Decimal("0")


def direction(side: PositionSide) -> Decimal:
    return Decimal(1) if side is PositionSide.LONG else Decimal(-1)


def unrealized_pnl(side: PositionSide, size: Decimal, entry_price: Decimal, mark_price: Decimal) -> Decimal:
    """(mark - entry) x size for a long, mirrored for a short; never multiplied by leverage."""
    return (mark_price - entry_price) * size * direction(side)


def realized_pnl(
    side: PositionSide, closed_size: Decimal, entry_price: Decimal, exit_price: Decimal
) -> Decimal:
    """PnL realized by closing `closed_size` of a position at `exit_price`."""
    return (exit_price - entry_price) * closed_size * direction(side)


def average_entry(old_size: Decimal, old_entry: Decimal, fill_size: Decimal, fill_price: Decimal) -> Decimal:
    """Entry after adding `fill_size` at `fill_price` (DCA): the size-weighted mean of both."""
    new_size = old_size + fill_size
    if new_size == 0:
        return ZERO
    return (old_size * old_entry + fill_size * fill_price) / new_size


def fee(notional: Decimal, rate: Decimal) -> Decimal:
    """A trading fee as a positive cost."""
    return abs(notional) * rate


@dataclass(frozen=True, slots=True)
class Fill:
    size: Decimal
    price: Decimal
    fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PositionBook:
    """The running state of one position side as fills arrive: the pure core of position tracking."""

    side: PositionSide
    size: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO

    def add(self, fill: Fill) -> PositionBook:
        """An entry or DCA fill: the size grows and the entry re-averages."""
        if fill.size <= 0:
            raise ValueError("fill size must be positive")
        return PositionBook(
            side=self.side,
            size=self.size + fill.size,
            entry_price=average_entry(self.size, self.entry_price, fill.size, fill.price),
            realized=self.realized,
            fees=self.fees + fill.fee,
        )

    def reduce(self, fill: Fill) -> PositionBook:
        """A closing fill: realizes PnL on the closed part; the entry of the rest is unchanged."""
        if fill.size <= 0:
            raise ValueError("fill size must be positive")
        if fill.size > self.size:
            raise ValueError(f"cannot close {fill.size}: the position holds only {self.size}")
        rest = self.size - fill.size
        return PositionBook(
            side=self.side,
            size=rest,
            entry_price=self.entry_price if rest > 0 else ZERO,
            realized=self.realized + realized_pnl(self.side, fill.size, self.entry_price, fill.price),
            fees=self.fees + fill.fee,
        )

    def unrealized(self, mark_price: Decimal) -> Decimal:
        return unrealized_pnl(self.side, self.size, self.entry_price, mark_price)


def replay(side: PositionSide, entries: Iterable[Fill]) -> PositionBook:
    book = PositionBook(side=side)
    for f in entries:
        book = book.add(f)
    return book
