"""Fixtures and helpers for the OKX wire-front tests (imported explicitly by tests/sim/test_okx_wire*.py).

A SimServer("okx") on port 0 with two funded accounts and prices for BTC and ETH, real ccxt.pro.okx
clients built by ``make_client``, raw signed aiohttp requests, and watch helpers that collect ccxt pushes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest

from position_order_service.exchanges.ccxt_factory import make_client
from position_order_service.sim.okx import HUB_KEY
from position_order_service.sim.server import SimServer

KEY, SECRET, PASS = "okx-key-a", "okx-secret-a", "okx-pass-a"
KEY_B, SECRET_B, PASS_B = "okx-key-b", "okx-secret-b", "okx-pass-b"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
BTC_ID, ETH_ID = "BTC-USDT-SWAP", "ETH-USDT-SWAP"
WAIT = 5.0


@pytest.fixture
async def okx_server() -> AsyncIterator[SimServer]:
    srv = await SimServer("okx").start()
    eng = srv.ctx.engine
    eng.create_account(KEY, SECRET, PASS, balances={"USDT": "100000"})
    eng.create_account(KEY_B, SECRET_B, PASS_B, balances={"USDT": "100000"})
    eng.set_price(BTC_ID, "60000")
    eng.set_price(ETH_ID, "3000")
    yield srv
    await srv.stop()


@pytest.fixture
async def client(okx_server: SimServer) -> AsyncIterator[Any]:
    c = make_client("okx", okx_server.url, KEY, SECRET, PASS)
    await c.load_markets()
    yield c
    await c.close()


@pytest.fixture
async def client_b(okx_server: SimServer) -> AsyncIterator[Any]:
    c = make_client("okx", okx_server.url, KEY_B, SECRET_B, PASS_B)
    await c.load_markets()
    yield c
    await c.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def iso_now(offset_ms: int = 0) -> str:
    ms = int(datetime.now(UTC).timestamp() * 1000) + offset_ms
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def okx_sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def signed_headers(
    method: str,
    path_with_query: str,
    body: str = "",
    *,
    key: str = KEY,
    secret: str = SECRET,
    passphrase: str = PASS,
    ts: str | None = None,
) -> dict[str, str]:
    ts = ts or iso_now()
    return {
        "OK-ACCESS-KEY": key,
        "OK-ACCESS-PASSPHRASE": passphrase,
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-SIGN": okx_sign(secret, ts + method + path_with_query + body),
        "Content-Type": "application/json",
    }


async def call(
    http: aiohttp.ClientSession,
    srv: SimServer,
    method: str,
    path_with_query: str,
    body: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """A raw request; ``headers`` None = correctly signed for account A."""
    hdrs = signed_headers(method, path_with_query, body) if headers is None else headers
    async with http.request(method, srv.url + path_with_query, data=body or None, headers=hdrs) as resp:
        return resp.status, orjson.loads(await resp.read())


async def sim_post(http: aiohttp.ClientSession, srv: SimServer, path: str, body: dict[str, Any]) -> Any:
    async with http.post(srv.url + path, json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def wait_subscribed(srv: SimServer, channel: str, count: int = 1) -> None:
    """Wait until the server holds ``count`` subscriptions to ``channel`` (so pushes cannot be missed)."""
    hub = srv.app[HUB_KEY] if srv.app is not None else None
    assert hub is not None

    async def check() -> None:
        while sum(len(c.subs.get(channel, ())) for c in hub.conns) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(check(), WAIT)


class Collector:
    """Calls a ccxt watch method in a loop and keeps everything it returns."""

    def __init__(self, watch: Callable[[], Awaitable[Any]]) -> None:
        self.items: list[Any] = []
        self.errors: list[BaseException] = []
        self._watch = watch
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                got = await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors.append(exc)
                self._changed.set()
                return
            self.items.extend(got if isinstance(got, list) else [got])
            self._changed.set()

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float = WAIT) -> Any:
        async def loop() -> Any:
            while True:
                for item in self.items:
                    if pred(item):
                        return item
                if self.errors:
                    raise self.errors[0]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
