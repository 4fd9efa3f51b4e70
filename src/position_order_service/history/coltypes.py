"""Column types that behave the same on SQLite and PostgreSQL: exact Decimals and tz-aware UTC times.

- `Money`: NUMERIC(38, 18) on PostgreSQL; on SQLite (which has no exact decimal type and would store a
  float) the plain decimal string, so nothing is ever rounded through binary floating point.
- `UtcDateTime`: TIMESTAMPTZ on PostgreSQL; on SQLite a naive UTC timestamp in SQLAlchemy's fixed-width
  text format (sorts and compares lexically). Binding a naive datetime is refused; results are aware UTC.
- `BigId`: BIGINT, but INTEGER on SQLite so the column is an alias of ROWID (autoincrement).

Migrations import these types: they are part of the schema's contract, change them only with a revision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_PRECISION = 38
MONEY_SCALE = 18

BigId = BigInteger().with_variant(Integer(), "sqlite")


def trim(d: Decimal) -> Decimal:
    """Drop the trailing zeros NUMERIC(38, 18) pads with (1.500000000000000000 -> 1.5, 0E-18 -> 0)."""
    text = format(d, "f")
    if "." not in text:
        return d
    out = Decimal(text.rstrip("0").rstrip("."))
    return out if out else Decimal(0)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                raise TypeError("Money columns take Decimal (or int/str), never float")
            value = Decimal(value)
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value}")
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        d = value if isinstance(value, Decimal) else Decimal(str(value))
        return trim(d) if dialect.name != "sqlite" else d


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetime must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            value = datetime.fromisoformat(str(value))
        t: datetime = value
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
