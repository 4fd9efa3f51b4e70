"""Request parameters (query string + form body) with Binance's own validation errors.

Binance reads every parameter as a string; numbers must match its decimal/integer patterns (no exponents,
no signs), booleans are ``true``/``false``. Missing mandatory parameters give -1102, malformed ones -1100.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import parse_qsl

from .errors import DECIMAL_RANGE, INT_RANGE, BinanceError, illegal_chars, mandatory, not_required

__all__ = ["Params", "parse_params"]

_DECIMAL_RE = re.compile(DECIMAL_RANGE)
_INT_RE = re.compile(INT_RANGE)
_BOOL_RANGE = "^(true|false)$"


def parse_params(*raw: str) -> dict[str, str]:
    """Merge urlencoded strings (query, body). A parameter sent twice gives -1101."""
    out: dict[str, str] = {}
    for text in raw:
        if not text:
            continue
        for key, value in parse_qsl(text, keep_blank_values=True):
            if key in out:
                raise BinanceError(-1101, "Duplicate values for a parameter detected.")
            out[key] = value
    return out


class Params:
    """Typed readers over the request parameters."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw

    def has(self, name: str) -> bool:
        return bool(self.raw.get(name))

    def opt_str(self, name: str) -> str | None:
        value = self.raw.get(name)
        return value if value else None

    def req_str(self, name: str) -> str:
        value = self.raw.get(name)
        if not value:
            raise mandatory(name)
        return value

    def reject(self, names: Iterable[str]) -> None:
        """-1106 for the first of ``names`` that was sent."""
        for name in names:
            if self.raw.get(name):
                raise not_required(name)

    def opt_decimal(self, name: str) -> Decimal | None:
        value = self.raw.get(name)
        if not value:
            return None
        if not _DECIMAL_RE.match(value):
            raise illegal_chars(name, DECIMAL_RANGE)
        return Decimal(value)

    def req_decimal(self, name: str) -> Decimal:
        value = self.opt_decimal(name)
        if value is None:
            raise mandatory(name)
        return value

    def opt_int(self, name: str) -> int | None:
        value = self.raw.get(name)
        if not value:
            return None
        if not _INT_RE.match(value):
            raise illegal_chars(name, INT_RANGE)
        return int(value)

    def req_int(self, name: str) -> int:
        value = self.opt_int(name)
        if value is None:
            raise mandatory(name)
        return value

    def opt_bool(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if not value:
            return None
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise illegal_chars(name, _BOOL_RANGE)

    def enum(self, name: str, allowed: Iterable[str], error: BinanceError | None = None) -> str | None:
        """An optional upper-case enum value; ``error`` (default -1100) when not allowed."""
        value = self.raw.get(name)
        if not value:
            return None
        choices = tuple(allowed)
        if value not in choices:
            raise error or illegal_chars(name, "^(" + "|".join(choices) + ")$")
        return value
