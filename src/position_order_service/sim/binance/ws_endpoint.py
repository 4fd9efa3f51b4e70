"""The WebSocket endpoints: user data stream and market streams, in every URL form ccxt and Binance use.

- ``/private/ws?listenKey=K`` (ccxt 4.5.90), ``/ws/<listenKey>``, ``/stream?streams=<listenKey>``: user stream.
- ``/market/ws/<n>``, ``/public/ws/<n>``, ``/ws``, ``/ws/<n>``: market stream, subscribed with
  ``{"method":"SUBSCRIBE","params":["btcusdt@miniTicker"],"id":1}`` -> ``{"result":null,"id":1}``.
- ``/ws/<stream>/<stream>`` and ``/stream?streams=a/b`` subscribe at connect (``/stream``: combined
  ``{"stream":..., "data":...}`` frames).
An unknown or expired listen key is refused before the upgrade with -1125, an attempt over the connection
limit per IP (``..limits``) with HTTP 429. Every accepted socket is tracked in the SimContext so
POST /sim/disconnect drops it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from ..context import SimContext
from .errors import BinanceError
from .listen_keys import ListenKeys
from .stream import Connection, StreamHub

__all__ = ["PATHS", "WsEndpoint"]

log = logging.getLogger(__name__)

PATHS = (
    "/ws",
    "/ws/{tail:.*}",
    "/stream",
    "/private/ws",
    "/private/ws/{tail:.*}",
    "/private/stream",
    "/market/ws",
    "/market/ws/{tail:.*}",
    "/market/stream",
    "/public/ws",
    "/public/ws/{tail:.*}",
    "/public/stream",
)
HEARTBEAT_S = 180.0


def _error_reply(code: int, msg: str, req_id: Any) -> str:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id}).decode()


class WsEndpoint:
    def __init__(self, ctx: SimContext, hub: StreamHub, keys: ListenKeys) -> None:
        self._ctx = ctx
        self._hub = hub
        self._keys = keys

    def _resolve(self, request: web.Request) -> tuple[str | None, str | None, list[str], bool]:
        """(account id, listen key, streams to subscribe at connect, combined)."""
        combined = request.path.endswith("/stream")
        parts: list[str] = []
        tail = request.match_info.get("tail", "")
        if tail:
            parts.extend(p for p in tail.split("/") if p)
        streams_q = request.query.get("streams")
        if streams_q:
            parts.extend(p for p in streams_q.split("/") if p)
        key = request.query.get("listenKey")
        streams: list[str] = []
        for part in parts:
            if "@" in part or part.startswith("!"):
                streams.append(part)
            elif not part.isdigit() and key is None:
                key = part
        if key is None:
            return None, None, streams, combined
        account_id = self._keys.account_of(key)
        if account_id is None:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return account_id, key, streams, combined

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._ctx.limits.admit(request.remote):
            log.info("binance ws: refusing a connection from %s (connection limit)", request.remote)
            body = {"code": -1003, "msg": "Too many connection attempts; current limit is "
                    f"{self._ctx.limits.settings.binance_ws_connects_per_5min} per 5 minutes per IP."}  # fmt: skip
            return web.Response(
                status=429,
                body=orjson.dumps(body),
                content_type="application/json",
                headers={"Retry-After": "1"},
            )
        try:
            account_id, key, streams, combined = self._resolve(request)
        except BinanceError as exc:
            return web.Response(status=400, body=orjson.dumps(exc.body()), content_type="application/json")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, autoping=True)
        await ws.prepare(request)
        self._ctx.track(ws)
        conn = Connection(ws, account_id, key, combined)
        self._hub.add(conn)
        if streams:
            self._hub.subscribe(conn, streams)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._ctx.untrack(ws)
            await self._hub.remove(conn)
        return ws

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            conn.send(_error_reply(3, f"Invalid JSON: {exc}", None))
            return
        if not isinstance(frame, dict):
            conn.send(_error_reply(2, "Invalid request: expected an object", None))
            return
        req_id = frame.get("id")
        method = frame.get("method")
        params = frame.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.send(_error_reply(2, "Invalid request: params must be a list of stream names", req_id))
                return
            if method == "SUBSCRIBE":
                self._hub.subscribe(conn, params)
            else:
                self._hub.unsubscribe(conn, params)
            conn.send(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send(orjson.dumps({"result": sorted(conn.streams), "id": req_id}).decode())
        elif method == "SET_PROPERTY":
            if (
                isinstance(params, list)
                and len(params) == 2
                and params[0] == "combined"
                and isinstance(params[1], bool)
            ):
                conn.combined = params[1]
                conn.send(orjson.dumps({"result": None, "id": req_id}).decode())
            else:
                conn.send(_error_reply(0, "Unknown property", req_id))
        elif method == "GET_PROPERTY":
            if isinstance(params, list) and params == ["combined"]:
                conn.send(orjson.dumps({"result": conn.combined, "id": req_id}).decode())
            else:
                conn.send(_error_reply(0, "Unknown property", req_id))
        else:
            conn.send(
                _error_reply(
                    2,
                    "Invalid request: unknown variant, expected one of SUBSCRIBE, UNSUBSCRIBE, "
                    "LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY",
                    req_id,
                )
            )
