"""A live feed for clients: WebSocket /api/v1/ws.

Client -> server (JSON):
  {"op": "subscribe", "user_id": "u1", "from_seq": 42}    user events (positions, orders, stops, rules, fills),
                                                          replayed from seq 42 (omit: only new ones)
  {"op": "subscribe_prices", "exchange": "okx", "symbol": "BTC-USDT-SWAP"}
  {"op": "unsubscribe", "user_id": "u1"}
Server -> client: {"type": "event", "user_id", "seq", "event": {...}}, {"type": "price", "event": {...}},
  {"type": "subscribed", ...}, {"type": "error", "message"}.
User events are read from the user's stream, not Pub/Sub, so a client that reconnects resumes from its last seq
with nothing lost. Auth: `Authorization: Bearer <token>` or `?token=` (tokens may act only for their users).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from .auth import Caller, caller_from

if TYPE_CHECKING:
    from ..bootstrap import Services as AppContext

log = logging.getLogger(__name__)
router = APIRouter()


class _Session:
    def __init__(self, ws: WebSocket, ctx: AppContext, caller: Caller) -> None:
        self.ws = ws
        self.ctx = ctx
        self.caller = caller
        self.cursors: dict[str, str] = {}  # stream key -> last id read
        self.users: dict[str, str] = {}  # stream key -> user id
        self.send_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.pubsub: Any = None
        self.scope = ctx.supervisor.scope(f"feed:{id(self)}", kind="feed")

    async def send(self, data: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(orjson.dumps(data, default=str).decode())

    async def handle(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "subscribe":
            user_id = msg.get("user_id")
            if not isinstance(user_id, str) or not user_id:
                await self.send({"type": "error", "message": "subscribe needs user_id"})
                return
            if not self.caller.may_act_for(user_id):
                await self.send({"type": "error", "message": f"this token may not read user {user_id!r}"})
                return
            from_seq = msg.get("from_seq")
            events = self.ctx.store.events
            key = events.stream_key(user_id)
            if isinstance(from_seq, int) and from_seq >= 1:
                cursor = f"{from_seq - 1}-1" if from_seq > 1 else "0-0"
            else:
                cursor = await events.last_id(user_id)
            self.cursors[key] = cursor
            self.users[key] = user_id
            self.wake.set()
            await self.send({"type": "subscribed", "user_id": user_id, "after": cursor})
        elif op == "unsubscribe":
            key = self.ctx.store.events.stream_key(str(msg.get("user_id")))
            self.cursors.pop(key, None)
            self.users.pop(key, None)
            await self.send({"type": "unsubscribed", "user_id": msg.get("user_id")})
        elif op == "subscribe_prices":
            exchange, symbol = msg.get("exchange"), msg.get("symbol")
            if not isinstance(exchange, str) or not isinstance(symbol, str):
                await self.send({"type": "error", "message": "subscribe_prices needs exchange and symbol"})
                return
            channel = self.ctx.store.events.price_channel(exchange, symbol)
            if self.pubsub is None:
                self.pubsub = self.ctx.store.events.pubsub()
                await self.pubsub.subscribe(channel)
                self.scope.spawn("prices", self._prices)
            else:
                await self.pubsub.subscribe(channel)
            await self.send({"type": "subscribed", "exchange": exchange, "symbol": symbol})
        else:
            await self.send({"type": "error", "message": f"unknown op {op!r}"})

    async def _prices(self) -> None:
        while True:
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg and msg.get("type") in ("message", b"message"):
                await self.send({"type": "price", "event": orjson.loads(msg["data"])})

    async def pump(self) -> None:
        """Forward new stream entries of the subscribed users, in order, to the client."""
        while True:
            if not self.cursors:
                self.wake.clear()
                await self.wake.wait()
                continue
            for key, entry_id, event in await self.ctx.store.events.read(
                self.cursors, count=500, block_ms=1000
            ):
                user_id = self.users.get(key)
                if user_id is None:
                    continue
                self.cursors[key] = entry_id
                await self.send(
                    {"type": "event", "user_id": user_id, "seq": event.get("seq"), "event": event}
                )


@router.websocket("/api/v1/ws")
async def feed(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    try:
        token = ws.query_params.get("token")
        headers = dict(ws.headers)
        if token and "authorization" not in headers:
            headers["authorization"] = f"Bearer {token}"
        caller = caller_from(_HeaderView(headers), ctx.token_grants)  # type: ignore[arg-type]
    except Exception:
        await ws.close(code=4401, reason="unauthorized")
        return
    await ws.accept()
    session = _Session(ws, ctx, caller)
    session.scope.spawn("pump", session.pump)
    try:
        while True:
            raw = await ws.receive_text()
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                await session.send({"type": "error", "message": "messages must be JSON objects"})
                continue
            if not isinstance(msg, dict):
                await session.send({"type": "error", "message": "messages must be JSON objects"})
                continue
            await session.handle(msg)
    except WebSocketDisconnect:
        pass
    finally:
        await session.scope.stop()
        if session.pubsub is not None:
            with contextlib.suppress(Exception):
                await session.pubsub.aclose()


class _HeaderView:
    """Just enough of a Request for caller_from: `.headers.get`."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
