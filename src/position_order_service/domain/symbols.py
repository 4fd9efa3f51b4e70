"""Symbols: the exchange's native instrument id everywhere; ccxt unified symbols accepted and mapped."""

from __future__ import annotations

import re

_UNIFIED = re.compile(r"^(?P<base>[A-Z0-9]+)/(?P<quote>[A-Z0-9]+)(?::(?P<settle>[A-Z0-9]+))?$")
_NATIVE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


class InvalidSymbol(ValueError):
    pass


def native_symbol(exchange: str, symbol: str) -> str:
    """`BTC/USDT:USDT` -> `BTC-USDT-SWAP` (okx) or `BTCUSDT` (binance); native ids pass through."""
    text = symbol.strip()
    m = _UNIFIED.match(text.upper())
    if m:
        base, quote, settle = m["base"], m["quote"], m["settle"]
        if exchange == "okx":
            return f"{base}-{quote}-SWAP" if settle else f"{base}-{quote}"
        return f"{base}{quote}"
    if not _NATIVE.match(text):
        raise InvalidSymbol(f"symbol {symbol!r} is neither an exchange instrument id nor a ccxt symbol")
    return text.upper()
