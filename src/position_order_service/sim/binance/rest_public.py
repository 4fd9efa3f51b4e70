"""Public market-data endpoints: ping, time, exchangeInfo, ticker/24hr, ticker/price, ticker/bookTicker,
premiumIndex. With ``symbol`` they return one object, without it a list."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..engine import Instrument, Ticker
from .front import Front
from .market import SymbolStats, book_ticker, exchange_info, mark_price, ticker_24h
from .numbers import fmt
from .params import Params

__all__ = [
    "book_tickers",
    "exchange_information",
    "ping",
    "premium_index",
    "server_time",
    "ticker_prices",
    "tickers_24h",
]

_ZERO = Decimal(0)


def ping(front: Front, p: Params) -> dict[str, Any]:
    return {}


def server_time(front: Front, p: Params) -> dict[str, Any]:
    return {"serverTime": front.engine.now_ms()}


def exchange_information(front: Front, p: Params) -> dict[str, Any]:
    return exchange_info(front.engine.instruments(), front.engine.now_ms())


def _per_symbol(front: Front, p: Params, row: Callable[[Instrument], dict[str, Any] | None]) -> Any:
    inst = front.symbol_param(p, required=False)
    if inst is not None:
        return row(inst)
    rows = [row(i) for i in front.engine.instruments()]
    return [r for r in rows if r is not None]


def _ticker(front: Front, inst: Instrument) -> Ticker:
    t = front.engine.ticker(inst.inst_id)
    return t if t is not None else Ticker(inst.inst_id, _ZERO, _ZERO, _ZERO, _ZERO, front.engine.now_ms())


def tickers_24h(front: Front, p: Params) -> Any:
    def row(inst: Instrument) -> dict[str, Any]:
        stats = front.stats.get(inst.inst_id)
        if stats is None:
            ts = front.engine.now_ms()
            stats = SymbolStats(_ZERO, _ZERO, _ZERO, _ZERO, ts, ts)
        return ticker_24h(inst.inst_id, stats)

    return _per_symbol(front, p, row)


def ticker_prices(front: Front, p: Params) -> Any:
    def row(inst: Instrument) -> dict[str, Any]:
        t = _ticker(front, inst)
        return {"symbol": inst.inst_id, "price": fmt(t.last), "time": t.ts}

    return _per_symbol(front, p, row)


def book_tickers(front: Front, p: Params) -> Any:
    return _per_symbol(front, p, lambda inst: book_ticker(_ticker(front, inst)))


def premium_index(front: Front, p: Params) -> Any:
    return _per_symbol(front, p, lambda inst: mark_price(_ticker(front, inst)))
