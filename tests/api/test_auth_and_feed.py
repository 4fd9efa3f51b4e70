"""Bearer tokens per user or admin; the live event feed with resume (SPEC 9; issue 5)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from position_order_service.app import create_app

from .conftest import Api, api_settings, serving, without_venue_limits

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"


@pytest.fixture
async def secured(real_redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = api_settings(real_redis_url, key_prefix, tmp_path, api_tokens=f"{ADMIN}=*;{ALICE}=alice")
    async with serving(settings, venue_limits=False) as api:
        yield api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_wrong_and_other_user_tokens_are_refused(secured: Api) -> None:
    c = secured.client
    assert (await c.get("/api/v1/positions/alice/okx")).status_code == 401
    assert (
        await c.get("/api/v1/positions/alice/okx", headers=bearer("wrong-token-0123456789"))
    ).status_code == 401
    assert (await c.get("/api/v1/positions/alice/okx", headers=bearer(ALICE))).status_code == 200
    r = await c.get("/api/v1/positions/bob/okx", headers=bearer(ALICE))
    assert r.status_code == 403 and "bob" in r.json()["detail"]
    assert (await c.get("/api/v1/positions/bob/okx", headers=bearer(ADMIN))).status_code == 200
    # body user ids are checked too
    order = {"user_id": "bob", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "side": "buy",
             "order_type": "market", "quantity": "0.01"}  # fmt: skip
    assert (await c.post("/api/v1/orders", json=order, headers=bearer(ALICE))).status_code == 403
    stop = {
        "user_id": "bob",
        "exchange": "okx",
        "symbol": "BTC-USDT-SWAP",
        "side": "long",
        "callback_rate": 0.02,
    }
    assert (await c.post("/api/v1/trailing-stops", json=stop, headers=bearer(ALICE))).status_code == 403
    assert (
        await c.post("/api/v1/users/bob/activate", json={"exchanges": ["okx"]}, headers=bearer(ALICE))
    ).status_code == 403
    # health stays open for probes
    assert (await c.get("/health")).status_code == 200


async def test_credentials_are_never_returned_or_logged(
    secured: Api, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"api_key": "AKEY-visible", "secret": "S3CRET-never-shown", "passphrase": "PASS-never-shown"}
    r = await secured.client.put("/api/v1/users/alice/credentials/okx", json=body, headers=bearer(ALICE))
    assert r.status_code == 204 and r.text == ""
    raw = await secured.ctx.redis.get(secured.ctx.store.keys.credentials("alice", "okx"))
    assert raw is not None and b"S3CRET" not in raw  # encrypted at rest
    bad = {"api_key": "k", "secret": "S3CRET-never-shown", "passphrase": "", "extra": 1}
    r = await secured.client.put("/api/v1/users/alice/credentials/okx", json=bad, headers=bearer(ALICE))
    assert r.status_code == 422 and "S3CRET" not in r.text
    status = await secured.client.get("/api/v1/status", headers=bearer(ADMIN))
    assert "S3CRET" not in status.text and "PASS-never" not in status.text
    assert "S3CRET" not in caplog.text and "PASS-never" not in caplog.text


def test_refuses_to_bind_elsewhere_without_tokens() -> None:
    env = {"PATH": "/usr/bin:/bin", "SIM": "off", "API_TOKENS": ""}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--host", "0.0.0.0", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2 and "refusing to serve on 0.0.0.0 without API_TOKENS" in proc.stderr


def test_live_feed_replays_from_a_seq_and_streams_new_events(
    real_redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    app = create_app(
        api_settings(real_redis_url, key_prefix, tmp_path, api_tokens=f"{ADMIN}=*;{ALICE}=alice")
    )
    with TestClient(app) as client:
        ctx = app.state.ctx
        without_venue_limits(ctx)
        engine = ctx.simulator.ctx.engine
        engine.set_price("BTC-USDT-SWAP", "60000")
        engine.create_account("k-alice", "s-alice", "p-alice", balances={"USDT": "100000"})
        h = bearer(ALICE)
        assert client.put("/api/v1/users/alice/credentials/okx", json={"api_key": "k-alice", "secret": "s-alice",
                          "passphrase": "p-alice"}, headers=h).status_code == 204  # fmt: skip
        assert (
            client.post("/api/v1/users/alice/activate", json={"exchanges": ["okx"]}, headers=h).status_code
            == 200
        )
        order = {"user_id": "alice", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "side": "buy",
                 "order_type": "limit", "quantity": "0.01", "price": "50000"}  # fmt: skip
        first = client.post("/api/v1/orders", json=order, headers=h)
        assert first.status_code == 201, first.text
        with client.websocket_connect(f"/api/v1/ws?token={ALICE}") as ws:
            ws.send_json({"op": "subscribe", "user_id": "bob"})
            assert ws.receive_json()["type"] == "error"  # not alice's to read
            ws.send_json({"op": "subscribe", "user_id": "alice", "from_seq": 1})
            assert ws.receive_json()["type"] == "subscribed"
            replayed = ws.receive_json()
            assert replayed["type"] == "event" and replayed["seq"] == 1
            assert replayed["event"]["event_type"] == "order.created"
            last_seq = replayed["seq"]
        # disconnected: another order happens meanwhile; the reconnecting client resumes after its last seq
        order["price"] = "49000"
        assert client.post("/api/v1/orders", json=order, headers=h).status_code == 201
        with client.websocket_connect("/api/v1/ws", headers=h) as ws:
            ws.send_json({"op": "subscribe", "user_id": "alice", "from_seq": last_seq + 1})
            assert ws.receive_json()["type"] == "subscribed"
            seqs, prices = [], []
            while Decimal(49000) not in prices and len(seqs) < 20:
                msg = ws.receive_json()
                seqs.append(msg["seq"])
                prices.append(Decimal(msg["event"].get("price") or 0))
            assert Decimal(49000) in prices
            assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))  # no gap, nothing repeated
        # accepted, then closed with 4401 (a refusal in the handshake would be an HTTP 403 to a browser)
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/api/v1/ws?token=nope-nope-nope") as refused,
        ):
            refused.receive_json()
        assert closed.value.code == 4401 and closed.value.reason == "invalid token"
