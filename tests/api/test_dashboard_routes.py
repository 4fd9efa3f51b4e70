"""The read routes the dashboard needs (api/dashboard.py): who the caller is, the accounts it may read with
their stream health and counts, and the service's figures; in OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from position_order_service.app import create_app

from ..conftest import _cleanup
from .conftest import Api, api_settings

SYMBOL = "BTC-USDT-SWAP"
ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"


def by_user(accounts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["user_id"]: a for a in accounts}


async def test_accounts_show_stream_health_and_open_counts(api: Api) -> None:
    api.engine.set_price(SYMBOL, "60000")
    await api.onboard("acc1")
    c = api.client
    opened = await c.post("/api/v1/positions/open", json={"user_id": "acc1", "exchange": "okx", "symbol": SYMBOL,
                          "side": "long", "size": "0.1", "stop_loss": "55000"})  # fmt: skip
    assert opened.status_code == 201, opened.text
    order = {"user_id": "acc1", "exchange": "okx", "symbol": SYMBOL, "side": "buy", "order_type": "limit",
             "quantity": "0.01", "price": "50000"}  # fmt: skip
    placed = await c.post("/api/v1/orders", json=order)
    assert placed.status_code == 201
    stop = {"user_id": "acc1", "exchange": "okx", "symbol": SYMBOL, "side": "long", "callback_rate": 0.02}
    assert (await c.post("/api/v1/trailing-stops", json=stop)).status_code == 201
    rule = {"user_id": "acc1", "exchange": "okx", "trigger_order_id": placed.json()["exchange_order_id"],
            "cancel_order_ids": [opened.json()["stop_loss_order"]["exchange_order_id"]], "condition": "filled"}  # fmt: skip
    assert (await c.post("/api/v1/conditional-rules", json=rule)).status_code == 201
    assert (await c.post("/api/v1/users/nokeys/activate", json={"exchanges": ["okx"]})).status_code == 200

    r = await c.get("/api/v1/accounts")
    assert r.status_code == 200
    accounts = by_user(r.json()["accounts"])
    assert r.json()["count"] == len(accounts) == 3  # demo, acc1, nokeys
    a = accounts["acc1"]
    assert a["connected"] is True and a["state"] == "healthy" and a["down_seconds"] == 0
    assert a["last_reconcile_at"] is not None and a["last_error"] is None
    assert (a["positions"], a["open_orders"], a["trailing_stops"], a["rules"]) == (1, 2, 1, 1)  # SL + limit
    broken = accounts["nokeys"]  # no credentials stored: down, with the reason
    assert (
        broken["connected"] is False and broken["state"] == "error" and "credentials" in broken["last_error"]
    )

    figures = (await c.get("/api/v1/service")).json()
    assert figures["redis_reachable"] is True and figures["events_total"] > 0
    assert figures["accounts"] == 3 and figures["accounts_connected"] == 2
    assert figures["history_writer_lag"] is not None and figures["uptime_s"] > 0

    session = (await c.get("/api/v1/session")).json()
    assert session == {"token_required": False, "authenticated": True, "users": None, "detail": None}
    paths = (await c.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/accounts", "/api/v1/service", "/api/v1/session"):
        assert "200" in paths[path]["get"]["responses"], path


async def test_a_token_sees_only_its_accounts_and_session_never_401s(
    real_redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    app = create_app(
        api_settings(real_redis_url, key_prefix, tmp_path, api_tokens=f"{ADMIN}=*;{ALICE}=alice")
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                admin, alice = {"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {ALICE}"}
                assert (
                    await c.post("/api/v1/users/alice/activate", json={"exchanges": ["okx"]}, headers=alice)
                ).status_code == 200
                assert set(by_user((await c.get("/api/v1/accounts", headers=admin)).json()["accounts"])) == {
                    "demo",
                    "alice",
                }
                assert set(by_user((await c.get("/api/v1/accounts", headers=alice)).json()["accounts"])) == {
                    "alice"
                }
                for route in ("/api/v1/accounts", "/api/v1/service"):
                    r = await c.get(route)
                    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
                assert (await c.get("/api/v1/session")).json() == {
                    "token_required": True, "authenticated": False, "users": [],
                    "detail": "missing bearer token (Authorization: Bearer <token>)",
                }  # fmt: skip
                wrong = await c.get(
                    "/api/v1/session", headers={"Authorization": "Bearer wrong-token-0123456789"}
                )
                assert wrong.status_code == 200 and wrong.json()["detail"] == "invalid token"
                mine = (await c.get("/api/v1/session", headers=alice)).json()
                assert mine["authenticated"] is True and mine["users"] == ["alice"]
    finally:
        redis = Redis.from_url(real_redis_url)
        await _cleanup(redis, key_prefix)
        await redis.aclose()


async def test_dashboard_page_and_assets_are_served_from_the_package(api: Api) -> None:
    page = await api.client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "connect-src 'self'" in csp
    for asset in (
        "js/main.js",
        "js/feed.js",
        "app.css",
        "vendor/htm-preact.module.js",
        "vendor/lightweight-charts.mjs",
    ):
        r = await api.client.get(f"/dashboard/static/{asset}")
        assert r.status_code == 200 and len(r.content) > 100, asset
        assert "https://" not in r.text.split("*/", 1)[-1] or asset.startswith("vendor/"), asset
    assert (await api.client.get("/dashboard/static/../app.py")).status_code == 404
