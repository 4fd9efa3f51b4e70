"""A live feed for clients: WebSocket /api/v1/ws.

Authentication (only when API_TOKENS is set; without it every connection is admin, as the HTTP API is).
A client presents its bearer token in one of four ways, checked in this order:
  1. the `Authorization: Bearer <token>` header of the handshake (bots, server-side clients);
  2. the `Sec-WebSocket-Protocol` header: the client offers the two protocols `["bearer", "<token>"]` and the
     server selects `bearer` (browsers cannot set headers on a WebSocket; the token never enters a URL);
  3. `?token=<token>` in the URL (old clients only: URLs end up in logs and histories);
  4. none of these: the first message, `{"op": "auth", "token": "<token>"}`, within AUTH_TIMEOUT_S (5 s) of
     the accept, answered with `{"type": "authenticated"}`.
The server always accepts the handshake first (and selects `bearer` whenever it is offered), so a refusal
arrives as a WebSocket close code with a reason, never as an HTTP status a browser cannot read:

  close code  reason                                   when
  4401        "invalid token"                          a token was presented (any way) and is not configured
  4401        "no token: ..."                          nothing presented and no auth message in time, or the
                                                       first message was not {"op": "auth", "token": ...}
  4403        "origin not allowed"                     a browser page of another origin (not the service's own
                                                       and not in ALLOWED_ORIGINS) opened the feed
A token that may not read a user (API_TOKENS grants it other users) keeps its connection: that subscribe is
answered with {"type": "error", "message": "this token may not read user 'bob'"}. An auth message in an
authenticated session is answered with {"type": "error", "message": "already authenticated"} (no switching
tokens mid-session). The HTTP routes answer the same cases with 401 and `WWW-Authenticate: Bearer` (missing or
wrong token) and 403 (a token that may not act for the user).

Client -> server (JSON):
  {"op": "auth", "token": "..."}                          see above
  {"op": "subscribe", "user_id": "u1", "from_seq": 42}    user events (positions, orders, stops, rules, fills),
                                                          replayed from seq 42 (0: from the oldest event the
                                                          stream keeps; omit: only new ones)
  {"op": "subscribe", "user_id": "u1", "tail": 100}       the last 100 events (at most 1000), then new ones
  {"op": "subscribe_prices", "exchange": "okx", "symbol": "BTC-USDT-SWAP"}
  {"op": "subscribe_accounts"}                            the overview of GET /api/v1/accounts and /service,
                                                          pushed now and every ACCOUNTS_PUSH_INTERVAL_S (2 s)
  {"op": "unsubscribe_accounts"}
  {"op": "unsubscribe", "user_id": "u1"}
Server -> client: {"type": "event", "user_id", "seq", "event": {...}}, {"type": "price", "event": {...}},
  {"type": "accounts", "accounts": [...], "service": {...}}, {"type": "subscribed", ...},
  {"type": "authenticated"}, {"type": "error", "message"}.
User events are read from the user's stream, not Pub/Sub, so a client that reconnects resumes from its last seq
with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..supervisor import Job
from .auth import ADMIN, Caller, TokenGrant, caller_for_token

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
        self.accounts_job: Job | None = None

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
            from_seq, tail = msg.get("from_seq"), msg.get("tail")
            events = self.ctx.store.events
            key = events.stream_key(user_id)
            if isinstance(from_seq, int) and not isinstance(from_seq, bool) and from_seq >= 0:
                # 0 (and 1) = from the start of what the stream keeps (EVENT_STREAM_RETENTION)
                cursor = f"{from_seq - 1}-1" if from_seq > 1 else "0-0"
            elif isinstance(tail, int) and 1 <= tail <= MAX_TAIL:
                oldest = await events.oldest_seq_of_last(user_id, tail)
                cursor = f"{oldest - 1}-1" if oldest > 1 else "0-0"  # (an empty stream: from its start)
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
        elif op == "subscribe_accounts":
            if self.accounts_job is None:
                self.accounts_job = self.scope.spawn("accounts", self._accounts)
            await self.send({"type": "subscribed", "accounts": True})
        elif op == "unsubscribe_accounts":
            if self.accounts_job is not None:
                self.accounts_job.cancel()
                self.accounts_job = None
            await self.send({"type": "unsubscribed", "accounts": True})
        else:
            await self.send({"type": "error", "message": f"unknown op {op!r}"})

    async def _accounts(self) -> None:
        """Push the overview (accounts the caller may read, service figures) now and then every few seconds:
        stream health has no event of its own."""
        from .dashboard import accounts_of, service_figures

        while True:
            accounts = await accounts_of(self.ctx, self.caller)
            figures = await service_figures(self.ctx)
            await self.send(
                {
                    "type": "accounts",
                    "accounts": [a.model_dump(mode="json") for a in accounts],
                    "service": figures.model_dump(mode="json"),
                }
            )
            await asyncio.sleep(ACCOUNTS_PUSH_INTERVAL_S)

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


BEARER = "bearer"  # the subprotocol a client offers next to its token
MAX_TAIL = 1000  # subscribe's "tail": at most this many recent events replayed
ACCOUNTS_PUSH_INTERVAL_S = 2.0
AUTH_TIMEOUT_S = 5.0  # how long an unauthenticated connection may wait before its auth message
CLOSE_UNAUTHENTICATED = 4401  # 401 in the 4000-4999 range applications may use
CLOSE_FORBIDDEN_ORIGIN = 4403


@router.websocket("/api/v1/ws")
async def feed(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    offered: list[str] = list(ws.scope.get("subprotocols") or [])
    await ws.accept(subprotocol=BEARER if BEARER in offered else None)
    if not _origin_allowed(ws, ctx.settings.allowed_origins):
        with contextlib.suppress(Exception):
            await ws.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="origin not allowed")
        return
    caller = await _authenticate(ws, ctx.token_grants, offered)
    if caller is None:
        return
    session = _Session(ws, ctx, caller)
    session.scope.spawn("pump", session.pump)
    try:
        while True:
            msg = await _receive_object(ws)
            if msg is None:
                await session.send({"type": "error", "message": "messages must be JSON objects"})
                continue
            if msg.get("op") == "auth":
                if ctx.token_grants:
                    await session.send({"type": "error", "message": "already authenticated"})
                else:
                    await session.send({"type": "authenticated"})
                continue
            await session.handle(msg)
    except WebSocketDisconnect:
        pass
    finally:
        await session.scope.stop()
        if session.pubsub is not None:
            with contextlib.suppress(Exception):
                await session.pubsub.aclose()


def _origin_allowed(ws: WebSocket, allowed: str) -> bool:
    """Browsers send the page's Origin with every WebSocket and, unlike fetch, enforce nothing: without this check
    any web page the operator opens could read the feed of a service on loopback without API_TOKENS. Clients
    that are not browsers send no Origin."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    scheme, _, rest = origin.partition("://")
    if rest and rest == ws.headers.get("host") and scheme in ("http", "https"):
        return True
    return origin in {o.strip() for o in allowed.split(",") if o.strip()}


def _handshake_token(ws: WebSocket, offered: list[str]) -> str | None:
    """The token presented with the handshake (header, subprotocol or query), "" for a malformed header,
    None when none was presented."""
    header = ws.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == BEARER else ""
    if BEARER in offered:
        others = [p for p in offered if p != BEARER]
        return others[0] if others else ""
    return ws.query_params.get("token")


async def _authenticate(ws: WebSocket, grants: list[TokenGrant], offered: list[str]) -> Caller | None:
    """The caller of an accepted connection, or None once the connection has been closed with 4401."""
    presented = _handshake_token(ws, offered)
    if not grants:
        return ADMIN
    by_message = presented is None
    if presented is None:
        try:
            async with asyncio.timeout(AUTH_TIMEOUT_S):
                msg = await _receive_object(ws)
        except TimeoutError:
            await _refuse(ws, f"no token: send {{op: auth, token}} within {AUTH_TIMEOUT_S:g} s")
            return None
        except WebSocketDisconnect:
            return None
        token = msg.get("token") if msg is not None and msg.get("op") == "auth" else None
        if not isinstance(token, str):
            await _refuse(ws, "no token: the first message must be {op: auth, token}")
            return None
        presented = token
    caller = caller_for_token(presented, grants) if presented else None
    if caller is None:
        await _refuse(ws, "invalid token")
        return None
    if by_message:
        await ws.send_text('{"type":"authenticated"}')
    return caller


async def _refuse(ws: WebSocket, reason: str) -> None:
    with contextlib.suppress(Exception):  # the client may already be gone
        await ws.close(code=CLOSE_UNAUTHENTICATED, reason=reason)


async def _receive_object(ws: WebSocket) -> dict[str, Any] | None:
    """The next message as a JSON object; None for anything else. Raises WebSocketDisconnect."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    raw = message.get("text") if message.get("text") is not None else message.get("bytes")
    try:
        msg = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None
