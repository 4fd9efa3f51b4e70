"""Conversion helpers shared by the venue parsers and the paper gateway: exact Decimals from wire values,
UTC datetimes from epoch milliseconds, client order ids a venue accepts, and an Order builder that repairs
the few inconsistencies exchanges report (so one odd payload never breaks a whole stream batch)."""

from __future__ import annotations

import hashlib
import logging
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ...domain.enums import Exchange, OrderStatus, OrderType
from ...domain.market import OrderRequest
from ...domain.models import Order

log = logging.getLogger(__name__)

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


def dec(value: Any) -> Decimal | None:
    """An exact Decimal from a wire value ("0.1", 5, Decimal); None for absent/empty/non-numeric.

    A float (ccxt's unified fields) is read through its shortest repr, never its binary expansion."""
    if type(value) is str:  # the common case first: wire values are strings
        if not value:
            return None
        try:
            d = Decimal(value)
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            d = Decimal(text)
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


def positive(value: Any) -> Decimal | None:
    d = dec(value)
    return d if d is not None and d > 0 else None


def ms_to_dt(value: Any) -> datetime | None:
    """Epoch milliseconds (int or numeric string) -> tz-aware UTC datetime; None when absent or zero."""
    d = dec(value)
    if d is None or d <= 0:
        return None
    ms = int(d)
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def utc_now() -> datetime:
    return datetime.now(UTC)


def clean(value: Decimal) -> Decimal:
    """Drop trailing fractional zeros without switching to exponent form (0.10 -> 0.1, 100 stays 100)."""
    if value == 0:
        return ZERO
    n = value.normalize()
    exp = n.as_tuple().exponent
    if isinstance(exp, int) and exp > 0:
        return n.quantize(ONE)
    return n


def fmt(value: Decimal) -> str:
    """A plain decimal string for the wire (never exponent notation)."""
    return format(clean(value), "f")


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return False


# ---------------------------------------------------------------- client order ids

_OKX_CLID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_BINANCE_CLID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def venue_client_order_id(exchange: Exchange | str, client_order_id: str) -> str:
    """The client order id as sent to the venue: unchanged when the venue accepts it (OKX: 1-32 letters and
    digits; Binance: 1-36 of ``[.A-Z:/a-z0-9_-]``), otherwise a deterministic substitute (so a later
    ``fetch_order(client_order_id=...)`` with the same input finds the same order)."""
    ex = Exchange(exchange)
    if ex is Exchange.OKX:
        if _OKX_CLID.fullmatch(client_order_id):
            return client_order_id
        alnum = re.sub(r"[^A-Za-z0-9]", "", client_order_id)
        if alnum and len(alnum) <= 32 and alnum == client_order_id.replace("-", ""):
            return alnum  # a dashed uuid: the dashes carry nothing
        return "h" + hashlib.sha256(client_order_id.encode()).hexdigest()[:31]
    if _BINANCE_CLID.fullmatch(client_order_id):
        return client_order_id
    return "h" + hashlib.sha256(client_order_id.encode()).hexdigest()[:35]


# ---------------------------------------------------------------- orders


def build_order(**fields: Any) -> Order:
    """``Order(**fields)`` after repairing what exchanges report inconsistently:

    - a FILLED order whose cumulative fill differs from its size (a reduce-only order capped by the venue,
      a closing algo with no size): quantity follows the fill (or the fill follows the quantity when 0);
    - a fill above the size: the size grows to the fill;
    - a missing price on a limit order or a missing trigger price on a stop: the type degrades to one that
      does not need it (the raw values stay in metadata).
    """
    qty: Decimal = fields["quantity"]
    filled: Decimal = fields.get("filled_qty") or ZERO
    status: OrderStatus = fields.get("status", OrderStatus.PENDING)
    meta: dict[str, Any] = dict(fields.get("metadata") or {})
    if filled > qty:
        meta.setdefault("reported_quantity", str(qty))
        qty = filled
    if status is OrderStatus.FILLED and filled != qty:
        if filled > 0:
            meta.setdefault("reported_quantity", str(qty))
            qty = filled
        else:
            filled = qty
    otype: OrderType = fields["order_type"]
    if otype.needs_price and fields.get("price") is None:
        otype = OrderType.STOP_MARKET if otype is OrderType.STOP_LIMIT else OrderType.MARKET
    if otype.needs_trigger_price and fields.get("trigger_price") is None:
        meta.setdefault("reported_type", otype.value)
        otype = OrderType.LIMIT if fields.get("price") is not None else OrderType.MARKET
    fields.update(quantity=qty, filled_qty=filled, order_type=otype, metadata=meta)
    if fields.get("avg_fill_price") is not None and filled == 0:
        fields["avg_fill_price"] = None
    return Order(**fields)


def conditional_params(
    req: OrderRequest, amount: str, price: str | None, params: dict[str, Any], activation_param: str
) -> tuple[str, str, str | None, dict[str, Any]]:
    """(ccxt type, amount, price, params) of an algo order, through ccxt's unified params: stopLossPrice,
    takeProfitPrice, triggerPrice, trailingPercent (PERCENT: the domain's callback_rate is a fraction).
    `activation_param` is the venue's own name for the trailing activation price (OKX activePx, Binance
    trailingTriggerPrice): ccxt has no unified one."""
    t = req.order_type
    kind = "limit" if price is not None else "market"
    if t in (OrderType.STOP_MARKET, OrderType.STOP_LOSS, OrderType.STOP_LIMIT):
        assert req.trigger_price is not None
        params["stopLossPrice"] = fmt(req.trigger_price)
        return ("limit" if t is OrderType.STOP_LIMIT else "market"), amount, price, params
    if t is OrderType.TAKE_PROFIT:
        assert req.trigger_price is not None
        params["takeProfitPrice"] = fmt(req.trigger_price)
        return kind, amount, price, params
    if t is OrderType.TRIGGER:
        assert req.trigger_price is not None
        params["triggerPrice"] = fmt(req.trigger_price)
        return kind, amount, price, params
    if t is OrderType.TRAILING_STOP:
        assert req.callback_rate is not None
        params["trailingPercent"] = fmt(req.callback_rate * HUNDRED)
        if req.activation_price is not None:
            params[activation_param] = fmt(req.activation_price)
        return "market", amount, None, params
    raise ValueError(f"unsupported order type {t.value}")
