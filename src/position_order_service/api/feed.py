"""A live feed for clients: WebSocket /api/v1/ws.

Client -> server (JSON):
  {"op": "subscribe", "user_id": "u1", "from_seq": 42}    user events (positions, orders, stops, rules, fills),
                                                          replayed from seq 42 (0: from the oldest kept;
                                                          omit: only new ones)
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
    from ..app import AppContext

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
        self.tasks: list[asyncio.Task[None]] = []

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
            key = self.ctx.store.keys.event_stream(user_id)
            if isinstance(from_seq, int) and not isinstance(from_seq, bool) and from_seq >= 0:
                # 0 (and 1) = from the start of what the stream keeps (EVENT_STREAM_RETENTION)
                cursor = f"{from_seq - 1}-1" if from_seq > 1 else "0-0"
            else:
                last: Any = await self.ctx.redis.xrevrange(key, count=1)
                cursor = last[0][0].decode() if last else "0-0"
            self.cursors[key] = cursor
            self.users[key] = user_id
            self.wake.set()
            await self.send({"type": "subscribed", "user_id": user_id, "after": cursor})
        elif op == "unsubscribe":
            key = self.ctx.store.keys.event_stream(str(msg.get("user_id")))
            self.cursors.pop(key, None)
            self.users.pop(key, None)
            await self.send({"type": "unsubscribed", "user_id": msg.get("user_id")})
        elif op == "subscribe_prices":
            exchange, symbol = msg.get("exchange"), msg.get("symbol")
            if not isinstance(exchange, str) or not isinstance(symbol, str):
                await self.send({"type": "error", "message": "subscribe_prices needs exchange and symbol"})
                return
            if self.pubsub is None:
                self.pubsub = self.ctx.redis.pubsub()
                await self.pubsub.subscribe(self.ctx.store.channels.prices(exchange, symbol))
                self.tasks.append(asyncio.create_task(self._prices()))
            else:
                await self.pubsub.subscribe(self.ctx.store.channels.prices(exchange, symbol))
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
        redis = self.ctx.redis
        while True:
            if not self.cursors:
                self.wake.clear()
                await self.wake.wait()
                continue
            streams: dict[Any, Any] = dict(self.cursors)
            result: Any = await redis.xread(streams, count=500, block=1000)
            for key_raw, entries in result or []:
                key = key_raw.decode() if isinstance(key_raw, bytes) else key_raw
                user_id = self.users.get(key)
                if user_id is None:
                    continue
                for entry_id, fields in entries:
                    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    self.cursors[key] = eid
                    event = orjson.loads(fields[b"data"])
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
    session.tasks.append(asyncio.create_task(session.pump()))
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
        for t in session.tasks:
            t.cancel()
        for t in session.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if session.pubsub is not None:
            with contextlib.suppress(Exception):
                await session.pubsub.aclose()


class _HeaderView:
    """Just enough of a Request for caller_from: `.headers.get`."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
