"""What Binance USD-M is sent: ccxt ``create_order`` params (base-currency sizes, unified algo params routed
to /fapi/v1/algoOrder, hedge-mode positionSide) and the client order id rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...domain.enums import OrderType, PositionSide, TimeInForce
from ...domain.market import OrderRequest
from ..common import ClientIdRule, conditional_params, fmt

# 1-36 of [.A-Z:/a-z0-9_-]
CLIENT_IDS = ClientIdRule(".A-Z:/a-z0-9_-", 36)


def order_params(
    req: OrderRequest, amount: Decimal, client_order_id: str, position_side: PositionSide | None
) -> tuple[str, str, str | None, dict[str, Any]]:
    """(ccxt type, amount, price, params) for ``create_order``. Conditional orders go to /fapi/v1/algoOrder
    (ccxt routes any of stopLossPrice / takeProfitPrice / triggerPrice / trailingPercent there, with the client
    id as clientAlgoId). trailingPercent is PERCENT; the activation price goes as trailingTriggerPrice.
    Hedge mode sends positionSide and never reduceOnly (Binance rejects it there)."""
    params: dict[str, Any] = {"clientOrderId": client_order_id}
    if position_side is not None:
        params["positionSide"] = "LONG" if position_side is PositionSide.LONG else "SHORT"
    elif req.reduce_only:
        params["reduceOnly"] = True
    qty = fmt(amount)
    t = req.order_type
    price = None if req.price is None else fmt(req.price)
    if t is OrderType.MARKET:
        return "market", qty, None, params
    if t is OrderType.LIMIT:
        if req.post_only or req.time_in_force is TimeInForce.POST_ONLY:
            params["timeInForce"] = "GTX"
        else:
            params["timeInForce"] = {TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}.get(
                req.time_in_force, "GTC"
            )
        return "limit", qty, price, params
    return conditional_params(req, qty, price, params, "trailingTriggerPrice")
