"""OKX v5 payloads -> the domain model (sizes: contracts on the wire, base currency in the domain).

One parser per payload shape, used on both paths: REST answers and ccxt's ``info`` (trade/order,
trade/order-algo, account/positions) and the WebSocket channels' entries as they arrive (``orders``,
``orders-algo``, ``positions``, ``tickers``, ``mark-price``), which :mod:`.push` hands over without ccxt.

Traps handled here (exchange-wire-notes.md): order ``fee`` and trade ``fillFee`` are negative when paid (the
domain's fee is positive = cost); ``callbackRatio`` is a fraction while ccxt's ``trailingPercent`` is percent;
``slOrdPx``/``tpOrdPx``/``orderPx`` "-1" mean market; a flat net position is ``pos`` "0".
"""

from __future__ import annotations

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
    ZERO,
    base_size,
    build_order,
    dec,
    fee_cost,
    ms_to_dt,
    positive,
    side_from_signed,
    truthy,
    utc_now,
)

EXCHANGE = Exchange.OKX
ALGO_ORD_TYPES = frozenset({"conditional", "oco", "trigger", "move_order_stop", "iceberg", "twap", "chase"})

_STATUS = {
    "live": OrderStatus.OPEN,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "mmp_canceled": OrderStatus.CANCELLED,
    "order_failed": OrderStatus.REJECTED,
}
_ALGO_STATUS = {
    "live": OrderStatus.OPEN,
    "pause": OrderStatus.OPEN,
    "partially_effective": OrderStatus.PARTIALLY_FILLED,
    "effective": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "order_failed": OrderStatus.REJECTED,
    "partially_failed": OrderStatus.REJECTED,
}
_TIF = {
    "ioc": TimeInForce.IOC,
    "optimal_limit_ioc": TimeInForce.IOC,
    "fok": TimeInForce.FOK,
    "post_only": TimeInForce.POST_ONLY,
    "mmp_and_post_only": TimeInForce.POST_ONLY,
}


def _str(raw: dict[str, Any], key: str) -> str | None:
    v = raw.get(key)
    if v is None:
        return None
    s = str(v)
    return s or None


def pos_side(raw: dict[str, Any]) -> PositionSide | None:
    ps = raw.get("posSide")
    return PositionSide(ps) if ps in ("long", "short") else None


def is_algo_payload(raw: dict[str, Any]) -> bool:
    return raw.get("ordType") in ALGO_ORD_TYPES


def _closing(side: OrderSide, ps: PositionSide | None, reduce_only: bool) -> bool:
    if reduce_only:
        return True
    return ps is not None and side is ps.exit_order_side


def _status(table: dict[str, OrderStatus], state: Any) -> OrderStatus:
    if isinstance(state, str):
        found = table.get(state)
        if found is not None:
            return found
        try:
            return OrderStatus(state)
        except ValueError:
            pass
    return OrderStatus.PENDING


def parse_order(
    raw: dict[str, Any], market: MarketInfo, user_id: str, exchange: Exchange = EXCHANGE
) -> Order:
    """A regular order (REST trade/order, orders-pending, WS ``orders``)."""
    if is_algo_payload(raw):
        return parse_algo(raw, market, user_id, exchange)
    ord_type = str(raw.get("ordType") or "")
    otype = OrderType.MARKET if ord_type in ("market", "optimal_limit_ioc") else OrderType.LIMIT
    side = OrderSide(str(raw.get("side")))
    ps = pos_side(raw)
    state = raw.get("state")
    fee = fee_cost(dec(raw.get("fee")), paid_is_negative=True)
    meta: dict[str, Any] = {"venue_type": ord_type, "venue_state": state}
    if fee < 0:
        meta["fee_rebate"] = str(-fee)
    for key, name in (
        ("algoId", "algo_id"),
        ("algoClOrdId", "algo_client_order_id"),
        ("cancelSource", "cancel_source"),
    ):
        v = _str(raw, key)
        if v:
            meta[name] = v
    created = ms_to_dt(raw.get("cTime")) or utc_now()
    return build_order(
        exchange_order_id=_str(raw, "ordId"),
        client_order_id=_str(raw, "clOrdId"),
        user_id=user_id,
        exchange=exchange,
        symbol=market.symbol,
        side=side,
        order_type=otype,
        quantity=base_size(dec(raw.get("sz")) or ZERO, market),
        price=positive(raw.get("px")) if otype is OrderType.LIMIT else None,
        filled_qty=base_size(dec(raw.get("accFillSz")) or ZERO, market),
        avg_fill_price=positive(raw.get("avgPx")),
        status=_status(_STATUS, state),
        reduce_only=truthy(raw.get("reduceOnly")) or _closing(side, ps, False),
        post_only=ord_type in ("post_only", "mmp_and_post_only"),
        time_in_force=_TIF.get(ord_type, TimeInForce.GTC),
        position_side=ps,
        fee=max(fee, ZERO),
        fee_currency=_str(raw, "feeCcy"),
        metadata=meta,
        created_at=created,
        updated_at=ms_to_dt(raw.get("uTime")) or created,
    )


def parse_algo(raw: dict[str, Any], market: MarketInfo, user_id: str, exchange: Exchange = EXCHANGE) -> Order:
    """An algo order (REST trade/order-algo, orders-algo-pending, WS ``orders-algo``); also the paper
    gateway's algo mapping (the simulator engine speaks OKX's algo vocabulary), hence ``exchange``."""
    t = str(raw.get("ordType") or "")
    side = OrderSide(str(raw.get("side")))
    ps = pos_side(raw)
    reduce_only = truthy(raw.get("reduceOnly"))
    closing = _closing(side, ps, reduce_only)
    meta: dict[str, Any] = {"algo": True, "algo_type": t, "venue_state": raw.get("state")}
    price: Decimal | None = None
    trigger: Decimal | None = None
    rate: Decimal | None = None
    sl = positive(raw.get("slTriggerPx"))
    tp = positive(raw.get("tpTriggerPx"))
    if t in ("conditional", "oco"):
        if sl is not None:
            trigger = sl
            price = positive(raw.get("slOrdPx"))
            otype = (
                OrderType.STOP_LIMIT if price else (OrderType.STOP_LOSS if closing else OrderType.STOP_MARKET)
            )
            if tp is not None:
                meta["take_profit_price"] = str(tp)
                tp_px = positive(raw.get("tpOrdPx"))
                if tp_px is not None:
                    meta["take_profit_order_price"] = str(tp_px)
        else:
            trigger = tp
            price = positive(raw.get("tpOrdPx"))
            otype = OrderType.TAKE_PROFIT
    elif t == "trigger":
        trigger = positive(raw.get("triggerPx"))
        price = positive(raw.get("ordPx") or raw.get("orderPx"))
        otype = OrderType.TRIGGER
    elif t == "move_order_stop":
        otype = OrderType.TRAILING_STOP
        rate = positive(raw.get("callbackRatio"))
        spread = positive(raw.get("callbackSpread"))
        active = positive(raw.get("activePx"))
        if active is not None:
            meta["activation_price"] = str(active)
        stop = positive(raw.get("moveTriggerPx"))
        if stop is not None:
            meta["stop_price"] = str(stop)
        if rate is None and spread is not None:
            # a price-distance trailing stop (not one we place): express it as a fraction of a reference price
            meta["callback_spread"] = str(spread)
            ref = active or positive(raw.get("last")) or stop
            if ref is not None:
                rate = min(spread / ref, Decimal("0.99"))
        if rate is None:
            raise ValueError(
                f"trailing algo {raw.get('algoId')} has neither callbackRatio nor a usable spread"
            )
    else:  # iceberg / twap: parent orders of many child limit orders
        price = positive(raw.get("pxLimit"))
        otype = OrderType.LIMIT if price else OrderType.MARKET
    state = raw.get("state")
    status = _status(_ALGO_STATUS, state)
    sz = dec(raw.get("sz"))
    if sz is None or sz <= 0:
        meta["close_position"] = True
        # a close-all algo carries no size: once fired, OKX reports what it sent (actualSz); before that (or
        # when it does not say) the minimum stands in, marked SIZE_UNKNOWN: the gateway reads a fired one's
        # size from its child order before handing it on (never a fill of the stand-in)
        actual = dec(raw.get("actualSz"))
        if actual is not None and actual > 0:
            qty = base_size(actual, market)
        else:
            qty = market.min_size
            meta[SIZE_UNKNOWN] = True
    else:
        qty = base_size(sz, market)
    filled = ZERO
    if status is OrderStatus.PARTIALLY_FILLED:
        filled = min(base_size(dec(raw.get("actualSz")) or ZERO, market), qty)
    for key, name in (("ordId", "child_order_id"), ("failCode", "fail_code"), ("tag", "tag")):
        v = _str(raw, key)
        if v and v != "0":
            meta[name] = v
    leg = raw.get("actualSide")
    if leg in ("sl", "tp"):
        meta["triggered_leg"] = leg
    triggered = ms_to_dt(raw.get("triggerTime"))
    if triggered is not None:
        meta["triggered_at"] = triggered.isoformat()
    created = ms_to_dt(raw.get("cTime")) or utc_now()
    return build_order(
        exchange_order_id=_str(raw, "algoId"),
        client_order_id=_str(raw, "algoClOrdId") or _str(raw, "clOrdId"),
        user_id=user_id,
        exchange=exchange,
        symbol=market.symbol,
        side=side,
        order_type=otype,
        quantity=qty,
        price=price,
        trigger_price=trigger,
        callback_rate=rate,
        filled_qty=filled,
        status=status,
        reduce_only=closing,
        position_side=ps,
        metadata=meta,
        created_at=created,
        updated_at=ms_to_dt(raw.get("uTime")) or triggered or created,
    )


def parse_fill(raw: dict[str, Any], market: MarketInfo) -> FillReport | None:
    """One trade from an ``orders`` push carrying a tradeId (what ccxt's watch_my_trades is built from), or a
    row of GET trade/fills (``fee`` for ``fillFee``).

    ``fillFee`` is negative when paid: negated, so the report's fee is positive = cost."""
    trade_id = _str(raw, "tradeId")
    size = dec(raw.get("fillSz"))
    price = positive(raw.get("fillPx"))
    if not trade_id or size is None or size <= 0 or price is None:
        return None
    fee_raw = (
        raw.get("fillFee") if raw.get("fillFee") not in (None, "") else raw.get("fee")
    )  # push | REST row
    fee = fee_cost(dec(fee_raw), paid_is_negative=True)
    liquidity = {"T": "taker", "M": "maker"}.get(str(raw.get("execType") or ""))
    stamp = ms_to_dt(raw.get("fillTime")) or ms_to_dt(raw.get("uTime"))
    return FillReport(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        trade_id=trade_id,
        order_id=str(raw.get("ordId") or ""),
        client_order_id=_str(raw, "clOrdId"),
        side=OrderSide(str(raw.get("side"))),
        price=price,
        size=base_size(size, market),
        fee=fee,
        fee_currency=_str(raw, "fillFeeCcy") or _str(raw, "feeCcy"),
        liquidity=liquidity,
        position_side=pos_side(raw),
        timestamp=stamp or utc_now(),
        exchange_time=stamp is not None,
    )


def parse_position(
    raw: dict[str, Any], market: MarketInfo, user_id: str, flat_side: str | None = None
) -> Position | None:
    """A position (REST account/positions, WS ``positions``). ``pos`` is signed in net mode; a flat net
    position has no side of its own: ``flat_side`` (ccxt reports both) names the side to close."""
    qty = dec(raw.get("pos")) or ZERO
    side = pos_side(raw) or side_from_signed(qty)
    if side is None:
        if flat_side not in ("long", "short"):
            return None
        side = PositionSide(flat_side)
    size = base_size(abs(qty), market)
    lever = dec(raw.get("lever"))
    leverage = min(max(int(lever), 1), 125) if lever else 1
    try:
        margin = MarginMode(str(raw.get("mgnMode") or "cross"))
    except ValueError:
        margin = MarginMode.CROSS
    fees = fee_cost(dec(raw.get("fee")), paid_is_negative=True)
    realized = dec(raw.get("pnl"))
    if realized is None:
        realized = dec(raw.get("realizedPnl")) or ZERO
    created = ms_to_dt(raw.get("cTime")) or utc_now()
    updated = ms_to_dt(raw.get("uTime")) or created
    is_open = size > 0
    meta: dict[str, Any] = {"venue_position_id": raw.get("posId")} if raw.get("posId") else {}
    return Position(
        user_id=user_id,
        exchange=EXCHANGE,
        symbol=market.symbol,
        side=side,
        size=size,
        entry_price=positive(raw.get("avgPx")) or ZERO,
        current_price=positive(raw.get("markPx")),
        leverage=leverage,
        margin_mode=margin,
        liquidation_price=positive(raw.get("liqPx")),
        pnl=PnLInfo(
            realized=realized,
            unrealized=(dec(raw.get("upl")) or ZERO) if is_open else ZERO,
            fees=max(fees, ZERO),
        ),
        status=PositionStatus.OPEN if is_open else PositionStatus.CLOSED,
        metadata=meta,
        created_at=created,
        updated_at=updated,
        closed_at=None if is_open else updated,
    )


def parse_ticker(raw: dict[str, Any], market: MarketInfo) -> PriceTick:
    last = positive(raw.get("last")) or positive(raw.get("markPx"))
    if last is None:
        raise ValueError(f"ticker for {market.symbol} has no last price")
    return PriceTick(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        last=last,
        bid=positive(raw.get("bidPx")),
        ask=positive(raw.get("askPx")),
        mark=positive(raw.get("markPx")),
        timestamp=ms_to_dt(raw.get("ts")) or utc_now(),
    )


def parse_mark_price(raw: dict[str, Any], market: MarketInfo) -> PriceTick:
    """A ``mark-price`` channel entry (``markPx``, ``ts``): the tick's last and mark are both the mark."""
    mark = positive(raw.get("markPx"))
    if mark is None:
        raise ValueError(f"mark price for {market.symbol} has no markPx")
    return PriceTick(
        exchange=EXCHANGE.value,
        symbol=market.symbol,
        last=mark,
        bid=None,
        ask=None,
        mark=mark,
        timestamp=ms_to_dt(raw.get("ts")) or utc_now(),
    )


def parse_balance(info: Any) -> dict[str, Decimal]:
    """Equity per currency from GET account/balance (``data[0].details[].eq``)."""
    out: dict[str, Decimal] = {}
    data = info.get("data") if isinstance(info, dict) else None
    for account in data or []:
        for d in account.get("details") or []:
            ccy = d.get("ccy")
            value = dec(d.get("eq"))
            if value is None:
                value = dec(d.get("cashBal"))
            if ccy and value is not None:
                out[str(ccy)] = value
    return out
