"""Decimal helpers: strict conversion of inputs (never from float) and grid checks."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import InvalidRequest

__all__ = ["MONEY_QUANTUM", "ZERO", "DecimalLike", "is_multiple", "to_decimal", "to_optional_decimal"]

DecimalLike = Decimal | str | int
"""Accepted numeric input: ``Decimal``, a decimal string or an ``int``. Floats are refused."""

ZERO = Decimal(0)
MONEY_QUANTUM = Decimal("1e-8")
"""Fees and realized PnL are rounded (half-even) to 8 decimals, as the exchanges report them."""


def to_decimal(value: DecimalLike, field: str) -> Decimal:
    """Convert ``value`` to a finite Decimal or raise :class:`InvalidRequest` naming ``field``."""
    if type(value) is Decimal:
        if value.is_finite():
            return value
        raise InvalidRequest(f"{field} must be finite", field=field)
    if isinstance(value, (bool, float)):
        raise InvalidRequest(
            f"{field} must be a Decimal, str or int, not {type(value).__name__}", field=field
        )
    try:
        dec = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidRequest(f"{field} is not a number: {value!r}", field=field) from None
    if not dec.is_finite():
        raise InvalidRequest(f"{field} must be finite", field=field)
    return dec


def to_optional_decimal(value: DecimalLike | None, field: str) -> Decimal | None:
    return None if value is None else to_decimal(value, field)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True if ``value`` is an integer multiple of ``step`` (exact Decimal arithmetic)."""
    try:
        return value % step == 0
    except InvalidOperation:
        return False
