"""Batch endpoints: POST /fapi/v1/batchOrders (up to 5 orders) and DELETE /fapi/v1/batchOrders (up to 10).

``batchOrders`` is a JSON array of order objects (ccxt sends it raw, not URL-encoded, and signs that raw
text); the cancel lists are JSON arrays in ``orderIdList`` / ``origClientOrderIdList`` (ccxt spells the first
``orderidlist``). Each element succeeds or fails on its own: the reply lists orders and
``{"code", "msg"}`` objects in request order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..engine import EngineError
from .auth import Caller
from .errors import BinanceError, from_engine, invalid_data
from .front import Front
from .params import Params
from .rest_orders import cancel_order, place_order

__all__ = ["batch_cancel", "batch_place"]

MAX_BATCH_ORDERS = 5
MAX_BATCH_CANCELS = 10


def _wire_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_list(p: Params, names: tuple[str, ...]) -> list[Any] | None:
    lowered = {k.lower(): v for k, v in p.raw.items()}
    for name in names:
        raw = lowered.get(name.lower())
        if raw:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise invalid_data(name) from None
            if not isinstance(value, list):
                raise invalid_data(name)
            return value
    return None


def _each(
    front: Front,
    caller: Caller,
    items: list[Params],
    fn: Callable[[Front, Caller, Params], Any],
    cancel: bool,
) -> list[Any]:
    out: list[Any] = []
    for params in items:
        try:
            out.append(fn(front, caller, params))
        except BinanceError as exc:
            out.append(exc.body())
        except EngineError as exc:
            out.append(from_engine(exc, cancel=cancel).body())
    return out


def batch_place(front: Front, caller: Caller, p: Params) -> list[Any]:
    orders = _json_list(p, ("batchOrders",))
    if orders is None:
        raise BinanceError(
            -1102, "Mandatory parameter 'batchOrders' was not sent, was empty/null, or malformed."
        )
    if not 1 <= len(orders) <= MAX_BATCH_ORDERS or not all(isinstance(o, dict) for o in orders):
        raise invalid_data("batchOrders")
    items = [Params({str(k): _wire_value(v) for k, v in o.items()}) for o in orders]
    return _each(front, caller, items, place_order, cancel=False)


def batch_cancel(front: Front, caller: Caller, p: Params) -> list[Any]:
    symbol = p.req_str("symbol")
    ids = _json_list(p, ("orderIdList",))
    client_ids = _json_list(p, ("origClientOrderIdList",))
    if not ids and not client_ids:
        raise BinanceError(
            -1102, "Param 'orderIdList' or 'origClientOrderIdList' must be sent, but both were empty/null!"
        )
    key, values = ("orderId", ids) if ids else ("origClientOrderId", client_ids)
    assert values is not None
    if len(values) > MAX_BATCH_CANCELS:
        raise invalid_data("orderIdList" if ids else "origClientOrderIdList")
    items = [Params({"symbol": symbol, key: _wire_value(v)}) for v in values]
    return _each(front, caller, items, cancel_order, cancel=True)
