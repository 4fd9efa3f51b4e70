"""A venue that cannot answer now is an unknown outcome, never a refusal: the caller must resolve it by querying,
and retry loops (rule cancels, trailing closes) must keep going. Checked through the real ccxt client against the
simulator's fronts, with the venues' real error bodies (POST /sim/faults http_errors)."""

from __future__ import annotations

import pytest

from position_order_service.domain.enums import OrderSide, OrderType
from position_order_service.exchanges.base import ExchangeUnavailable

from .conftest import Harness, order_req

# Binance answers 5xx with -1001 / -1008, for which ccxt 4.5.90 raises a bare OperationFailed (not a
# NetworkError); OKX's 50013 "systems busy" comes with HTTP 200 and code 50013.
CASES = [
    ("ccxt-binance", "/fapi/v1/order", 503, "-1001"),
    ("ccxt-binance", "/fapi/v1/order", 503, "-1008"),
    ("ccxt-binance", "/fapi/v1/order", 429, "-1003"),
    ("ccxt-okx", "/api/v5/trade/", 503, "50001"),
    ("ccxt-okx", "/api/v5/trade/", 503, "50013"),
]


@pytest.mark.parametrize(("venue", "path", "status", "code"), CASES, indirect=["venue"])
async def test_a_busy_venue_is_an_unknown_outcome_not_a_refusal(
    venue: Harness, path: str, status: int, code: str
) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    await venue._control(
        "/sim/faults", {"http_errors": [{"path": path, "status": status, "code": code, "count": 1}]}
    )
    with pytest.raises(ExchangeUnavailable):
        await gw.create_order(order_req(venue.symbol, OrderSide.BUY, OrderType.MARKET, "0.01"))
