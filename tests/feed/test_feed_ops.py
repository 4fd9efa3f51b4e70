"""The feed's ops the dashboard uses: the recent tail of a user's events, and the pushed overview."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import connect

from position_order_service.api import feed

from .conftest import ADMIN, ALICE, ServerFactory
from .test_feed_auth import recv

TOKENS = f"{ADMIN}=*;{ALICE}=alice"


async def test_subscribe_with_tail_replays_the_last_events_then_streams(live: ServerFactory) -> None:
    async with live(api_tokens=TOKENS) as server:
        store = server.ctx.store
        for n in range(5):
            await store.writer.emit_once("alice", "", "fill.created", {"user_id": "alice", "exchange": "okx",
                                         "trade_id": f"t{n}"}, store.keys.seen_fills("alice", "okx"), f"t{n}")  # fmt: skip
        async with connect(server.ws_url, subprotocols=["bearer", ALICE]) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "user_id": "alice", "tail": 2}).decode())
            assert (await recv(ws))["type"] == "subscribed"
            replayed = [await recv(ws), await recv(ws)]
            assert [m["seq"] for m in replayed] == [4, 5]
            await store.writer.emit_once("alice", "", "fill.created", {"user_id": "alice", "exchange": "okx",
                                         "trade_id": "t5"}, store.keys.seen_fills("alice", "okx"), "t5")  # fmt: skip
            assert (await recv(ws))["seq"] == 6
            for bad in (0, 5000, "3"):  # out of range or not a number: only new events, as without it
                await ws.send(orjson.dumps({"op": "subscribe", "user_id": "alice", "tail": bad}).decode())
                assert (await recv(ws))["after"] == "6-1"


async def test_subscribe_accounts_pushes_the_overview_the_token_may_read(
    live: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "ACCOUNTS_PUSH_INTERVAL_S", 0.2)
    async with live(api_tokens=TOKENS) as server:
        await server.ctx.active_users.activate("alice", ["okx"])
        async with connect(server.ws_url, subprotocols=["bearer", ALICE]) as ws:
            await ws.send('{"op": "subscribe_accounts"}')
            messages = [await recv(ws), await recv(ws)]
            (pushed,) = [m for m in messages if m["type"] == "accounts"]
            assert [a["user_id"] for a in pushed["accounts"]] == ["alice"]  # not demo
            assert pushed["service"]["redis_reachable"] is True
            again = await recv(ws, within=5)  # pushed again without being asked
            assert again["type"] == "accounts"
            await ws.send('{"op": "unsubscribe_accounts"}')
            assert (await recv(ws))["type"] == "unsubscribed"
            try:
                async with asyncio.timeout(1):  # five push intervals
                    extra = await ws.recv()
                raise AssertionError(f"pushed after unsubscribing: {extra!r}")
            except TimeoutError:
                pass
