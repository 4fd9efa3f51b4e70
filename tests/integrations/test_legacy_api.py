"""The legacy endpoint POST /position/open (migration guide 2.3 and phase 4 check 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from position_order_service.api.errors import install_error_handlers
from position_order_service.config import Settings
from position_order_service.integrations.context import CommandServices
from position_order_service.integrations.hyperrsi import HYPERRSIAdapter
from position_order_service.integrations.legacy_api import router
from tests.services.harness import SYMBOL, Harness


def make_app(adapter: HYPERRSIAdapter, use_shared_manager: bool = True) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.ctx = SimpleNamespace(
        hyperrsi=adapter, settings=Settings(use_shared_manager=use_shared_manager)
    )
    return app


@pytest.fixture
async def client(hyperrsi: HYPERRSIAdapter) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(hyperrsi))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_api_response_backward_compatible(h: Harness, client: httpx.AsyncClient) -> None:
    h.account("test")
    h.price("60000")
    await h.track("test")
    response = await client.post(
        "/position/open",
        json={"user_id": "test", "symbol": "BTC-USDT-SWAP", "direction": "long", "size": 0.1},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "symbol" in body and "side" in body
    assert body["symbol"] == SYMBOL and body["side"] == "long" and body["size"] == 0.1
    assert body["order_id"] and body["last_filled_price"] == body["entry_price"] > 60000


async def test_full_legacy_request_with_protection_and_dca(h: Harness, client: httpx.AsyncClient) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    request = {
        "user_id": "u1", "symbol": SYMBOL, "direction": "long", "size": 0.1, "leverage": 10.0,
        "stop_loss": 55000.0, "take_profit": [62000.0, 64000.0], "is_DCA": False, "is_hedge": False,
        "hedge_tp_price": None, "hedge_sl_price": None, "order_concept": "ignored by the service",
    }  # fmt: skip
    response = await client.post("/position/open", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["sl_price"] == 55000.0 and body["tp_prices"] == [62000.0, 64000.0] and body["leverage"] == 10.0
    )
    duplicate = await client.post("/position/open", json=request)
    assert duplicate.status_code == 409 and duplicate.json()["detail"][0]["loc"] == ["body", "direction"]
    dca = await client.post("/position/open", json={**request, "is_DCA": True, "take_profit": None})
    assert dca.status_code == 200 and dca.json()["size"] == 0.2
    assert sorted(a.sz or 0 for a in h.engine.open_algos(key, SYMBOL)) == [10, 10, 20]


async def test_bad_legacy_requests_name_the_field(h: Harness, client: httpx.AsyncClient) -> None:
    key = h.account("u2")
    h.price("60000")
    await h.track("u2")
    base = {"user_id": "u2", "symbol": SYMBOL, "direction": "long", "size": 0.1}
    bad = await client.post(
        "/position/open", json={**base, "take_profit": [62000, 63000], "tp_ratios": [0.5, 0.4]}
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "tp_ratios"]
    dca = await client.post("/position/open", json={**base, "is_DCA": True})
    assert dca.status_code == 404 and "DCA needs" in dca.json()["detail"][0]["msg"]
    invalid = await client.post("/position/open", json={**base, "direction": "sideways"})
    assert invalid.status_code == 422
    assert h.engine.order_history(key, SYMBOL) == [] and h.engine.open_algos(key, SYMBOL) == []


async def test_disabled_shared_manager_answers_503(hyperrsi: HYPERRSIAdapter) -> None:
    transport = httpx.ASGITransport(app=make_app(hyperrsi, use_shared_manager=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post(
            "/position/open", json={"user_id": "x", "symbol": SYMBOL, "direction": "long", "size": 0.1}
        )
    assert r.status_code == 503
    assert r.json() == {"detail": "shared manager disabled (USE_SHARED_MANAGER=false)"}


async def test_standalone_services_come_from_settings(
    redis_client: Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """services=None inside a bot process: built from the Redis client and Settings() (the environment)."""
    monkeypatch.setenv("KEY_PREFIX", key_prefix)
    monkeypatch.setenv("DUAL_SCHEMA_WRITE", "true")
    adapter = HYPERRSIAdapter(redis_client)
    try:
        assert adapter.store.keys.prefix == key_prefix and adapter.store.positions.dual_write
        assert not adapter.services.accounts.tracked(key_prefix, "okx")  # no account actor in a bot process
        assert adapter.enabled is Settings().use_shared_manager
        await adapter.set_cooldown("someone", 5)
        assert await adapter.cooldown_for("someone") == 5
    finally:
        await adapter.close()
    services = CommandServices.from_settings(
        redis_client, Settings(key_prefix=key_prefix, dual_schema_write=False)
    )
    assert not services.store.positions.dual_write
    await services.close()
