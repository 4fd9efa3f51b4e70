"""End-to-end plumbing: the simulator and the service as separate processes, as an operator runs them.

`Sim` runs `position-order-service sim` and drives its control API; `Service` runs `main.py` with a real Redis
(the shared one, or a private redis-server the test can stop) and talks to it over HTTP; `venue_client` is
"another client" of the same exchange account (the user's bot or the exchange's UI), through the real ccxt.
Everything waits for conditions with a deadline: nothing sleeps for correctness.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from position_order_service.domain.enums import OrderSide, OrderType, PositionSide
from position_order_service.domain.market import OrderRequest
from position_order_service.exchanges.base import Credentials, ExchangeGateway
from position_order_service.exchanges.factory import build_gateway
from position_order_service.store.embedded import free_port
from position_order_service.store.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "position-order-service")
T = TypeVar("T")
SYMBOLS = {"okx": ("BTC-USDT-SWAP", "ETH-USDT-SWAP"), "binance": ("BTCUSDT", "ETHUSDT")}


async def eventually(
    check: Callable[[], Awaitable[T]], within: float = 10.0, what: str = "condition", every: float = 0.1
) -> T:
    """The first truthy value of `check()`, polled until `within` seconds have passed."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(every)


async def holds(check: Callable[[], Awaitable[bool]], for_s: float, what: str, every: float = 0.1) -> None:
    """`check()` stays true for `for_s` seconds (a state that must not come back, once reached)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert await check(), f"{what} stopped holding"
        await asyncio.sleep(every)


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as c:
            return (await c.get(url)).status_code < 500
    except httpx.HTTPError:
        return False


# -- the simulator -----------------------------------------------------------------------------------------
@dataclass
class Sim:
    venue: str
    proc: subprocess.Popen[bytes]
    url: str
    http: httpx.AsyncClient

    @classmethod
    async def start(cls, venue: str, log_dir: Path) -> Sim:
        port = free_port()
        log = (log_dir / f"sim-{venue}-{port}.log").open("wb")
        proc = subprocess.Popen([CLI, "sim", "--exchange", venue, "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        sim = cls(venue, proc, url, httpx.AsyncClient(base_url=url, timeout=10))
        await eventually(lambda: _http_ok(f"{url}/sim/state"), within=20, what=f"the {venue} simulator")
        return sim

    async def stop(self) -> None:
        await self.http.aclose()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    @property
    def symbols(self) -> tuple[str, str]:
        return SYMBOLS[self.venue]

    async def account(self, api_key: str, mode: str = "net") -> Credentials:
        secret, passphrase = f"secret-{api_key}", f"pass-{api_key}"
        body: dict[str, Any] = {"api_key": api_key, "secret": secret, "position_mode": mode,
                                "balances": {"USDT": "1000000"}}  # fmt: skip
        if self.venue == "okx":
            body["passphrase"] = passphrase
        r = await self.http.post("/sim/accounts", json=body)
        assert r.status_code == 201, r.text
        return Credentials(api_key, secret, passphrase if self.venue == "okx" else "")

    async def price(self, symbol: str, price: str, **extra: str) -> None:
        r = await self.http.post("/sim/prices", json={"symbol": symbol, "price": price, **extra})
        assert r.status_code == 200, r.text

    async def feed(self, symbol: str, **body: Any) -> None:
        r = await self.http.post("/sim/feed", json={"symbol": symbol, **body})
        assert r.status_code == 200, r.text

    async def faults(self, **faults: Any) -> dict[str, Any]:
        r = await self.http.post("/sim/faults", json=faults)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def current_faults(self) -> dict[str, Any]:
        r = await self.http.get("/sim/faults")
        return r.json() if r.status_code == 200 else {}  # type: ignore[no-any-return]

    async def clear_faults(self) -> None:
        r = await self.http.delete("/sim/faults")
        if r.status_code >= 400:  # a simulator without the DELETE route: reset what it knows
            await self.faults(drop_order_responses=0, delay_ms=0)

    async def require_faults(self, *names: str) -> None:
        """Skip when this simulator does not offer a fault (the fault-injection branch has not landed)."""
        known = await self.current_faults()
        missing = [n for n in names if n not in known]
        if missing:
            pytest.skip(f"the simulator has no {', '.join(missing)} fault yet (sim-faults branch)")

    async def state(self) -> dict[str, Any]:
        return (await self.http.get("/sim/state")).json()  # type: ignore[no-any-return]

    async def account_state(self, api_key: str) -> dict[str, Any]:
        return next(a for a in (await self.state())["accounts"] if a["api_key"] == api_key)

    async def position_qty(self, api_key: str, symbol: str, side: str = "net") -> Decimal:
        """The exchange's position in venue units (OKX contracts, Binance base), signed for net positions."""
        for p in (await self.account_state(api_key))["positions"]:
            if p["inst_id"] == symbol and p["pos_side"] == side:
                return Decimal(str(p["qty"]))
        return Decimal(0)

    async def open_algos(self, api_key: str) -> list[dict[str, Any]]:
        return list((await self.account_state(api_key))["open_algos"])


# -- another client of the same account --------------------------------------------------------------------
async def venue_client(sim: Sim, creds: Credentials) -> ExchangeGateway:
    """The account's other user (the bot itself, the exchange's UI), over the real ccxt client."""
    return await build_gateway(sim.venue, f"other-{uuid.uuid4().hex[:6]}", creds, base_url=sim.url)


async def place(
    gw: ExchangeGateway,
    symbol: str,
    side: str,
    qty: str,
    order_type: str = "market",
    price: str | None = None,
    reduce_only: bool = False,
    position_side: str | None = None,
) -> str:
    order = await gw.create_order(
        OrderRequest(
            symbol=symbol,
            side=OrderSide(side),
            order_type=OrderType(order_type),
            quantity=Decimal(qty),
            client_order_id="ext" + uuid.uuid4().hex[:20],
            price=None if price is None else Decimal(price),
            reduce_only=reduce_only,
            position_side=None if position_side is None else PositionSide(position_side),
        )
    )
    return order.order_id


# -- a private Redis the test may stop and start ------------------------------------------------------------
@dataclass
class PrivateRedis:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--dbfilename",
             "dump.rdb", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    async def shutdown(self) -> None:
        """Stop the server, keeping its data (SAVE on shutdown), as a restart of Redis does."""
        client = Redis.from_url(self.url)
        try:
            await client.shutdown(save=True)
        except Exception:
            pass  # the connection closes as the server exits
        finally:
            await client.aclose()
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


# -- the service ------------------------------------------------------------------------------------------
@dataclass
class Service:
    env: dict[str, str]
    log_dir: Path
    redis_url: str
    prefix: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    api: httpx.AsyncClient = field(init=False)
    _runs: int = 0

    def __post_init__(self) -> None:
        self.api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.prefix)

    async def start(self, **env: str) -> Service:
        self._runs += 1
        log = (self.log_dir / f"service-{self.port}-{self._runs}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--port", str(self.port)],
                                     cwd=ROOT, env={**self.env, **env}, stdout=log,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        await eventually(
            lambda: _http_ok(f"http://127.0.0.1:{self.port}/health"), within=30, what="the service"
        )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        out = []
        for f in sorted(self.log_dir.glob(f"service-{self.port}-*.log")):
            text = f.read_text(errors="replace").splitlines()
            out.append(f"--- {f.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    # -- the API, as a bot calls it --------------------------------------------------------------------
    async def onboard(self, user_id: str, exchange: str, creds: Credentials) -> None:
        body = {"api_key": creds.api_key, "secret": creds.secret}
        if creds.passphrase:
            body["passphrase"] = creds.passphrase
        r = await self.api.put(f"/api/v1/users/{user_id}/credentials/{exchange}", json=body)
        assert r.status_code == 204, r.text
        r = await self.api.post(f"/api/v1/users/{user_id}/activate", json={"exchanges": [exchange]})
        assert r.status_code == 200, r.text
        await self.wait_reconciled(user_id, exchange)

    async def account_health(self, user_id: str, exchange: str) -> dict[str, Any] | None:
        r = await self.api.get("/api/v1/status")
        if r.status_code != 200:
            return None
        for u in r.json()["users"]:
            if u["user_id"] == user_id and u["exchange"] == exchange:
                return u  # type: ignore[no-any-return]
        return None

    async def wait_reconciled(self, user_id: str, exchange: str, within: float = 15) -> None:
        async def ready() -> bool:
            h = await self.account_health(user_id, exchange)
            return bool(h and h.get("healthy") and h.get("last_reconcile_at"))

        await eventually(ready, within=within, what=f"{user_id} on {exchange} to be reconciled")

    async def positions(self, user_id: str, exchange: str) -> list[dict[str, Any]]:
        r = await self.api.get(f"/api/v1/positions/{user_id}/{exchange}")
        assert r.status_code == 200, r.text
        return list(r.json()["positions"])

    async def position(self, user_id: str, exchange: str, symbol: str, side: str) -> dict[str, Any] | None:
        for p in await self.positions(user_id, exchange):
            if p["symbol"] == symbol and p["side"] == side:
                return p
        return None

    async def open_orders(self, user_id: str, exchange: str) -> list[dict[str, Any]]:
        r = await self.api.get(f"/api/v1/orders/{user_id}/{exchange}/open")
        assert r.status_code == 200, r.text
        return list(r.json()["orders"])

    async def events(self, user_id: str) -> list[dict[str, Any]]:
        redis = Redis.from_url(self.redis_url)
        try:
            entries = await redis.xrange(self.keys.event_stream(user_id))
        finally:
            await redis.aclose()
        return [orjson.loads(f[b"data"]) for _, f in entries]

    async def close(self) -> None:
        await self.stop()
        await self.api.aclose()


def service_env(redis_url: str, prefix: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    names = ("REDIS_", "OKX_", "BINANCE_", "API_", "CREDENTIALS_", "DATABASE_", "EMBEDDED_", "SIM", "DATA_DIR",
             "KEY_PREFIX", "LOG_", "HISTORY", "EVENT_STREAM")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(
        {
            "REDIS_URL": redis_url, "KEY_PREFIX": prefix, "SIM": "off", "CREDENTIALS_KEY": "e2e-credentials-key",
            "HISTORY": "false", "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text", "ENGINE_RESYNC_INTERVAL_S": "0.5",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.sqlite3", "DATA_DIR": str(tmp_path / "data"),
        }
    )  # fmt: skip
    env.update(extra)
    return env


async def delete_prefix(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        async for k in redis.scan_iter(match=f"{prefix}*", count=500):
            await redis.delete(k)
    finally:
        await redis.aclose()
