"""Shared pieces of the Binance wire-front tests: a simulator on loopback, real ccxt clients, raw signing.

Imported explicitly by the test_binance_wire*.py modules (fixtures included), no conftest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest

from position_order_service.exchanges.ccxt_factory import make_client
from position_order_service.sim.binance_wire import FRONT_KEY
from position_order_service.sim.server import SimServer

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
KEY = "key-alice"
SECRET = "secret-alice"
OTHER_KEY = "key-bob"
OTHER_SECRET = "secret-bob"
START_PRICES = {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000"), "SOLUSDT": Decimal("150")}


def fix_error_table(client: Any) -> None:
    """ccxt_factory replaces the client's whole ``exact`` table with the linear one, which drops the codes
    Binance shares across markets (-2015/-1022 auth, -2011/-2013 unknown order, -1021 ...). Merge them back
    (a no-op once the factory merges instead of replacing)."""
    common = ccxt.binanceusdm().exceptions["exact"]
    client.exceptions["exact"] = {**common, **client.exceptions["exact"]}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = await SimServer("binance", port=0).start()
    engine = server.ctx.engine
    engine.create_account(KEY, SECRET, balances={"USDT": "100000"})
    engine.create_account(OTHER_KEY, OTHER_SECRET, balances={"USDT": "100000"})
    for symbol, price in START_PRICES.items():
        engine.set_price(symbol, price)
    yield server
    await server.stop()


@asynccontextmanager
async def ccxt_client(
    sim: SimServer, key: str = KEY, secret: str = SECRET, load: bool = True
) -> AsyncIterator[Any]:
    client = make_client("binance", sim.url, key, secret)
    fix_error_table(client)
    try:
        if load:
            await client.load_markets()
        yield client
    finally:
        await client.close()


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[Any]:
    async with ccxt_client(sim) as c:
        yield c


async def watch_until(
    watch: Callable[[], Awaitable[list[dict[str, Any]]]],
    accept: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Call a ccxt watch_* method until one returned item satisfies ``accept``."""

    async def loop() -> dict[str, Any]:
        while True:
            for item in await watch():
                if accept(item):
                    return item

    return await asyncio.wait_for(loop(), timeout)


async def user_stream_ready(sim: SimServer, key: str = KEY, timeout: float = 5.0) -> None:
    """Wait until the account of ``key`` has a user-data-stream WebSocket connected."""
    front = sim.app[FRONT_KEY]  # type: ignore[index]
    account_id = sim.ctx.engine.account_by_key(key).account_id
    deadline = asyncio.get_running_loop().time() + timeout
    while not front.hub.user_connections(account_id):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("no user stream connected")
        await asyncio.sleep(0.01)


async def market_stream_ready(sim: SimServer, stream: str, timeout: float = 5.0) -> None:
    """Wait until some connection subscribed to ``stream``."""
    front = sim.app[FRONT_KEY]  # type: ignore[index]
    deadline = asyncio.get_running_loop().time() + timeout
    while not front.hub.subscribers(stream):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nobody subscribed to {stream}")
        await asyncio.sleep(0.01)


def sign(params: dict[str, Any], secret: str = SECRET) -> str:
    """Urlencoded params + timestamp + signature, as ccxt/Binance sign them."""
    full = {**params}
    full.setdefault("timestamp", str(int(time.time() * 1000)))
    query = urllib.parse.urlencode(full)
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={sig}"


async def raw(
    sim: SimServer,
    method: str,
    path: str,
    *,
    query: str = "",
    body: str | None = None,
    key: str | None = KEY,
    content_type: str = "application/x-www-form-urlencoded",
) -> tuple[int, Any]:
    """One HTTP request to the simulator; returns (status, JSON body)."""
    headers = {}
    if key is not None:
        headers["X-MBX-APIKEY"] = key
    if body is not None:
        headers["Content-Type"] = content_type
    url = sim.url + path + (f"?{query}" if query else "")
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def sim_post(sim: SimServer, path: str, payload: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as session, session.post(sim.url + path, json=payload) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()
