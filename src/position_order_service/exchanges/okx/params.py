"""What OKX is sent: ccxt ``create_order`` params (contracts, unified algo params, hedge-mode posSide), the
client order id rule, and the order types asked for when listing pending algo orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...domain.enums import OrderType, PositionSide, TimeInForce
from ...domain.market import OrderRequest
from ..common import ClientIdRule, conditional_params, fmt

# 1-32 letters and digits; a dashed uuid loses its dashes
CLIENT_IDS = ClientIdRule("A-Za-z0-9", 32, strip_dashes=True)

# what fetch_open_orders asks orders-algo-pending for (OKX wants one ordType per request; conditional and
# oco are asked apart so a venue that does not accept "conditional,oco" still answers)
OPEN_ALGO_TYPES = ("conditional", "oco", "trigger", "move_order_stop")


def order_params(
    req: OrderRequest, contracts: Decimal, client_order_id: str, position_side: PositionSide | None
) -> tuple[str, str, str | None, dict[str, Any]]:
    """(ccxt type, amount in contracts, price, params) for ``create_order``.

    Algo orders route through ccxt's unified params: stopLossPrice/takeProfitPrice (ordType conditional),
    triggerPrice (trigger), trailingPercent in PERCENT (ccxt sends callbackRatio = percent / 100) with
    ``activePx`` passed raw. Hedge mode sends posSide and no reduceOnly (OKX rejects it there)."""
    params: dict[str, Any] = {"clientOrderId": client_order_id}
    if position_side is not None:
        params["positionSide"] = position_side.value
    elif req.reduce_only:
        params["reduceOnly"] = True
    amount = fmt(contracts)
    t = req.order_type
    price = None if req.price is None else fmt(req.price)
    if t is OrderType.MARKET:
        return "market", amount, None, params
    if t is OrderType.LIMIT:
        if req.post_only or req.time_in_force is TimeInForce.POST_ONLY:
            params["postOnly"] = True
        elif req.time_in_force is TimeInForce.IOC:
            params["timeInForce"] = "IOC"
        elif req.time_in_force is TimeInForce.FOK:
            params["timeInForce"] = "FOK"
        return "limit", amount, price, params
    params["algoClOrdId"] = client_order_id
    return conditional_params(req, amount, price, params, "activePx")
