"""The seed README's curl examples, as written, against the service with its simulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from .conftest import Api

SYMBOL = "BTC-USDT-SWAP"


async def test_health_and_status(api: Api) -> None:
    r = await api.client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    status = (await api.client.get("/api/v1/status")).json()
    assert status["redis"]["ok"] is True and status["simulator"].startswith("http://127.0.0.1:")
    demo = [u for u in status["users"] if u["user_id"] == "demo"]
    assert demo and demo[0]["exchange"] == "okx"


async def test_seed_curl_examples(api: Api) -> None:
    api.engine.set_price(SYMBOL, "60000")
    key = await api.onboard("user123")
    api.engine.place_order(key, SYMBOL, "buy", "10")  # a 0.1 BTC long for the stop-loss to protect
    # a stop-loss placed with client order id 12345, so the seed's cancel example has its order
    r = await api.client.post(
        "/api/v1/orders",
        json={
            "user_id": "user123", "exchange": "okx", "symbol": SYMBOL, "side": "sell", "order_type": "stop_loss",
            "quantity": "0.1", "trigger_price": "55000", "reduce_only": True, "client_order_id": "12345",
        },
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert len(api.engine.open_algos(key, SYMBOL)) == 1

    # A. cancel (exactly the seed's body)
    r = await api.client.post(
        "/api/v1/orders/cancel",
        json={
            "user_id": "user123",
            "exchange": "okx",
            "symbol": "BTC-USDT-SWAP",
            "order_id": "12345",
            "order_type": "stop_loss",
            "side": "buy",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["cancelled"] is True and r.json()["order"]["status"] == "cancelled"
    assert api.engine.open_algos(key, SYMBOL) == []

    # B. trailing stop
    r = await api.client.post(
        "/api/v1/trailing-stops",
        json={
            "user_id": "user123",
            "exchange": "okx",
            "symbol": "BTC-USDT-SWAP",
            "side": "long",
            "activation_price": 50000,
            "callback_rate": 0.02,
            "size": 0.1,
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["activation_price"] == "50000" and body["callback_rate"] == "0.02" and body["size"] == "0.1"
    assert body["state"] in ("pending", "active")

    # C. conditional rule
    r = await api.client.post(
        "/api/v1/conditional-rules",
        json={
            "user_id": "user123",
            "exchange": "okx",
            "trigger_order_id": "order_A",
            "cancel_order_ids": ["order_B", "order_C"],
            "condition": "filled",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "active" and r.json()["cancel_order_ids"] == ["order_B", "order_C"]

    # D. positions
    async def has_position() -> bool:
        r = await api.client.get("/api/v1/positions/user123/okx?symbol=BTC-USDT-SWAP")
        return r.status_code == 200 and r.json()["count"] == 1

    for _ in range(100):
        if await has_position():
            break
        await asyncio.sleep(0.05)
    r = await api.client.get("/api/v1/positions/user123/okx?symbol=BTC-USDT-SWAP")
    p = r.json()["positions"][0]
    assert p["side"] == "long" and Decimal(p["size"]) == Decimal("0.1") and p["symbol"] == SYMBOL

    # E. open orders
    r = await api.client.get("/api/v1/orders/user123/okx/open?symbol=BTC-USDT-SWAP")
    assert r.status_code == 200 and r.json()["count"] == 0

    # the seed's activation / deactivation / active list
    r = await api.client.get("/api/v1/users/active")
    assert "user123" in [u["user_id"] for u in r.json()["users"]]
    r = await api.client.post("/api/v1/users/user123/deactivate")
    assert r.status_code == 200
    assert api.ctx.accounts.get("user123", "okx") is None


async def test_legacy_position_open_endpoint_through_the_service(api: Api) -> None:
    """The migration guide's phase 4 API check, on the wired service (over ccxt and the OKX simulator)."""
    api.engine.set_price(SYMBOL, "60000")
    await api.onboard("test")
    r = await api.client.post(
        "/position/open",
        json={"user_id": "test", "symbol": "BTC-USDT-SWAP", "direction": "long", "size": 0.1},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["symbol"] == "BTC-USDT-SWAP" and body["side"] == "long" and body["size"] == 0.1
