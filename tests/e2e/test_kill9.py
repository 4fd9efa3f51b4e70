"""End to end, as an operator runs it: the simulator and the service as separate processes. The service is
killed with SIGKILL between a trailing stop's trigger and its close order; a restarted service closes the
position exactly once (SPEC 5; DESIGN invariants 4 and 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from position_order_service.store.embedded import free_port
from position_order_service.store.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTC-USDT-SWAP"


def wait_until(check: Any, within: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture
def simulator() -> Iterator[str]:
    port = free_port()
    cli = str(Path(sys.executable).parent / "position-order-service")
    proc = subprocess.Popen([cli, "sim", "--exchange", "okx", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/sim/state"), what="the simulator")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_service(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), what="the service")
    return proc


def test_kill9_between_trigger_and_execution_closes_once(
    simulator: str, real_redis_url: str, tmp_path: Path
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OKX_", "BINANCE_", "API_"))
    }
    base_env.update(
        {
            "REDIS_URL": real_redis_url, "KEY_PREFIX": prefix, "SIM": "off", "OKX_BASE_URL": simulator,
            "CREDENTIALS_KEY": "e2e-credentials-key", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.sqlite3",
            "TRIGGER_LEASE_S": "2", "ENGINE_RESYNC_INTERVAL_S": "0.5", "LOG_LEVEL": "WARNING",
        }
    )  # fmt: skip
    r = redis.Redis.from_url(real_redis_url)
    sim = httpx.Client(base_url=simulator, timeout=10)
    try:
        assert (
            sim.post("/sim/accounts", json={"api_key": "k1", "secret": "s1", "passphrase": "p1"}).status_code
            == 201
        )
        assert sim.post("/sim/prices", json={"symbol": SYMBOL, "price": "60000"}).status_code == 200

        port = free_port()
        a = start_service({**base_env, "FAULT_KILL_AFTER_TRIGGER": "true"}, port)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        assert api.put("/api/v1/users/u1/credentials/okx", json={"api_key": "k1", "secret": "s1",
                       "passphrase": "p1"}).status_code == 204  # fmt: skip
        assert api.post("/api/v1/users/u1/activate", json={"exchanges": ["okx"]}).status_code == 200
        opened = api.post("/api/v1/positions/open", json={"user_id": "u1", "exchange": "okx", "symbol": SYMBOL,
                          "side": "long", "size": "0.1"})  # fmt: skip
        assert opened.status_code == 201, opened.text
        stop = api.post("/api/v1/trailing-stops", json={"user_id": "u1", "exchange": "okx", "symbol": SYMBOL,
                        "side": "long", "callback_rate": 0.01})  # fmt: skip
        assert stop.status_code == 201 and stop.json()["state"] == "active", stop.text

        sim.post("/sim/prices", json={"symbol": SYMBOL, "price": "58000"})  # crosses 60000 x 0.99
        a.wait(timeout=20)
        assert a.returncode == -signal.SIGKILL  # died between the trigger and the close order
        key = Keys(prefix=prefix).trailing_stop("u1", "okx", SYMBOL, "long")
        assert r.hget(key, "state") == b"triggered"

        def sells() -> list[dict[str, Any]]:
            state = sim.get("/sim/state").json()
            account = next(a for a in state["accounts"] if a["api_key"] == "k1")
            orders = account["open_orders"] + account["order_history"]
            return [o for o in orders if o["side"] == "sell"]

        assert sells() == []
        b = start_service(base_env, port)
        try:
            wait_until(lambda: r.hget(key, "state") == b"executed", within=30, what="the stop to execute")
            time.sleep(1.5)  # a few more resyncs: nothing is sent again
            assert len(sells()) == 1
            positions = api.get("/api/v1/positions/u1/okx").json()
            assert positions["count"] == 0
        finally:
            b.terminate()
            b.wait(timeout=15)
    finally:
        for k in r.scan_iter(match=f"{prefix}*", count=500):
            r.delete(k)
