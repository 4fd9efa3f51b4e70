"""Stop and start again on embedded defaults (issue 12 items 1-4), with real processes: the service on its own
embedded redis-server persisting to DATA_DIR, the OKX simulator as another process. Users tracked before the
stop are tracked after it (a fill made on the exchange while they were being tracked again shows in the API),
credentials stay readable (a key file in DATA_DIR), and a stop by SIGTERM or Ctrl+C is clean."""

from __future__ import annotations

import json
import os
import shutil
import signal
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from position_order_service.store.embedded import free_port

from .conftest import Service, clean_env, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
SYMBOL = "BTC-USDT-SWAP"


def error_lines(output: str) -> list[str]:
    """Lines at level error or worse, tracebacks, and the history writer's failures."""
    bad = []
    for line in output.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            if "Traceback" in line or "ERROR" in line or "pass failed" in line:
                bad.append(line)
            continue
        if isinstance(rec, dict) and (rec.get("level") in ("error", "critical") or "exc" in rec
                                      or "pass failed" in str(rec.get("msg"))):  # fmt: skip
            bad.append(line)
    return bad


def position_size(api: httpx.Client) -> Decimal:
    body = api.get(f"/api/v1/positions/u1/okx?symbol={SYMBOL}").json()
    return sum((Decimal(p["size"]) for p in body["positions"]), Decimal(0))


def healthy_users(api: httpx.Client) -> list[str]:
    return [u["user_id"] for u in api.get("/api/v1/status").json()["users"] if u["healthy"]]


def resting_buy(api: httpx.Client, price: str) -> str:
    r = api.post("/api/v1/orders", json={"user_id": "u1", "exchange": "okx", "symbol": SYMBOL, "side": "buy",
                                         "order_type": "limit", "quantity": "0.01", "price": price})  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["exchange_order_id"])


def test_users_credentials_and_state_survive_sigterm_and_kill9(sim_url: str, tmp_path: Path) -> None:
    sim = httpx.Client(base_url=sim_url, timeout=10)
    assert sim.post("/sim/accounts", json={"api_key": "k1", "secret": "s1", "passphrase": "p1",
                                           "balances": {"USDT": "100000"}}).status_code == 201  # fmt: skip
    assert sim.post("/sim/prices", json={"symbol": SYMBOL, "price": "60000"}).status_code == 200
    data_dir = tmp_path / "var"
    env = clean_env(
        DATA_DIR=str(data_dir), EMBEDDED_REDIS="redis-server", EMBEDDED_REDIS_PORT=str(free_port()),
        SIM="off", OKX_BASE_URL=sim_url, LOG_FORMAT="json", LOG_LEVEL="INFO",
    )  # fmt: skip
    port = free_port()
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    # 1. first run: credentials (no CREDENTIALS_KEY: a key file), activation, a resting order
    a = Service(env, port, tmp_path / "a.log").wait_healthy()
    try:
        assert api.put("/api/v1/users/u1/credentials/okx", json={"api_key": "k1", "secret": "s1",
                       "passphrase": "p1"}).status_code == 204  # fmt: skip
        assert api.post("/api/v1/users/u1/activate", json={"exchanges": ["okx"]}).status_code == 200
        resting_buy(api, "59000")
    finally:
        code = a.stop(signal.SIGTERM)
    out = a.output()
    assert code == 0, out[-3000:]
    assert error_lines(out) == [], "\n".join(error_lines(out))
    key_file = data_dir / "credentials.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert str(key_file) in out and key_file.read_text().strip() not in out

    # 2. start again at once: the user is tracked again; a fill on the exchange shows in the API
    b = Service(env, port, tmp_path / "b.log").wait_healthy()
    try:
        active = api.get("/api/v1/users/active").json()
        assert [u["user_id"] for u in active["users"]] == ["u1"]
        assert sim.post("/sim/prices", json={"symbol": SYMBOL, "price": "58900"}).status_code == 200
        wait_until(lambda: position_size(api) == Decimal("0.01"), what="the fill after a SIGTERM restart")
        resting_buy(api, "58000")
    finally:
        b.proc.kill()  # 3. kill -9: no shutdown at all; its redis-server gets SIGTERM from the kernel
        b.kill()

    # 4. start again at once after kill -9: same users, same credentials, the next fill shows
    c = Service(env, port, tmp_path / "c.log").wait_healthy()
    try:
        # its own embedded Redis still holds the dead process' lease (LEASE_TTL_S, 10 s): nobody else can hold
        # it, so the account is tracked again at once, not a lease period later
        wait_until(
            lambda: healthy_users(api) == ["u1"], within=6, what="u1 healthy soon after a kill -9 restart"
        )
        assert sim.post("/sim/prices", json={"symbol": SYMBOL, "price": "57900"}).status_code == 200
        wait_until(lambda: position_size(api) == Decimal("0.02"), what="the fill after a kill -9 restart")
    finally:
        code = c.stop(signal.SIGTERM)
    assert code == 0 and error_lines(c.output()) == [], "\n".join(error_lines(c.output()))


def test_ctrl_c_stops_the_service_first_and_its_redis_last(tmp_path: Path) -> None:
    """Ctrl+C in a terminal sends SIGINT to the whole foreground process group."""
    env = clean_env(DATA_DIR=str(tmp_path / "var"), EMBEDDED_REDIS="redis-server",
                    EMBEDDED_REDIS_PORT=str(free_port()), SIM="on", SIM_PORT="0", SIM_BINANCE_PORT="0",
                    LOG_FORMAT="json")  # fmt: skip
    port = free_port()
    svc = Service(env, port, tmp_path / "svc.log", own_group=True)
    try:
        svc.wait_healthy()
        wait_until(
            lambda: any(u.get("healthy") for u in httpx.get(f"{svc.url}/api/v1/status").json()["users"]),
            what="the demo user's streams",
        )
        os.killpg(svc.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl+C
        code = svc.proc.wait(timeout=30)
    finally:
        svc.kill()
    out = svc.output()
    assert code == 0, out[-3000:]
    assert error_lines(out) == [], "\n".join(error_lines(out))
