"""Matching rules against the current price (no order book depth).

- market: fills at ask (buy) / bid (sell), taker.
- limit/ioc/fok on arrival: marketable if ask <= px (buy) / bid >= px (sell); fills as taker at the current
  ask/bid (never worse than px).
- a resting limit (incl. post_only) fills at its own px as maker once ask <= px (buy) / bid >= px (sell).
- a market order left open by ``max_fill_per_step`` keeps filling at the current ask/bid, taker.
- ``max_fill_per_step`` (per instrument) caps what one order fills in one pass (arrival or one price step).
"""

from __future__ import annotations

from decimal import Decimal

from .enums import Liquidity, OrdType, Side
from .orders import Order
from .prices import Ticker

__all__ = ["arrival_price", "is_marketable", "resting_price", "step_qty", "taker_price"]

_TAKER = Liquidity.TAKER
_MAKER = Liquidity.MAKER


def taker_price(side: Side, ticker: Ticker) -> Decimal:
    return ticker.ask if side is Side.BUY else ticker.bid


def is_marketable(side: Side, px: Decimal, ticker: Ticker) -> bool:
    return ticker.ask <= px if side is Side.BUY else ticker.bid >= px


def arrival_price(order: Order, ticker: Ticker) -> tuple[Decimal, Liquidity] | None:
    """Fill price for an order that has just arrived (or was amended), or None if it must rest."""
    side = order.side
    if order.ord_type is OrdType.MARKET:
        return (ticker.ask if side is Side.BUY else ticker.bid), _TAKER
    px = order.px
    assert px is not None
    if side is Side.BUY:
        return (ticker.ask, _TAKER) if ticker.ask <= px else None
    return (ticker.bid, _TAKER) if ticker.bid >= px else None


def resting_price(order: Order, ticker: Ticker) -> tuple[Decimal, Liquidity] | None:
    """Fill price for a resting order on a new price, or None if it does not cross."""
    side = order.side
    if order.ord_type is OrdType.MARKET:
        return (ticker.ask if side is Side.BUY else ticker.bid), _TAKER
    px = order.px
    assert px is not None
    if side is Side.BUY:
        return (px, _MAKER) if ticker.ask <= px else None
    return (px, _MAKER) if ticker.bid >= px else None


def step_qty(remaining: Decimal, max_fill_per_step: Decimal | None) -> Decimal:
    if max_fill_per_step is None or remaining <= max_fill_per_step:
        return remaining
    return max_fill_per_step
