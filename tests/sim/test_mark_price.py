"""Mark-price channels end to end with ccxt.pro's watch_mark_price: OKX ``mark-price``, Binance
``<symbol>@markPrice@1s`` (ccxt 4.5.90's defaults), fed by the engine's mark (/sim/prices {"mark": ...})."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from position_order_service.exchanges.ccxt_factory import make_client
from position_order_service.sim.binance import stream as binance_stream
from position_order_service.sim.okx import ws as okx_ws
from position_order_service.sim.server import SimServer

from .fault_fixtures import Recorder, quick_close

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture(params=["okx", "binance"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[SimServer]:
    server = await SimServer(request.param).start()
    yield server
    await server.stop()


def _inst(sim: SimServer) -> str:
    return "BTC-USDT-SWAP" if sim.venue == "okx" else "BTCUSDT"


async def _set(sim: SimServer, price: str, mark: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.url + "/sim/prices", json={"symbol": _inst(sim), "price": price, "mark": mark}) as resp,
    ):
        assert resp.status == 200


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[Any]:
    c = quick_close(make_client(sim.venue, sim.url))
    await c.load_markets()
    yield c
    await c.close()


def _mark_of(sim: SimServer, message: Any) -> str | None:
    if sim.venue == "okx":
        if message.get("arg", {}).get("channel") == "mark-price" and "data" in message:
            return str(message["data"][0]["markPx"])
        return None
    return str(message["p"]) if message.get("e") == "markPriceUpdate" else None


async def test_watch_mark_price_sees_the_engine_mark_and_its_changes(sim: SimServer, client: Any) -> None:
    await _set(sim, "60000", "60000.1")  # the mark differs from the last price
    rec = Recorder(client)
    started = time.monotonic()
    first = await asyncio.wait_for(client.watch_mark_price(SYMBOL), 3)  # Binance: the 1 s push, no change
    assert first["markPrice"] == 60000.1
    assert time.monotonic() - started < 2.5
    await asyncio.sleep(0.25)  # past OKX's 200 ms between two pushes
    nxt = asyncio.ensure_future(client.watch_mark_price(SYMBOL))
    changed_at = time.monotonic()
    await _set(sim, "60010", "60011.5")
    assert (await asyncio.wait_for(nxt, 3))["markPrice"] in (60000.1, 60011.5)  # Binance: maybe the 1 s one
    while "60011.5" not in [_mark_of(sim, m) for m in rec.messages]:
        assert time.monotonic() - changed_at < 3, "the new mark never came"
        await asyncio.wait_for(client.watch_mark_price(SYMBOL), 3)
    arrived = rec.times[[_mark_of(sim, m) for m in rec.messages].index("60011.5")]
    assert arrived - changed_at < 0.8  # pushed on change (OKX's idle interval is 10 s)


async def test_an_unchanged_mark_is_pushed_on_an_interval(
    sim: SimServer, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(okx_ws, "MARK_IDLE_S", 0.3)  # OKX: 10 s; Binance @1s: 1 s
    await _set(sim, "60000", "59999.9")
    rec = Recorder(client)
    await asyncio.wait_for(client.watch_mark_price(SYMBOL), 3)
    deadline = time.monotonic() + 2.5

    def marks() -> list[Any]:
        if sim.venue == "okx":
            return [
                m for m in rec.messages if m.get("arg", {}).get("channel") == "mark-price" and "data" in m
            ]
        return [m for m in rec.messages if m.get("e") == "markPriceUpdate"]

    while len(marks()) < 2:  # no change since the first: the second comes from the interval
        assert time.monotonic() < deadline, f"only {len(marks())} mark pushes"
        await asyncio.wait_for(client.watch_mark_price(SYMBOL), 3)
    ts = [int(m["data"][0]["ts"]) if sim.venue == "okx" else m["E"] for m in marks()]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)  # each push stamped when it is sent


async def test_okx_coalesces_mark_changes_within_200_ms() -> None:
    sim = await SimServer("okx").start()
    client = quick_close(make_client("okx", sim.url))
    try:
        await _set(sim, "60000", "60000")
        rec = Recorder(client)
        await asyncio.wait_for(client.watch_mark_price(SYMBOL), 3)
        for i in range(1, 6):  # five changes at once, within OKX's 200 ms
            sim.ctx.engine.set_price(_inst(sim), "60000", mark=str(60000 + i))
        deadline = time.monotonic() + 2
        while "60005" not in [_mark_of(sim, m) for m in rec.messages]:
            assert time.monotonic() < deadline, "the last mark never came"
            await asyncio.wait_for(client.watch_mark_price(SYMBOL), 3)
        pushed = [_mark_of(sim, m) for m in rec.messages if _mark_of(sim, m) is not None]
        assert pushed[0] == "60000" and pushed[-1] == "60005"
        assert len(pushed) <= 3  # the snapshot, maybe the first change, then the last value only
    finally:
        await client.close()
        await sim.stop()


def test_binance_mark_stream_intervals() -> None:
    assert binance_stream._mark_interval_s("btcusdt@markPrice") == 3.0
    assert binance_stream._mark_interval_s("btcusdt@markPrice@1s") == 1.0
    assert binance_stream._mark_interval_s("!markPrice@arr@1s") == 1.0
