"""Helpers every venue shares, written once: exact Decimals from wire values, UTC datetimes from epoch
milliseconds, the side of a signed amount, a fee's sign turned into a cost, contracts to base currency, the
client order id rules a venue declares, and an Order builder that repairs the few inconsistencies exchanges
report (so one odd payload never breaks a whole stream batch). Pure: no ccxt, no I/O."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..domain.enums import OrderStatus, OrderType, PositionSide
from ..domain.market import MarketInfo, OrderRequest
from ..domain.models import Order

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
    # cached: a push repeats its times (created, updated, filled), and so do the next pushes
    kind = type(value)
    if kind is str or kind is int:
        return _ms_to_dt_cached(value)
    return _ms_to_dt(value)


def _ms_to_dt(value: Any) -> datetime | None:
    d = dec(value)
    if d is None or d <= 0:
        return None
    ms = int(d)
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


_ms_to_dt_cached = functools.lru_cache(maxsize=4096, typed=True)(_ms_to_dt)


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


# ---------------------------------------------------------------- sides, fees, contracts


def side_from_signed(amount: Decimal) -> PositionSide | None:
    """The side of a one-way (net) position from its signed size: long above zero, short below, none when flat."""
    if amount > 0:
        return PositionSide.LONG
    if amount < 0:
        return PositionSide.SHORT
    return None


def fee_cost(signed: Decimal | None, *, paid_is_negative: bool) -> Decimal:
    """A venue's fee as a cost (positive = paid, negative = a rebate). OKX reports a paid fee as a negative
    number (``fee``, ``fillFee``), Binance as a positive commission (``n``)."""
    if signed is None:
        return ZERO
    return -signed if paid_is_negative else signed


def base_size(contracts: Decimal, market: MarketInfo) -> Decimal:
    """Contracts on the wire -> base currency in the domain (OKX swaps: x ctVal; Binance: unchanged)."""
    return _base_size(contracts, market.contract_value)


@functools.lru_cache(maxsize=4096)
def _base_size(contracts: Decimal, contract_value: Decimal) -> Decimal:
    # (cached by value: equal Decimals of another exponent give the same cleaned product)
    return clean(contracts * contract_value)


# ---------------------------------------------------------------- client order ids


@dataclass(frozen=True, slots=True)
class ClientIdRule:
    """What a venue accepts as a client order id: 1..``max_len`` characters of the ``allowed`` class.

    :meth:`apply` passes an accepted id unchanged; with ``strip_dashes`` an id that is only dashes away from
    accepted (a dashed uuid on OKX) loses its dashes; anything else becomes a deterministic substitute, so a
    later ``fetch_order(client_order_id=...)`` with the same input finds the same order."""

    allowed: str  # a regex character-class body, e.g. "A-Za-z0-9"
    max_len: int
    strip_dashes: bool = False

    def apply(self, client_order_id: str) -> str:
        accepted = re.compile(rf"[{self.allowed}]{{1,{self.max_len}}}")
        if accepted.fullmatch(client_order_id):
            return client_order_id
        if self.strip_dashes:
            undashed = client_order_id.replace("-", "")
            if undashed and accepted.fullmatch(undashed):
                return undashed
        return "h" + hashlib.sha256(client_order_id.encode()).hexdigest()[: self.max_len - 1]


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
