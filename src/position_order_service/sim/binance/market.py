"""Market data: exchangeInfo, leverage brackets, running 24h statistics and ticker shapes (REST and WS).

The simulator has no outside market: the "24h" statistics run since the server started (open = first
price seen, volume = fills of all simulated accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..engine import Fill, Instrument, Ticker
from .numbers import fmt

__all__ = [
    "MAX_PRICE",
    "MarketStats",
    "SymbolStats",
    "book_ticker",
    "exchange_info",
    "leverage_bracket",
    "mark_price",
    "mini_ticker_event",
    "ticker_24h",
    "ticker_event",
]

_ZERO = Decimal(0)
MAX_PRICE = Decimal(10_000_000)
ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX"]
ONBOARD_MS = 1_569_398_400_000
DELIVERY_MS = 4_133_404_800_000
FUNDING_PERIOD_MS = 8 * 3600 * 1000


def _decimals(step: Decimal) -> int:
    exp = step.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def _symbol(inst: Instrument) -> dict[str, Any]:
    market_max = inst.max_market_size if inst.max_market_size is not None else inst.max_limit_size
    return {
        "symbol": inst.inst_id,
        "pair": inst.inst_id,
        "contractType": "PERPETUAL",
        "deliveryDate": DELIVERY_MS,
        "onboardDate": ONBOARD_MS,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base,
        "quoteAsset": inst.quote,
        "marginAsset": inst.settle,
        "pricePrecision": _decimals(inst.tick_size),
        "quantityPrecision": _decimals(inst.lot_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(inst.tick_size),
                "maxPrice": fmt(MAX_PRICE),
                "tickSize": fmt(inst.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(inst.min_size),
                "maxQty": fmt(inst.max_limit_size) if inst.max_limit_size is not None else "100000000",
                "stepSize": fmt(inst.lot_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(inst.min_size),
                "maxQty": fmt(market_max) if market_max is not None else "100000000",
                "stepSize": fmt(inst.lot_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(inst.min_notional)},
        ],
        "orderTypes": list(ORDER_TYPES),
        "timeInForce": list(TIME_IN_FORCE),
        "permissionSet": ["GRID", "COPY"],
    }


def exchange_info(instruments: list[Instrument], now_ms: int) -> dict[str, Any]:
    """GET /fapi/v1/exchangeInfo."""
    settles = sorted({i.settle for i in instruments})
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": s, "marginAvailable": True, "autoAssetExchange": "-10000"} for s in settles],
        "symbols": [_symbol(i) for i in instruments],
    }


def leverage_bracket(inst: Instrument) -> dict[str, Any]:
    """One symbol of GET /fapi/v1/leverageBracket: a single bracket up to the max leverage."""
    return {
        "symbol": inst.inst_id,
        "notionalCoef": 1.0,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": inst.max_leverage,
                "notionalCap": 1_000_000_000,
                "notionalFloor": 0,
                "maintMarginRatio": float(inst.maint_margin_rate),
                "cum": 0.0,
            }
        ],
    }


@dataclass(slots=True)
class SymbolStats:
    """Running statistics of one symbol since the first price."""

    open: Decimal
    high: Decimal
    low: Decimal
    last: Decimal
    open_ms: int
    close_ms: int
    last_qty: Decimal = _ZERO
    volume: Decimal = _ZERO
    quote_volume: Decimal = _ZERO
    count: int = 0
    first_trade: int = -1
    last_trade: int = -1


class MarketStats:
    """Updated from engine ticker and fill events."""

    def __init__(self) -> None:
        self._stats: dict[str, SymbolStats] = {}

    def get(self, symbol: str) -> SymbolStats | None:
        return self._stats.get(symbol)

    def on_ticker(self, t: Ticker) -> SymbolStats:
        s = self._stats.get(t.inst_id)
        if s is None:
            s = SymbolStats(t.last, t.last, t.last, t.last, t.ts, t.ts)
            self._stats[t.inst_id] = s
            return s
        s.last = t.last
        s.close_ms = t.ts
        s.high = max(s.high, t.last)
        s.low = min(s.low, t.last)
        return s

    def on_fill(self, f: Fill) -> None:
        s = self._stats.get(f.inst_id)
        if s is None:
            s = SymbolStats(f.px, f.px, f.px, f.px, f.ts, f.ts)
            self._stats[f.inst_id] = s
        s.last_qty = f.sz
        s.volume += f.sz
        s.quote_volume += f.sz * f.px
        s.count += 1
        tid = int(f.trade_id)
        if s.first_trade < 0:
            s.first_trade = tid
        s.last_trade = tid


def _change(s: SymbolStats) -> tuple[Decimal, Decimal, Decimal]:
    change = s.last - s.open
    pct = (change / s.open * 100).quantize(Decimal("0.001")) if s.open else _ZERO
    vwap = (s.quote_volume / s.volume) if s.volume else s.last
    return change, pct, vwap


def ticker_24h(symbol: str, s: SymbolStats) -> dict[str, Any]:
    """GET /fapi/v1/ticker/24hr element."""
    change, pct, vwap = _change(s)
    return {
        "symbol": symbol,
        "priceChange": fmt(change),
        "priceChangePercent": fmt(pct),
        "weightedAvgPrice": fmt(vwap),
        "lastPrice": fmt(s.last),
        "lastQty": fmt(s.last_qty),
        "openPrice": fmt(s.open),
        "highPrice": fmt(s.high),
        "lowPrice": fmt(s.low),
        "volume": fmt(s.volume),
        "quoteVolume": fmt(s.quote_volume),
        "openTime": s.open_ms,
        "closeTime": s.close_ms,
        "firstId": s.first_trade,
        "lastId": s.last_trade,
        "count": s.count,
    }


def book_ticker(t: Ticker) -> dict[str, Any]:
    """GET /fapi/v1/ticker/bookTicker element (the simulator has no depth: quantities are 0)."""
    return {
        "symbol": t.inst_id,
        "bidPrice": fmt(t.bid),
        "bidQty": "0",
        "askPrice": fmt(t.ask),
        "askQty": "0",
        "time": t.ts,
        "lastUpdateId": t.ts,
    }


def mark_price(t: Ticker) -> dict[str, Any]:
    """GET /fapi/v1/premiumIndex element (no funding in the simulator)."""
    return {
        "symbol": t.inst_id,
        "markPrice": fmt(t.mark),
        "indexPrice": fmt(t.mark),
        "estimatedSettlePrice": fmt(t.mark),
        "lastFundingRate": "0",
        "interestRate": "0",
        "nextFundingTime": (t.ts // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS,
        "time": t.ts,
    }


def mini_ticker_event(symbol: str, s: SymbolStats, ts: int) -> dict[str, Any]:
    """``<symbol>@miniTicker`` push (24hrMiniTicker)."""
    return {
        "e": "24hrMiniTicker",
        "E": ts,
        "s": symbol,
        "c": fmt(s.last),
        "o": fmt(s.open),
        "h": fmt(s.high),
        "l": fmt(s.low),
        "v": fmt(s.volume),
        "q": fmt(s.quote_volume),
    }


def ticker_event(symbol: str, s: SymbolStats, ts: int) -> dict[str, Any]:
    """``<symbol>@ticker`` push (24hrTicker)."""
    change, pct, vwap = _change(s)
    return {
        "e": "24hrTicker",
        "E": ts,
        "s": symbol,
        "p": fmt(change),
        "P": fmt(pct),
        "w": fmt(vwap),
        "c": fmt(s.last),
        "Q": fmt(s.last_qty),
        "o": fmt(s.open),
        "h": fmt(s.high),
        "l": fmt(s.low),
        "v": fmt(s.volume),
        "q": fmt(s.quote_volume),
        "O": s.open_ms,
        "C": s.close_ms,
        "F": s.first_trade,
        "L": s.last_trade,
        "n": s.count,
    }
