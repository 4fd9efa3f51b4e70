"""Order endpoints: POST/GET/DELETE /fapi/v1/order, openOrder(s), allOrders, allOpenOrders, userTrades.

Conditional types (STOP*, TAKE_PROFIT*, TRAILING_STOP_MARKET) are refused here with -4120, as Binance does
since its algo service took them over: they go to /fapi/v1/algoOrder (see ``rest_algo``).
"""

from __future__ import annotations

from typing import Any

from ..engine import OPEN_STATES, EngineError, Order, OrderEvent, OrdType
from .auth import Caller
from .errors import BinanceError, from_engine, unknown_order
from .filters import check_client_id, check_price, check_quantity, position_side, side_param
from .front import Front
from .params import Params
from .rest_format import order as order_json
from .rest_format import trade as trade_json

__all__ = [
    "ALGO_ORDER_TYPES",
    "all_orders",
    "cancel_all",
    "cancel_order",
    "get_open_order",
    "get_order",
    "modify_order",
    "open_orders",
    "place_order",
    "user_trades",
]

ALGO_ORDER_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
_TIF = {"GTC": OrdType.LIMIT, "IOC": OrdType.IOC, "FOK": OrdType.FOK, "GTX": OrdType.POST_ONLY}
_MAX_LIMIT = 1000
_DEFAULT_LIMIT = 500


def _limit(p: Params) -> int:
    limit = p.opt_int("limit") or _DEFAULT_LIMIT
    return min(limit, _MAX_LIMIT)


def place_order(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    side = side_param(p)
    typ = p.req_str("type")
    if typ in ALGO_ORDER_TYPES:
        raise BinanceError(
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        )
    if typ not in ("LIMIT", "MARKET"):
        raise BinanceError(-1116, "Invalid orderType.")
    hedged = front.hedged(caller)
    pos_side = position_side(p, hedged)
    reduce_only = p.opt_bool("reduceOnly") or False
    if hedged and reduce_only:
        raise BinanceError(-1106, "Parameter 'reduceOnly' sent when not required.")
    if p.opt_bool("closePosition"):
        raise BinanceError(-1106, "Parameter 'closePosition' sent when not required.")
    market = typ == "MARKET"
    qty = p.req_decimal("quantity")
    check_quantity(inst, qty, market)
    price = None
    if market:
        p.reject(("price",))
        ord_type = OrdType.MARKET
    else:
        price = p.req_decimal("price")
        check_price(inst, price)
        tif = p.req_str("timeInForce")
        ord_type_or_none = _TIF.get(tif)
        if ord_type_or_none is None:
            raise BinanceError(-1115, "Invalid timeInForce.")
        ord_type = ord_type_or_none
    client_id = p.opt_str("newClientOrderId")
    check_client_id(client_id)
    resp_type = p.enum("newOrderRespType", ("ACK", "RESULT")) or "ACK"
    batch = front.engine.place_order(
        caller.api_key,
        inst.inst_id,
        side,
        qty,
        ord_type=ord_type,
        px=price,
        pos_side=pos_side,
        reduce_only=reduce_only,
        client_order_id=client_id,
    )
    placed: Order | None = batch.order
    if resp_type == "ACK":
        first = next((e for e in batch if type(e) is OrderEvent), None)
        if first is not None:
            placed = first.order
    assert placed is not None
    return order_json(placed, with_time=False)


def _ids(p: Params) -> tuple[str | None, str | None]:
    order_id = p.opt_int("orderId")
    client_id = p.opt_str("origClientOrderId")
    if order_id is None and client_id is None:
        raise BinanceError(
            -1102, "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!"
        )
    return (None if order_id is None else str(order_id)), client_id


def _find(front: Front, caller: Caller, p: Params) -> Order:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    order_id, client_id = _ids(p)
    try:
        found = front.engine.get_order(caller.api_key, order_id=order_id, client_order_id=client_id)
    except EngineError as exc:
        raise from_engine(exc) from None
    if found.inst_id != inst.inst_id:
        raise unknown_order(cancel=False)
    return found


def get_order(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    return order_json(_find(front, caller, p))


def get_open_order(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    found = _find(front, caller, p)
    if found.state not in OPEN_STATES:
        raise unknown_order(cancel=False)
    return order_json(found)


def cancel_order(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    order_id, client_id = _ids(p)
    batch = front.engine.cancel_order(
        caller.api_key, order_id=order_id, client_order_id=client_id, inst_id=inst.inst_id
    )
    assert batch.order is not None
    return order_json(batch.order)


def cancel_all(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    front.engine.cancel_all(caller.api_key, inst.inst_id)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def open_orders(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    inst = front.symbol_param(p, required=False)
    orders = front.engine.open_orders(caller.api_key, None if inst is None else inst.inst_id)
    return [order_json(o) for o in orders]


def all_orders(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    from_id = p.opt_int("orderId")
    start = p.opt_int("startTime")
    end = p.opt_int("endTime")
    limit = _limit(p)
    engine = front.engine
    orders = engine.open_orders(caller.api_key, inst.inst_id) + engine.order_history(
        caller.api_key, inst.inst_id
    )
    orders.sort(key=lambda o: int(o.order_id))
    picked = [
        o
        for o in orders
        if (from_id is None or int(o.order_id) >= from_id)
        and (start is None or o.created_ms >= start)
        and (end is None or o.created_ms <= end)
    ]
    picked = picked[:limit] if from_id is not None else picked[-limit:]
    return [order_json(o) for o in picked]


def user_trades(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    order_id = p.opt_int("orderId")
    from_id = p.opt_int("fromId")
    start = p.opt_int("startTime")
    end = p.opt_int("endTime")
    if from_id is not None and (start is not None or end is not None):
        raise BinanceError(-4062, "Invalid combination of parameters: fromId with startTime or endTime.")
    limit = _limit(p)
    fills = list(reversed(front.engine.fills(caller.api_key, inst.inst_id)))
    picked = [
        f
        for f in fills
        if (order_id is None or int(f.order_id) == order_id)
        and (from_id is None or int(f.trade_id) >= from_id)
        and (start is None or f.ts >= start)
        and (end is None or f.ts <= end)
    ]
    picked = picked[:limit] if from_id is not None else picked[-limit:]
    return [trade_json(f) for f in picked]


def modify_order(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    """PUT /fapi/v1/order: new quantity and price of an open LIMIT order (its side must be repeated)."""
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    order_id, client_id = _ids(p)
    side = side_param(p)
    qty = p.req_decimal("quantity")
    price = p.req_decimal("price")
    check_quantity(inst, qty, False)
    check_price(inst, price)
    engine = front.engine
    try:
        current = engine.get_order(caller.api_key, order_id=order_id, client_order_id=client_id)
    except EngineError as exc:
        raise from_engine(exc) from None
    if current.inst_id != inst.inst_id or current.state not in OPEN_STATES:
        raise unknown_order(cancel=False)
    if current.side is not side:
        raise BinanceError(-1130, "Data sent for parameter 'side' is not valid.")
    if current.sz == qty and current.px == price:
        raise BinanceError(-5027, "No need to modify the order.")
    batch = engine.amend_order(
        caller.api_key, order_id=current.order_id, inst_id=inst.inst_id, new_sz=qty, new_px=price
    )
    assert batch.order is not None
    return order_json(batch.order)
