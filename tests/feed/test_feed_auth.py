"""The live feed's authentication, over a real TCP socket with a real WebSocket client (issue 12 items 5, 7).

A token is accepted in the Authorization header, in Sec-WebSocket-Protocol (["bearer", token]; the server
selects "bearer"), in the first message {"op": "auth", "token": ...} within the auth timeout, or in ?token=
(old clients). Missing or wrong: the connection is accepted and closed with 4401 and a reason. A token that may
not read a user gets an error for that subscribe and keeps its connection. HTTP routes answer 401 with
WWW-Authenticate: Bearer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from position_order_service.api import feed

from .conftest import ADMIN, ALICE, ServerFactory

TOKENS = f"{ADMIN}=*;{ALICE}=alice"
WRONG = "wrong-token-0123456789"


async def recv(ws: ClientConnection, within: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        msg = orjson.loads(await ws.recv())
    assert isinstance(msg, dict)
    return msg


async def close_of(ws: ClientConnection, within: float = 10.0) -> tuple[int, str]:
    """The close code and reason the server ended the connection with."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    frame = closed.value.rcvd
    assert frame is not None, "the server closed without a close frame"
    return frame.code, frame.reason


async def subscribe(ws: ClientConnection, user_id: str) -> dict[str, Any]:
    await ws.send(orjson.dumps({"op": "subscribe", "user_id": user_id}).decode())
    return await recv(ws)


async def test_each_way_of_presenting_a_token_is_accepted(live: ServerFactory) -> None:
    async with live(api_tokens=TOKENS) as server:
        async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {ALICE}"}) as ws:
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"

        async with connect(server.ws_url, subprotocols=["bearer", ALICE]) as ws:
            assert ws.subprotocol == "bearer"  # the server selects the scheme, never echoes the token
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"

        async with connect(server.ws_url) as ws:
            await ws.send(orjson.dumps({"op": "auth", "token": ALICE}).decode())
            assert (await recv(ws)) == {"type": "authenticated"}
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"

        async with connect(f"{server.ws_url}?token={ALICE}") as ws:  # old clients
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"


async def test_missing_or_wrong_tokens_are_closed_with_4401_after_accept(
    live: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "AUTH_TIMEOUT_S", 0.5)
    async with live(api_tokens=TOKENS) as server:
        # nothing presented, nothing sent: closed when the auth timeout runs out
        async with connect(server.ws_url) as ws:
            code, reason = await close_of(ws)
            assert code == 4401 and "auth" in reason

        # nothing presented and the first message is not an auth message
        async with connect(server.ws_url) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "user_id": "alice"}).decode())
            code, reason = await close_of(ws)
            assert code == 4401 and "auth" in reason

        # a wrong token, each way
        async with connect(server.ws_url) as ws:
            await ws.send(orjson.dumps({"op": "auth", "token": WRONG}).decode())
            assert await close_of(ws) == (4401, "invalid token")
        async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {WRONG}"}) as ws:
            assert await close_of(ws) == (4401, "invalid token")
        async with connect(server.ws_url, subprotocols=["bearer", WRONG]) as ws:
            assert await close_of(ws) == (4401, "invalid token")
        async with connect(f"{server.ws_url}?token={WRONG}") as ws:
            assert await close_of(ws) == (4401, "invalid token")


async def test_a_token_may_read_only_its_users(live: ServerFactory) -> None:
    async with live(api_tokens=TOKENS) as server:
        async with connect(server.ws_url, subprotocols=["bearer", ALICE]) as ws:
            refused = await subscribe(ws, "bob")
            assert refused["type"] == "error" and "bob" in refused["message"]
            # the connection stays usable for the token's own users
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"
            await ws.send(orjson.dumps({"op": "auth", "token": ADMIN}).decode())
            again = await recv(ws)  # no switching tokens inside a session
            assert again["type"] == "error" and "already authenticated" in again["message"]
        async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {ADMIN}"}) as ws:
            assert (await subscribe(ws, "bob"))["type"] == "subscribed"


async def test_http_routes_answer_401_with_a_bearer_challenge(live: ServerFactory) -> None:
    async with live(api_tokens=TOKENS) as server, httpx.AsyncClient(base_url=server.url) as client:
        for headers in ({}, {"Authorization": f"Bearer {WRONG}"}, {"Authorization": "Basic abc"}):
            r = await client.get("/api/v1/positions/alice/okx", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (headers, r.text)
        r = await client.get("/api/v1/positions/alice/okx", headers={"Authorization": f"Bearer {ALICE}"})
        assert r.status_code == 200


async def test_without_api_tokens_the_feed_opens_at_once(live: ServerFactory) -> None:
    async with live() as server:
        async with connect(server.ws_url) as ws:
            assert (await subscribe(ws, "anyone"))["type"] == "subscribed"
        async with connect(server.ws_url, subprotocols=["bearer", "whatever"]) as ws:
            assert ws.subprotocol == "bearer"  # a browser fails a handshake whose offered protocol is ignored
            assert (await subscribe(ws, "anyone"))["type"] == "subscribed"


async def test_a_page_of_another_origin_cannot_open_the_feed(live: ServerFactory) -> None:
    """Without API_TOKENS every connection is admin: a web page the operator happens to have open must not be
    able to read the feed of a service on loopback (browsers send Origin and enforce nothing on WebSockets)."""
    async with live() as server:
        host = server.url.removeprefix("http://")
        async with connect(server.ws_url, origin="http://evil.example") as ws:  # type: ignore[arg-type]
            assert await close_of(ws) == (4403, "origin not allowed")
        async with connect(server.ws_url, origin=f"http://{host}") as ws:  # type: ignore[arg-type]
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"  # the dashboard's own page
        async with connect(server.ws_url) as ws:  # bots send no Origin
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"
    async with live(allowed_origins="https://ops.example.com") as server:
        async with connect(server.ws_url, origin="https://ops.example.com") as ws:  # type: ignore[arg-type]
            assert (await subscribe(ws, "alice"))["type"] == "subscribed"
