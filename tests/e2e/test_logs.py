"""What the service writes to its log, as a real process (issue 12 items 5 and 16): no token, key, secret or
passphrase in any line at DEBUG or INFO, whoever logs it (uvicorn's access and WebSocket lines included); at
INFO no alembic plugin lines and no per-WebSocket "connection open"; the text format carries the context."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from websockets.sync.client import connect

from position_order_service.store.embedded import free_port

from .conftest import Service, clean_env, wait_until

ADMIN = "admin-token-SEKRIT-0123456789"
WRONG = "wrong-token-SEKRIT-9876543210"
PASSPHRASE = "credentials-passphrase-SEKRIT"
QUERY_SECRETS = {"api_key": "AK-SEKRIT-1", "secret": "SEC-SEKRIT-2", "passphrase": "PP-SEKRIT-3",
                 "signature": "SIG-SEKRIT-4", "listenKey": "LK-SEKRIT-5"}  # fmt: skip
BODY = {"api_key": "BODY-AK-SEKRIT", "secret": "BODY-SEC-SEKRIT", "passphrase": "BODY-PP-SEKRIT"}


def _exercise(url: str) -> None:
    h = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=30) as c:
        assert (
            c.get(
                "/api/v1/positions/demo/okx", params={"token": ADMIN, **QUERY_SECRETS}, headers=h
            ).status_code
            == 200
        )
        assert c.get("/api/v1/status", params={"token": WRONG}).status_code == 401
        assert c.put("/api/v1/users/u9/credentials/okx", json=BODY, headers=h).status_code == 204
        assert (
            c.get("/api/v1/orders/demo/okx/open", headers={"Authorization": f"Bearer {WRONG}"}).status_code
            == 401
        )
    ws_url = url.replace("http://", "ws://")
    with connect(f"{ws_url}/api/v1/ws?token={ADMIN}&api_key={QUERY_SECRETS['api_key']}") as ws:
        ws.send('{"op": "subscribe", "user_id": "demo", "from_seq": 1}')
        assert "subscribed" in str(ws.recv(timeout=10))
    with pytest.raises(Exception), connect(f"{ws_url}/api/v1/ws?token={WRONG}") as ws:  # noqa: B017
        ws.recv(timeout=10)


@pytest.mark.parametrize(("level", "fmt"), [("DEBUG", "json"), ("INFO", "text")])
def test_no_secret_reaches_the_log(real_redis_url: str, tmp_path: Path, level: str, fmt: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    env = clean_env(
        REDIS_URL=real_redis_url, KEY_PREFIX=prefix, SIM="on", SIM_PORT="0", SIM_BINANCE_PORT="0",
        API_TOKENS=f"{ADMIN}=*", CREDENTIALS_KEY=PASSPHRASE, DATA_DIR=str(tmp_path / "var"),
        LOG_LEVEL=level, LOG_FORMAT=fmt,
    )  # fmt: skip
    svc = Service(env, free_port(), tmp_path / "service.log")
    try:
        svc.wait_healthy()
        h = {"Authorization": f"Bearer {ADMIN}"}
        wait_until(
            lambda: any(
                u.get("healthy") for u in httpx.get(f"{svc.url}/api/v1/status", headers=h).json()["users"]
            ),
            what="the demo user's streams",
        )
        _exercise(svc.url)
        assert svc.stop(signal.SIGTERM) == 0
    finally:
        svc.kill()
        r = redis.Redis.from_url(real_redis_url)
        for key in r.scan_iter(match=f"{prefix}*", count=500):
            r.delete(key)
    out = svc.output()
    assert "/api/v1/ws" in out  # the WebSocket lines are there, scrubbed
    leaked = [s for s in (ADMIN, WRONG, PASSPHRASE, *QUERY_SECRETS.values(), *BODY.values()) if s in out]
    assert leaked == [], [line for line in out.splitlines() if any(s in line for s in leaked)][:5]
    assert "SEKRIT" not in out
    if level == "INFO":
        assert "setup plugin" not in out and "Context impl" not in out
        assert "connection open" not in out and "connection closed" not in out
        tracking = [line for line in out.splitlines() if "tracking demo on okx" in line]
        assert tracking and "user_id=demo" in tracking[0] and "exchange=okx" in tracking[0], tracking
