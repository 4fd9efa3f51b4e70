"""Algo (conditional) order endpoints: POST/GET/DELETE /fapi/v1/algoOrder, openAlgoOrders, allAlgoOrders,
DELETE algoOpenOrders.

Mapping onto the engine (``side`` = side of the order placed on trigger):
- STOP_MARKET / STOP -> conditional with an SL leg at ``triggerPrice`` (market / limit ``price``):
  a SELL fires when the price falls to the trigger, a BUY when it rises to it;
- TAKE_PROFIT_MARKET / TAKE_PROFIT -> conditional with a TP leg (SELL fires on a rise, BUY on a fall);
- TRAILING_STOP_MARKET -> move_order_stop, ``callbackRate`` percent (0.1..10) -> fraction, ``activatePrice``.
``closePosition=true`` (STOP_MARKET / TAKE_PROFIT_MARKET only) closes the whole position when it fires.
``workingType`` MARK_PRICE triggers on the mark price, CONTRACT_PRICE (default) on the last price.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..engine import AlgoOrder, AlgoState, AlgoType, EngineError, Order, SimEngine, TriggerPxType
from .auth import Caller
from .errors import BinanceError, from_engine, invalid_data, mandatory
from .filters import check_client_id, check_price, check_quantity, check_stop_price, position_side, side_param
from .front import Front
from .params import Params
from .rest_format import algo_order as algo_json

__all__ = [
    "all_algo_orders",
    "cancel_algo",
    "cancel_all_algos",
    "child_order",
    "get_algo",
    "open_algo_orders",
    "place_algo",
]

_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
_MIN_CALLBACK = Decimal("0.1")
_MAX_CALLBACK = Decimal(10)
_HUNDRED = Decimal(100)


def child_order(engine: SimEngine, api_key: str, algo: AlgoOrder) -> Order | None:
    """The order a triggered algo placed, if still known."""
    if algo.state is not AlgoState.EFFECTIVE or algo.order_id is None:
        return None
    try:
        return engine.get_order(api_key, order_id=algo.order_id)
    except EngineError:
        return None


def place_algo(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    if p.enum("algoType", ("CONDITIONAL",)) is None:
        raise mandatory("algoType")
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    side = side_param(p)
    typ = p.req_str("type")
    if typ not in _TYPES:
        raise BinanceError(-1116, "Invalid orderType.")
    hedged = front.hedged(caller)
    pos_side = position_side(p, hedged)
    working = p.enum("workingType", ("CONTRACT_PRICE", "MARK_PRICE")) or "CONTRACT_PRICE"
    p.enum("timeInForce", ("GTC", "IOC", "FOK", "GTX"), BinanceError(-1115, "Invalid timeInForce."))
    reduce_only = p.opt_bool("reduceOnly") or False
    close = p.opt_bool("closePosition") or False
    if hedged and reduce_only:
        raise BinanceError(-1106, "Parameter 'reduceOnly' sent when not required.")
    if close:
        if typ not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise BinanceError(-4136, f"Target strategy invalid for orderType {typ},closePosition true")
        if reduce_only:
            raise BinanceError(-1106, "Parameter 'reduceOnly' sent when not required.")
        p.reject(("quantity",))
        qty = None
    else:
        qty = p.req_decimal("quantity")
        check_quantity(inst, qty, typ.endswith("MARKET"))
    price = None
    if typ in ("STOP", "TAKE_PROFIT"):
        price = p.req_decimal("price")
        check_price(inst, price)
    else:
        p.reject(("price",))
    client_id = p.opt_str("clientAlgoId")
    check_client_id(client_id)
    px_type = TriggerPxType.MARK if working == "MARK_PRICE" else TriggerPxType.LAST
    engine = front.engine
    if typ == "TRAILING_STOP_MARKET":
        p.reject(("triggerPrice",))
        rate = p.req_decimal("callbackRate")
        if not _MIN_CALLBACK <= rate <= _MAX_CALLBACK:
            raise invalid_data("callbackRate")
        activate = p.opt_decimal("activatePrice")
        if activate is not None:
            check_stop_price(inst, activate)
        batch = engine.place_algo(
            caller.api_key, inst.inst_id, AlgoType.MOVE_ORDER_STOP, side,
            sz=qty, pos_side=pos_side, reduce_only=reduce_only,
            callback_ratio=rate / _HUNDRED, active_px=activate,
            trigger_px_type=px_type, client_algo_id=client_id,
        )  # fmt: skip
    else:
        p.reject(("callbackRate", "activatePrice"))
        trigger = p.req_decimal("triggerPrice")
        check_stop_price(inst, trigger)
        stop = typ.startswith("STOP")
        batch = engine.place_algo(
            caller.api_key, inst.inst_id, AlgoType.CONDITIONAL, side,
            sz=qty, pos_side=pos_side, reduce_only=reduce_only, close_position=close,
            sl_trigger_px=trigger if stop else None, sl_ord_px=price if stop else None,
            tp_trigger_px=None if stop else trigger, tp_ord_px=None if stop else price,
            trigger_px_type=px_type, client_algo_id=client_id,
        )  # fmt: skip
    assert batch.algo is not None
    return algo_json(batch.algo)


def _algo_ids(p: Params) -> tuple[str | None, str | None]:
    algo_id = p.opt_int("algoId")
    client_id = p.opt_str("clientAlgoId")
    if algo_id is None and client_id is None:
        raise BinanceError(-1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!")
    return (None if algo_id is None else str(algo_id)), client_id


def cancel_algo(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    algo_id, client_id = _algo_ids(p)
    batch = front.engine.cancel_algo(caller.api_key, algo_id=algo_id, client_algo_id=client_id)
    assert batch.algo is not None
    a = batch.algo
    return {
        "algoId": int(a.algo_id),
        "clientAlgoId": a.client_algo_id or f"sim_algo_{a.algo_id}",
        "code": "200",
        "msg": "success",
    }


def get_algo(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    algo_id, client_id = _algo_ids(p)
    try:
        a = front.engine.get_algo(caller.api_key, algo_id=algo_id, client_algo_id=client_id)
    except EngineError as exc:
        raise from_engine(exc) from None
    return algo_json(a, child_order(front.engine, caller.api_key, a))


def open_algo_orders(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    inst = front.symbol_param(p, required=False)
    algos = front.engine.open_algos(caller.api_key, None if inst is None else inst.inst_id)
    return [algo_json(a) for a in algos]


def all_algo_orders(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    engine = front.engine
    algos = engine.open_algos(caller.api_key, inst.inst_id) + engine.algo_history(
        caller.api_key, inst.inst_id
    )
    algos.sort(key=lambda a: int(a.algo_id))
    start = p.opt_int("startTime")
    end = p.opt_int("endTime")
    from_id = p.opt_int("algoId")
    limit = min(p.opt_int("limit") or 500, 1000)
    picked = [
        a
        for a in algos
        if (from_id is None or int(a.algo_id) >= from_id)
        and (start is None or a.created_ms >= start)
        and (end is None or a.created_ms <= end)
    ]
    picked = picked[:limit] if from_id is not None else picked[-limit:]
    return [algo_json(a, child_order(engine, caller.api_key, a)) for a in picked]


def cancel_all_algos(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    engine = front.engine
    for a in engine.open_algos(caller.api_key, inst.inst_id):
        engine.cancel_algo(caller.api_key, algo_id=a.algo_id)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}
