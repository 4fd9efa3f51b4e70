"""/health, /api/v1/status and /ready (issue 12 item 6); the feed's from_seq 0 (item 14)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from position_order_service.app import create_app

from .conftest import Api, api_settings, serving

ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"


@pytest.fixture
async def secured(real_redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = api_settings(real_redis_url, key_prefix, tmp_path, api_tokens=f"{ADMIN}=*;{ALICE}=alice")
    async with serving(settings) as api:
        yield api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_ready(client: httpx.AsyncClient, within: float = 20) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await client.get("/ready")
        if r.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            return r
        await asyncio.sleep(0.1)


async def test_health_is_open_and_carries_no_user_data(secured: Api) -> None:
    r = await secured.client.get("/health")
    assert r.status_code == 200
    assert set(r.json()) == {"status", "service", "timestamp"}
    assert "demo" not in r.text


async def test_status_needs_a_token_and_shows_only_the_tokens_users(secured: Api) -> None:
    c = secured.client
    assert (await c.get("/api/v1/status")).status_code == 401
    admin = await c.get("/api/v1/status", headers=bearer(ADMIN))
    assert admin.status_code == 200 and "demo" in [u["user_id"] for u in admin.json()["users"]]
    alice = await c.get("/api/v1/status", headers=bearer(ALICE))
    assert alice.status_code == 200
    assert alice.json()["users"] == [] and "demo" not in alice.text
    assert alice.json()["connections"]["tracked_users"] == 0


async def test_ready_reports_each_check_and_turns_503_when_one_fails(api: Api) -> None:
    r = await wait_ready(api.client)
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    assert checks["redis"]["ok"] and checks["history_writer"]["ok"] and checks["streams"]["ok"]
    # a tracked stream that is not connected makes the instance not ready, and says which
    actor = api.ctx.accounts.get("demo", "okx")
    assert actor is not None
    actor.health.state = "reconnecting"
    r = await api.client.get("/ready")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert "demo/okx" in r.json()["checks"]["streams"]["detail"]
    actor.health.state = "healthy"
    # the history writer stopped: not ready
    assert api.ctx.history_writer is not None and api.ctx._history_job is not None
    api.ctx.history_writer.stop()
    task = api.ctx._history_job.task
    assert task is not None
    await asyncio.wait_for(task, 10)
    r = await api.client.get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["history_writer"]["ok"] is False


def test_feed_from_seq_zero_replays_from_the_start_of_what_is_kept(
    real_redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    app = create_app(api_settings(real_redis_url, key_prefix, tmp_path))
    with TestClient(app) as client:
        ctx = app.state.ctx
        for i in range(3):
            client.portal.call(ctx.store.writer.emit, "zed", "", "fill.created", {"user_id": "zed", "i": i})  # type: ignore[union-attr]
        with client.websocket_connect("/api/v1/ws") as ws:
            ws.send_json({"op": "subscribe", "user_id": "zed", "from_seq": 0})
            assert ws.receive_json()["type"] == "subscribed"
            for i in range(3, 6):  # newer events: a feed that starts "from now" would get these first
                client.portal.call(
                    ctx.store.writer.emit, "zed", "", "fill.created", {"user_id": "zed", "i": i}
                )  # type: ignore[union-attr]
            assert [ws.receive_json()["seq"] for _ in range(3)] == [1, 2, 3]
