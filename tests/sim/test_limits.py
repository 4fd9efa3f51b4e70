"""The venues' WebSocket connection limits, enforced per client address, seen by real ccxt.pro clients."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import httpx
import pytest

from position_order_service.exchanges.ccxt_factory import make_client
from position_order_service.sim.server import SimServer
from position_order_service.store.embedded import free_port

from .fault_fixtures import quick_close

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    await asyncio.gather(*(c.close() for c in made))


async def _limits(server: SimServer, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        method = "POST" if body is not None else "GET"
        async with http.request(method, server.url + "/sim/limits", json=body) as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data


async def _watch_tickers_at_once(
    server: SimServer, venue: str, n: int, clients: list[Any]
) -> list[BaseException | None]:
    """``n`` fresh ccxt clients each open a market-data socket at the same moment."""
    inst = "BTC-USDT-SWAP" if venue == "okx" else "BTCUSDT"
    server.ctx.engine.set_price(inst, "60000")
    batch = [quick_close(make_client(venue, server.url)) for _ in range(n)]
    clients.extend(batch)
    markets = await batch[0].load_markets()
    for c in batch[1:]:
        c.set_markets(markets)  # one market table: only the sockets are under test

    async def first_tick(c: Any) -> BaseException | None:
        try:
            await asyncio.wait_for(c.watch_ticker(SYMBOL), 5)
            return None
        except ccxt.BaseError as exc:
            return exc

    if venue == "binance":  # Binance pushes tickers only while the price moves
        mover = asyncio.ensure_future(_move_price(server, inst))
    try:
        return list(await asyncio.gather(*(first_tick(c) for c in batch)))
    finally:
        if venue == "binance":
            mover.cancel()


async def _move_price(server: SimServer, inst: str) -> None:
    price = 60000
    while True:
        price += 1
        server.ctx.engine.set_price(inst, str(price))
        await asyncio.sleep(0.05)


async def test_ten_okx_clients_at_once_some_refused_with_limits_on(clients: list[Any]) -> None:
    server = await SimServer("okx").start()
    try:
        results = await _watch_tickers_at_once(server, "okx", 10, clients)
        refused = [r for r in results if r is not None]
        assert 1 <= len(refused) <= 7  # at most 3 attempts per second get through
        for exc in refused:
            assert isinstance(exc, ccxt.NetworkError) and "429" in str(exc), exc
        limits = await _limits(server)
        assert limits["refused_connections"] == {"okx": len(refused)}
    finally:
        await server.stop()


async def test_ten_okx_clients_at_once_all_accepted_with_limits_off(clients: list[Any]) -> None:
    server = await SimServer("okx").start()
    try:
        assert (await _limits(server, {"enabled": False}))["enabled"] is False
        assert await _watch_tickers_at_once(server, "okx", 10, clients) == [None] * 10
        assert (await _limits(server))["refused_connections"] == {"okx": 0}
    finally:
        await server.stop()


async def test_a_paced_okx_client_is_never_refused(clients: list[Any]) -> None:
    server = await SimServer("okx").start()
    server.ctx.engine.set_price("BTC-USDT-SWAP", "60000")
    try:
        batch = [quick_close(make_client("okx", server.url)) for _ in range(4)]
        clients.extend(batch)
        for i, c in enumerate(batch):
            if i == 3:
                await asyncio.sleep(1.05)  # the fourth waits for the one-second window
            await asyncio.wait_for(c.watch_ticker(SYMBOL), 5)
        assert (await _limits(server))["refused_connections"] == {"okx": 0}
    finally:
        await server.stop()


async def test_okx_login_and_subscribe_requests_per_connection(clients: list[Any]) -> None:
    server = await SimServer("okx").start()
    try:
        await _limits(server, {"okx_ws_requests_per_conn_per_hour": 2})
        for inst in ("BTC-USDT-SWAP", "ETH-USDT-SWAP"):
            server.ctx.engine.set_price(inst, "100")
        c = quick_close(make_client("okx", server.url))
        clients.append(c)
        await asyncio.wait_for(c.watch_ticker(SYMBOL), 5)  # request 1 on the public socket
        await asyncio.wait_for(c.watch_ticker("ETH/USDT:USDT"), 5)  # request 2
        with pytest.raises(ccxt.RateLimitExceeded, match="60014"):  # request 3: error 60014, then closed
            await asyncio.wait_for(c.watch_mark_price(SYMBOL), 5)
        limits = await _limits(server)
        assert limits["closed_for_requests"] == {"okx": 1}
        assert limits["refused_connections"] == {"okx": 0}
    finally:
        await server.stop()


async def test_binance_connection_attempts_per_five_minutes(clients: list[Any]) -> None:
    server = await SimServer("binance").start()
    try:
        await _limits(server, {"binance_ws_connects_per_5min": 2})
        results = await _watch_tickers_at_once(server, "binance", 3, clients)
        refused = [r for r in results if r is not None]
        assert len(refused) == 1
        assert isinstance(refused[0], ccxt.NetworkError) and "429" in str(refused[0])
        assert (await _limits(server))["refused_connections"] == {"binance": 1}
        await _limits(server, {"enabled": False})
        assert await _watch_tickers_at_once(server, "binance", 3, clients) == [None] * 3
    finally:
        await server.stop()


def test_sim_command_turns_limits_off_with_no_limits() -> None:
    port = free_port()
    cli = str(Path(sys.executable).parent / "position-order-service")
    proc = subprocess.Popen([cli, "sim", "--exchange", "binance", "--port", str(port), "--no-limits"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline().decode()
        assert "connection limits off" in banner
        deadline = time.monotonic() + 15
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/sim/limits", timeout=1).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the simulator did not answer"
                time.sleep(0.05)
        assert body["enabled"] is False
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_okx_request_limit_raw_frames_and_upgrade_status() -> None:
    server = await SimServer("okx").start()
    try:
        await _limits(server, {"okx_ws_requests_per_conn_per_hour": 2, "okx_ws_connects_per_s": 1})
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(server.url + "/ws/v5/public") as ws:
                for inst in ("BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USDT-SWAP", "ETH-USDT-SWAP"):
                    await ws.send_json({"op": "subscribe", "args": [{"channel": "tickers", "instId": inst}]})
                frames = [msg.json() async for msg in ws if msg.type is aiohttp.WSMsgType.TEXT]
                assert [f.get("event") for f in frames] == ["subscribe", "subscribe", "error"]
                assert frames[-1]["code"] == "60014" and frames[-1]["msg"] == "Requests too frequent."
                assert ws.closed
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # a second attempt within 1 s
                await http.ws_connect(server.url + "/ws/v5/public")
            assert refused.value.status == 429
        limits = await _limits(server)
        assert limits["closed_for_requests"] == {"okx": 1}  # the 4th request is ignored, not counted again
        assert limits["refused_connections"] == {"okx": 1}
    finally:
        await server.stop()
