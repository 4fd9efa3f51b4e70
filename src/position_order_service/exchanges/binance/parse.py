"""Binance USD-M payloads -> the domain model (sizes in base currency on both sides).

One parser per payload, used on both paths: REST answers and ccxt's ``info`` (/fapi/v1/order,
/fapi/v1/algoOrder, /fapi/v3/positionRisk) and the user stream's objects as they arrive (ORDER_TRADE_UPDATE
``o``, ALGO_UPDATE ``o``, ACCOUNT_UPDATE ``P`` entries), mini tickers and mark prices, which :mod:`.push`
hands over without ccxt.

Units: ``callbackRate`` is PERCENT (2 = 2%), as is ccxt's ``trailingPercent``; the domain's callback_rate is a
fraction. Commissions (``n``) are positive when paid.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ...domain.enums import (
    Exchange,
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    PositionStatus,
    TimeInForce,
)
from ...domain.market import FillReport, MarketInfo, PriceTick
from ...domain.models import Order, PnLInfo, Position
from ...domain.reconcile import SIZE_UNKNOWN
from ..common import (
    HUNDRED,
    ZERO,
    build_order,
    dec,
    fee_cost,
    ms_to_dt,
    positive,
    side_from_signed,
    truthy,
    utc_now,
)

EXCHANGE = Exchange.BINANCE

_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
}
_ALGO_STATUS = {
    "NEW": OrderStatus.OPEN,
    "TRIGGERING": OrderStatus.OPEN,
    "TRIGGERED": OrderStatus.FILLED,
    "FINISHED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}
_TIF = {"IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "GTX": TimeInForce.POST_ONLY}


def _str(raw: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        v = raw.get(key)
        if v is not None and str(v) != "":
            return str(v)
    return None


def pos_side(value: Any) -> PositionSide | None:
    if value in ("LONG", "long"):
        return PositionSide.LONG
    if value in ("SHORT", "short"):
        return PositionSide.SHORT
    return None


def is_algo_payload(raw: dict[str, Any]) -> bool:
    return "aid" in raw or "algoId" in raw


def _closing(side: OrderSide, ps: PositionSide | None, reduce_only: bool) -> bool:
    return reduce_only or (ps is not None and side is ps.exit_order_side)


def _algo_type(kind: str, closing: bool, has_price: bool) -> OrderType:
    if kind in ("STOP_MARKET", "STOP_LOSS"):
        return OrderType.STOP_LOSS if closing else OrderType.STOP_MARKET
    if kind == "STOP":
        return (
            OrderType.STOP_LIMIT if has_price else (OrderType.STOP_LOSS if closing else OrderType.STOP_MARKET)
        )
    if kind in ("TAKE_PROFIT", "TAKE_PROFIT_MARKET"):
        return OrderType.TAKE_PROFIT
    if kind == "TRAILING_STOP_MARKET":
        return OrderType.TRAILING_STOP
    return OrderType.LIMIT if has_price else OrderType.MARKET


def parse_order(
    raw: dict[str, Any], market: MarketInfo, user_id: str, fee: tuple[Decimal, str | None] | None = None
) -> Order:
    """Any order payload: REST order, REST algo order, ORDER_TRADE_UPDATE ``o``, ALGO_UPDATE ``o``.

    ``fee``: the commission accumulated so far from the user stream (Binance's order objects carry none)."""
    if is_algo_payload(raw):
        return parse_algo(raw, market, user_id)
    ws = "X" in raw and "i" in raw
    kind = str(_str(raw, "o", "type", "origType") or "")
    status_raw = _str(raw, "X", "status")
    side = OrderSide(str(_str(raw, "S", "side")).lower())
    ps = pos_side(_str(raw, "ps", "positionSide"))
    reduce_only = truthy(raw.get("R" if ws else "reduceOnly")) or truthy(
        raw.get("cp" if ws else "closePosition")
    )
    closing = _closing(side, ps, reduce_only)
    price = positive(_str(raw, "p", "price"))
    trigger = positive(_str(raw, "sp", "stopPrice"))
    if kind == "MARKET":
        otype = OrderType.MARKET
        price = None
    elif kind == "LIMIT":
        otype = OrderType.LIMIT
    else:  # a stop order placed by the matching engine (legacy conditional or a triggered algo's child)
        otype = _algo_type(kind, closing, price is not None)
    tif_raw = str(_str(raw, "f", "timeInForce") or "GTC")
    meta: dict[str, Any] = {"venue_type": kind, "venue_state": status_raw}
    if ws and raw.get("x"):
        meta["execution_type"] = raw.get("x")
    fee_amount, fee_ccy = fee if fee is not None else (ZERO, None)
    created = (
        ms_to_dt(raw.get("O") if ws else raw.get("time"))
        or ms_to_dt(raw.get("T") if ws else raw.get("updateTime"))
        or utc_now()
    )
    return build_order(
        exchange_order_id=_str(raw, "i", "orderId"),
        client_order_id=_str(raw, "c", "clientOrderId"),
        user_id=user_id,
        exchange=EXCHANGE,
        symbol=market.symbol,
        side=side,
        order_type=otype,
        quantity=dec(_str(raw, "q", "origQty")) or ZERO,
        price=price if otype is not OrderType.MARKET else None,
        trigger_price=trigger if otype.is_algo else None,
        filled_qty=dec(_str(raw, "z", "executedQty")) or ZERO,
        avg_fill_price=positive(_str(raw, "ap", "avgPrice")),
        status=_STATUS.get(str(status_raw), OrderStatus.PENDING),
        reduce_only=closing,
        post_only=tif_raw == "GTX",
        time_in_force=_TIF.get(tif_raw, TimeInForce.GTC),
        position_side=ps,
        fee=max(fee_amount, ZERO),
        fee_currency=fee_ccy,
        metadata=meta,
        created_at=created,
        updated_at=ms_to_dt(raw.get("T") if ws else raw.get("updateTime")) or created,
    )


def parse_algo(raw: dict[str, Any], market: MarketInfo, user_id: str) -> Order:
    """REST algo order (``algoId``, ``clientAlgoId``, ``algoStatus``, ...) or ALGO_UPDATE ``o``
    (``aid``, ``caid``, ``X``, ``tp``, ...)."""
    ws = "aid" in raw
    kind = str(_str(raw, "o", "orderType", "type") or "")
    side = OrderSide(str(_str(raw, "S", "side")).lower())
    ps = pos_side(_str(raw, "ps", "positionSide"))
    close_all = truthy(raw.get("cp" if ws else "closePosition"))
    reduce_only = truthy(raw.get("R" if ws else "reduceOnly")) or close_all
    closing = _closing(side, ps, reduce_only)
    price = positive(_str(raw, "p", "price"))
    trigger = positive(_str(raw, "tp", "triggerPrice", "stopPrice"))
    otype = _algo_type(kind, closing, price is not None)
    status_raw = _str(raw, "X", "algoStatus", "status")
    status = _ALGO_STATUS.get(str(status_raw), OrderStatus.PENDING)
    meta: dict[str, Any] = {"algo": True, "algo_type": kind, "venue_state": status_raw}
    rate: Decimal | None = None
    if otype is OrderType.TRAILING_STOP:
        pct = positive(_str(raw, "cr", "callbackRate", "priceRate"))
        rate = None if pct is None else pct / HUNDRED
        active = positive(_str(raw, "AP", "aP", "activatePrice", "activationPrice"))
        if active is not None:
            meta["activation_price"] = str(active)
        trigger = None
        price = None
    qty = dec(_str(raw, "q", "quantity", "origQty"))
    filled = ZERO
    avg: Decimal | None = None
    if qty is None or qty <= 0:
        # closePosition=true has no quantity: the ALGO_UPDATE of a FINISHED one tells what its child executed
        # (``aq``, ``ap``; a TRIGGERED one's may be part of it); before that (and over REST, which does not say)
        # the minimum stands in, marked SIZE_UNKNOWN: the gateway reads a triggered one's size from its child
        # order before handing it on
        meta["close_position"] = True
        executed = dec(raw.get("aq")) if ws and status_raw == "FINISHED" else None
        if executed is not None and executed > 0:
            qty = filled = executed
            avg = positive(_str(raw, "ap"))
        else:
            qty = market.min_size
            meta[SIZE_UNKNOWN] = True
    child = _str(raw, "ai", "actualOrderId", "orderId")
    if child and child != "0":
        meta["child_order_id"] = child
    reason = _str(raw, "rm")
    if reason:
        meta["fail_reason"] = reason
    triggered = ms_to_dt(raw.get("tt") if ws else raw.get("triggerTime"))
    if triggered is not None:
        meta["triggered_at"] = triggered.isoformat()
    created = ms_to_dt(raw.get("createTime")) or ms_to_dt(raw.get("T")) or utc_now()
    order = build_order(
        exchange_order_id=_str(raw, "aid", "algoId"),
        client_order_id=_str(raw, "caid", "clientAlgoId"),
        user_id=user_id,
        exchange=EXCHANGE,
        symbol=market.symbol,
        side=side,
        order_type=otype,
        quantity=qty,
        price=price,
        trigger_price=trigger,
        filled_qty=filled,
        avg_fill_price=avg,
        callback_rate=rate
        if rate is not None
        else (Decimal("0.01") if otype is OrderType.TRAILING_STOP else None),
        status=status,
        reduce_only=closing,
        position_side=ps,
        metadata={**meta, "callback_rate_unknown": True}
        if otype is OrderType.TRAILING_STOP and rate is None
        else meta,
        created_at=created,
        updated_at=ms_to_dt(raw.get("T") if ws else raw.get("updateTime")) or triggered or created,
    )
    return order


def parse_fill(raw: dict[str, Any], market: MarketInfo) -> FillReport | None:
    """One trade from an ORDER_TRADE_UPDATE ``o`` with execution type TRADE."""
    if raw.get("x") != "TRADE":
        return None
    trade_id = _str(raw, "t")
    size = dec(raw.get("l"))
    price = positive(raw.get("L"))
    if not trade_id or size is None or size <= 0 or price is None:
        return None
    stamp = ms_to_dt(raw.get("T"))
    return FillReport(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        trade_id=trade_id,
        order_id=str(raw.get("i") or ""),
        client_order_id=_str(raw, "c"),
        side=OrderSide(str(raw.get("S")).lower()),
        price=price,
        size=size,
        fee=fee_cost(dec(raw.get("n")), paid_is_negative=False),
        fee_currency=_str(raw, "N"),
        liquidity="maker" if truthy(raw.get("m")) else "taker",
        position_side=pos_side(raw.get("ps")),
        timestamp=stamp or utc_now(),
        exchange_time=stamp is not None,
    )


def parse_trade(raw: dict[str, Any], market: MarketInfo) -> FillReport | None:
    """One row of GET /fapi/v1/userTrades (``commission`` positive = paid)."""
    trade_id = _str(raw, "id")
    size = dec(raw.get("qty"))
    price = positive(raw.get("price"))
    if not trade_id or size is None or size <= 0 or price is None:
        return None
    stamp = ms_to_dt(raw.get("time"))
    return FillReport(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        trade_id=trade_id,
        order_id=str(raw.get("orderId") or ""),
        client_order_id=None,  # (a trade row does not carry it)
        side=OrderSide(str(raw.get("side")).lower()),
        price=price,
        size=size,
        fee=fee_cost(dec(raw.get("commission")), paid_is_negative=False),
        fee_currency=_str(raw, "commissionAsset"),
        liquidity="maker" if truthy(raw.get("maker")) else "taker",
        position_side=pos_side(raw.get("positionSide")),
        timestamp=stamp or utc_now(),
        exchange_time=stamp is not None,
    )


def parse_position(
    raw: dict[str, Any],
    market: MarketInfo,
    user_id: str,
    flat_side: str | None = None,
    leverage: int | None = None,
    event_time: datetime | None = None,
) -> Position | None:
    """A position row (REST positionRisk, or an ACCOUNT_UPDATE ``P`` entry). One-way mode (``BOTH``)
    signs the amount; a flat one-way position takes ``flat_side`` (what ccxt says it was). An ACCOUNT_UPDATE
    entry has no time of its own: ``event_time`` (the event's ``E``) versions it, never our clock."""
    amt = dec(_str(raw, "pa", "positionAmt")) or ZERO
    side = pos_side(_str(raw, "ps", "positionSide")) or side_from_signed(amt)
    if side is None:
        if flat_side not in ("long", "short"):
            return None
        side = PositionSide(flat_side)
    size = abs(amt)
    lev = dec(_str(raw, "leverage"))
    lev_int = int(lev) if lev else (leverage or 1)
    mt = str(_str(raw, "mt", "marginType") or "cross").lower()
    margin = MarginMode.ISOLATED if mt == "isolated" else MarginMode.CROSS
    updated = ms_to_dt(raw.get("updateTime")) or ms_to_dt(raw.get("T")) or event_time or utc_now()
    is_open = size > 0
    return Position(
        user_id=user_id,
        exchange=EXCHANGE,
        symbol=market.symbol,
        side=side,
        size=size,
        entry_price=positive(_str(raw, "ep", "entryPrice")) or ZERO,
        current_price=positive(_str(raw, "markPrice", "mp")),
        leverage=min(max(lev_int, 1), 125),
        margin_mode=margin,
        liquidation_price=positive(_str(raw, "liquidationPrice")),
        pnl=PnLInfo(
            realized=dec(_str(raw, "cr")) or ZERO,
            unrealized=(dec(_str(raw, "up", "unRealizedProfit", "unrealizedProfit")) or ZERO)
            if is_open
            else ZERO,
        ),
        status=PositionStatus.OPEN if is_open else PositionStatus.CLOSED,
        created_at=updated,
        updated_at=updated,
        closed_at=None if is_open else updated,
    )


def parse_ticker(raw: dict[str, Any], market: MarketInfo) -> PriceTick:
    last = positive(_str(raw, "lastPrice", "c", "markPrice", "p"))
    if last is None:
        raise ValueError(f"ticker for {market.symbol} has no last price")
    return PriceTick(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        last=last,
        bid=positive(_str(raw, "bidPrice", "b")),
        ask=positive(_str(raw, "askPrice", "a")),
        mark=positive(_str(raw, "markPrice")),
        timestamp=ms_to_dt(raw.get("closeTime")) or ms_to_dt(raw.get("E")) or utc_now(),
    )


def parse_mark_price(raw: dict[str, Any], market: MarketInfo) -> PriceTick:
    """A ``markPriceUpdate`` event (``p`` = mark price, ``E`` = event time): last and mark are the mark."""
    mark = positive(_str(raw, "p", "markPrice"))
    if mark is None:
        raise ValueError(f"mark price for {market.symbol} has no price")
    return PriceTick(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        last=mark,
        bid=None,
        ask=None,
        mark=mark,
        timestamp=ms_to_dt(raw.get("E")) or ms_to_dt(raw.get("time")) or utc_now(),
    )


def parse_balance(info: Any) -> dict[str, Decimal]:
    """Equity (margin balance) per asset from GET /fapi/v3/account (or /v2/balance rows)."""
    out: dict[str, Decimal] = {}
    rows = info.get("assets") if isinstance(info, dict) else info
    for row in rows or []:
        if not isinstance(row, dict):
            continue
        asset = row.get("asset")
        value = dec(row.get("marginBalance"))
        if value is None:
            wallet = dec(row.get("walletBalance")) or dec(row.get("balance"))
            upl = dec(row.get("unrealizedProfit")) or dec(row.get("crossUnPnl")) or ZERO
            value = None if wallet is None else wallet + upl
        if asset and value is not None:
            out[str(asset)] = value
    return out
