"""WebSocket side of the Binance wire front: ccxt's watch_orders / watch_my_trades / watch_positions /
watch_ticker over the user data stream and the market streams, reconnects, and the raw frames."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest

from position_order_service.sim.server import SimServer
from tests.sim.binance_fixtures import (
    BTC,
    OTHER_KEY,
    OTHER_SECRET,
    ccxt_client,
    client,
    market_stream_ready,
    raw,
    sim,
    sim_post,
    user_stream_ready,
    watch_until,
)

__all__ = ["client", "sim"]


async def test_watch_orders_sees_new_then_filled_when_the_price_moves(sim: SimServer, client: Any) -> None:
    opened = asyncio.create_task(watch_until(client.watch_orders, lambda o: o["status"] == "open"))
    await user_stream_ready(sim)
    order = await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    new = await opened
    assert new["id"] == order["id"]
    assert (new["side"], new["amount"], new["price"], new["filled"]) == ("buy", 0.01, 59000, 0)
    assert new["info"]["x"] == "NEW" and new["info"]["ps"] == "BOTH"

    filled = asyncio.create_task(watch_until(client.watch_orders, lambda o: o["status"] == "closed"))
    await asyncio.sleep(0.05)
    await sim_post(sim, "/sim/prices", {"symbol": "BTCUSDT", "price": "58950"})
    done = await filled
    assert done["id"] == order["id"]
    assert (done["filled"], done["average"]) == (0.01, 59000)
    assert done["info"]["x"] == "TRADE" and done["info"]["X"] == "FILLED"
    assert done["fee"] == {"currency": "USDT", "cost": pytest.approx(59000 * 0.01 * 0.0002)}  # maker


async def test_watch_my_trades_reports_each_fill(sim: SimServer, client: Any) -> None:
    trades = asyncio.create_task(watch_until(client.watch_my_trades, lambda t: True))
    await user_stream_ready(sim)
    order = await client.create_order(BTC, "market", "sell", 0.02)
    trade = await trades
    assert trade["order"] == order["id"]
    assert (trade["side"], trade["amount"], trade["price"], trade["takerOrMaker"]) == (
        "sell",
        0.02,
        59999.9,
        "taker",
    )
    assert trade["fee"]["cost"] == pytest.approx(59999.9 * 0.02 * 0.0004)
    assert trade["info"]["rp"] == "0"


async def test_watch_positions_snapshot_then_updates(sim: SimServer, client: Any) -> None:
    await client.create_order(BTC, "market", "buy", 0.01)
    snapshot = await client.watch_positions()  # REST snapshot (leverageBracket + positionRisk v3)
    assert [(p["symbol"], p["side"], p["contracts"]) for p in snapshot] == [(BTC, "long", 0.01)]

    update = asyncio.create_task(watch_until(client.watch_positions, lambda p: p["contracts"] == 0.03))
    await user_stream_ready(sim)
    await client.create_order(BTC, "market", "buy", 0.02)
    pos = await update
    assert (pos["symbol"], pos["side"], pos["entryPrice"]) == (BTC, "long", 60000.1)
    assert pos["marginMode"] == "cross" and pos["hedged"] is False

    flat = asyncio.create_task(watch_until(client.watch_positions, lambda p: p["contracts"] == 0))
    await asyncio.sleep(0.05)
    await client.create_order(BTC, "market", "sell", 0.03, None, {"reduceOnly": True})
    assert (await flat)["symbol"] == BTC


async def test_watch_ticker_gets_mini_ticker_pushes(sim: SimServer, client: Any) -> None:
    watching = asyncio.create_task(client.watch_ticker(BTC))
    await market_stream_ready(sim, "btcusdt@miniTicker")
    sim.ctx.engine.set_price("BTCUSDT", Decimal("60500"))
    ticker = await asyncio.wait_for(watching, 5)
    assert ticker["symbol"] == BTC
    assert (ticker["last"], ticker["open"], ticker["high"], ticker["low"]) == (60500, 60000, 60500, 60000)
    assert ticker["info"]["e"] == "24hrMiniTicker"
    nxt = asyncio.create_task(client.watch_ticker(BTC))
    await asyncio.sleep(0.05)
    await sim_post(sim, "/sim/prices", {"symbol": "BTCUSDT", "price": "59000"})
    assert (await asyncio.wait_for(nxt, 5))["low"] == 59000


async def test_pending_watch_fails_on_disconnect_and_the_next_one_reconnects(
    sim: SimServer, client: Any
) -> None:
    pending = asyncio.create_task(client.watch_orders())
    await user_stream_ready(sim)
    dropped = await sim_post(sim, "/sim/disconnect", {})
    assert dropped["dropped"] >= 1
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending, 5)

    again = asyncio.create_task(watch_until(client.watch_orders, lambda o: o["status"] == "closed"))
    await user_stream_ready(sim)
    order = await client.create_order(BTC, "market", "buy", 0.01)
    assert (await again)["id"] == order["id"]


async def test_user_stream_carries_only_the_listen_key_owners_events(sim: SimServer, client: Any) -> None:
    watching = asyncio.create_task(watch_until(client.watch_orders, lambda o: True))
    await user_stream_ready(sim)
    async with ccxt_client(sim, OTHER_KEY, OTHER_SECRET) as bob:
        await bob.create_order(BTC, "market", "buy", 0.01)
    await asyncio.sleep(0.05)
    assert not watching.done()
    mine = await client.create_order(BTC, "market", "buy", 0.01)
    assert (await watching)["id"] == mine["id"]


async def _listen_key(sim: SimServer) -> str:
    status, body = await raw(sim, "POST", "/fapi/v1/listenKey")
    assert status == 200
    return str(body["listenKey"])


async def test_raw_user_stream_frames(sim: SimServer) -> None:
    key = await _listen_key(sim)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.url.replace('http', 'ws')}/ws/{key}") as ws,
    ):
        await user_stream_ready(sim)
        sim.ctx.engine.place_order("key-alice", "BTCUSDT", "buy", "0.01", client_order_id="raw-1")
        frames = [await ws.receive_json(timeout=5) for _ in range(3)]
    new, trade, account = frames
    assert new["e"] == "ORDER_TRADE_UPDATE" and new["o"]["x"] == "NEW" and new["o"]["c"] == "raw-1"
    o = trade["o"]
    assert trade["e"] == "ORDER_TRADE_UPDATE"
    assert {k: o[k] for k in ("s", "S", "o", "f", "q", "p", "ap", "x", "X", "l", "z", "L", "N", "m", "R", "ps")} == {
        "s": "BTCUSDT", "S": "BUY", "o": "MARKET", "f": "GTC", "q": "0.01", "p": "0", "ap": "60000.1",
        "x": "TRADE", "X": "FILLED", "l": "0.01", "z": "0.01", "L": "60000.1", "N": "USDT", "m": False,
        "R": False, "ps": "BOTH",
    }  # fmt: skip
    assert isinstance(o["i"], int) and isinstance(o["t"], int) and o["n"] == "0.2400004"
    assert account["e"] == "ACCOUNT_UPDATE"
    assert account["a"]["m"] == "ORDER"
    assert account["a"]["B"] == [{"a": "USDT", "wb": "99999.7599996", "cw": "99999.7599996", "bc": "0"}]
    (pos,) = account["a"]["P"]
    assert {k: pos[k] for k in ("s", "pa", "ep", "mt", "ps")} == {
        "s": "BTCUSDT", "pa": "0.01", "ep": "60000.1", "mt": "cross", "ps": "BOTH"
    }  # fmt: skip


async def test_raw_market_stream_subscribe_protocol(sim: SimServer) -> None:
    url = sim.url.replace("http", "ws")
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/market/ws/3") as ws:
        await ws.send_json(
            {"method": "SUBSCRIBE", "params": ["btcusdt@miniTicker", "btcusdt@bookTicker"], "id": 7}
        )
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 7}
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
        assert await ws.receive_json(timeout=5) == {
            "result": ["btcusdt@bookTicker", "btcusdt@miniTicker"],
            "id": 8,
        }
        sim.ctx.engine.set_price("BTCUSDT", Decimal("60100"))
        got = {f["e"]: f for f in [await ws.receive_json(timeout=5), await ws.receive_json(timeout=5)]}
        assert got["24hrMiniTicker"]["c"] == "60100" and got["24hrMiniTicker"]["s"] == "BTCUSDT"
        assert (got["bookTicker"]["b"], got["bookTicker"]["a"]) == ("60099.9", "60100.1")
        await ws.send_str("not json")
        assert (await ws.receive_json(timeout=5))["error"]["code"] == 3
        await ws.send_json({"method": "NOPE", "id": 9})
        assert (await ws.receive_json(timeout=5))["error"]["code"] == 2
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/stream?streams=ethusdt@markPrice@1s") as ws,
    ):
        await market_stream_ready(sim, "ethusdt@markPrice@1s")
        sim.ctx.engine.set_price("ETHUSDT", Decimal("3001"))
        frame = await ws.receive_json(timeout=5)
        assert frame["stream"] == "ethusdt@markPrice@1s"
        assert frame["data"]["e"] == "markPriceUpdate" and frame["data"]["p"] == "3001"


async def test_unknown_listen_key_is_refused_and_listen_key_lifecycle(sim: SimServer) -> None:
    url = sim.url.replace("http", "ws")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(f"{url}/private/ws?listenKey=nope")
        assert err.value.status == 400
    key = await _listen_key(sim)
    assert await _listen_key(sim) == key  # the live key is returned again (and extended)
    assert await raw(sim, "PUT", "/fapi/v1/listenKey") == (200, {"listenKey": key})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/private/ws?listenKey={key}") as ws,
    ):
        await user_stream_ready(sim)
        assert await raw(sim, "DELETE", "/fapi/v1/listenKey") == (200, {})
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert await raw(sim, "PUT", "/fapi/v1/listenKey") == (
        400,
        {"code": -1125, "msg": "This listenKey does not exist."},
    )
    assert await raw(sim, "POST", "/fapi/v1/listenKey", key=None) == (
        401,
        {"code": -2014, "msg": "API-key format invalid."},
    )


async def test_watch_balance_follows_account_updates(sim: SimServer, client: Any) -> None:
    watching = asyncio.create_task(client.watch_balance())
    await user_stream_ready(sim)
    await client.create_order(BTC, "market", "buy", 0.01)
    balance = await asyncio.wait_for(watching, 5)
    assert balance["USDT"]["total"] == pytest.approx(100000 - 600.001 * 0.0004)
