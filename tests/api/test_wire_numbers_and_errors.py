"""Responses (issue 12 item 15): decimals never in exponent notation, percentages with 2 decimals, and an
unknown order on a GET is a 404 that does not blame a request body."""

from __future__ import annotations

import re

from .conftest import Api


async def test_an_unknown_order_is_a_404_without_a_body_location(api: Api) -> None:
    r = await api.client.get("/api/v1/orders/demo/okx/no-such-order")
    assert r.status_code == 404, r.text
    assert "body" not in r.text
    assert "no-such-order" in r.json()["detail"]


async def test_order_responses_use_plain_decimals(api: Api) -> None:
    api.engine.set_price("BTC-USDT-SWAP", "60000")
    await api.onboard("n1")
    r = await api.client.post(
        "/api/v1/orders",
        json={"user_id": "n1", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "side": "buy",
              "order_type": "limit", "quantity": "0.01", "price": "50000"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["fill_percentage"] == "0.00"
    order_id = r.json()["exchange_order_id"]
    for url in ("/api/v1/orders/n1/okx/open", f"/api/v1/orders/n1/okx/{order_id}"):
        text = (await api.client.get(url)).text
        assert not re.search(r'"\d+(\.\d+)?[eE][+-]?\d+"', text), text
        assert '"fill_percentage":"0.00"' in text.replace(" ", ""), text
