"""Symbol filters (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE) and order-field checks with Binance's codes,
applied before the engine is called so a refused request changes nothing."""

from __future__ import annotations

import re
from decimal import Decimal

from ..engine import Instrument, PosSide, Side
from .errors import BinanceError
from .market import MAX_PRICE
from .numbers import POS_SIDE_IN, SIDE_IN
from .params import Params

__all__ = [
    "check_client_id",
    "check_price",
    "check_quantity",
    "check_stop_price",
    "position_side",
    "side_param",
]

_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_ZERO = Decimal(0)


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def check_quantity(inst: Instrument, qty: Decimal, market: bool) -> None:
    if qty <= _ZERO:
        raise BinanceError(-4003, "Quantity less than or equal to zero.")
    if not _multiple(qty, inst.lot_size):
        raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    if qty < inst.min_size:
        raise BinanceError(-4004, "Quantity less than min quantity.")
    cap = inst.max_market_size if market else inst.max_limit_size
    if cap is not None and qty > cap:
        raise BinanceError(-4005, "Quantity greater than max quantity.")


def check_price(inst: Instrument, price: Decimal) -> None:
    if price <= _ZERO:
        raise BinanceError(-4001, "Price less than 0.")
    if price < inst.tick_size:
        raise BinanceError(-4013, "Price less than min price.")
    if price > MAX_PRICE:
        raise BinanceError(-4002, "Price greater than max price.")
    if not _multiple(price, inst.tick_size):
        raise BinanceError(-4014, "Price not increased by tick size.")


def check_stop_price(inst: Instrument, price: Decimal) -> None:
    if price <= _ZERO:
        raise BinanceError(-4006, "Stop price less than zero.")
    if price > MAX_PRICE:
        raise BinanceError(-4007, "Stop price greater than max price.")
    if not _multiple(price, inst.tick_size):
        raise BinanceError(-4014, "Price not increased by tick size.")


def check_client_id(value: str | None) -> None:
    if value is not None and not _CLIENT_ID_RE.match(value):
        raise BinanceError(-4015, "Client order id is not valid.")


def side_param(p: Params) -> Side:
    raw = p.req_str("side")
    side = SIDE_IN.get(raw)
    if side is None:
        raise BinanceError(-1117, "Invalid side.")
    return side


def position_side(p: Params, hedged: bool) -> PosSide | None:
    """The engine pos_side for ``positionSide`` under the account's mode (-4061 on a mismatch)."""
    raw = p.enum("positionSide", POS_SIDE_IN)
    ps = None if raw is None else POS_SIDE_IN[raw]
    if hedged:
        if ps is None or ps is PosSide.NET:
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        return ps
    if ps is not None and ps is not PosSide.NET:
        raise BinanceError(-4061, "Order's position side does not match user's setting.")
    return None
