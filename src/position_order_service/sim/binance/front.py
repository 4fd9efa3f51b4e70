"""What every Binance handler needs: the engine, key lookups, listen keys, market stats, the stream hub,
and the wrappers that turn a handler function into an aiohttp handler with Binance signing and errors."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..context import SimContext
from ..engine import EngineError, Instrument, PositionMode, SimEngine, UnknownInstrument
from .auth import AccountKeys, Caller, authenticate_key, authenticate_signed
from .errors import BinanceError, bad_symbol, from_engine
from .listen_keys import ListenKeys
from .market import MarketStats
from .params import Params, parse_params
from .stream import StreamHub

__all__ = [
    "API_KEY_HEADER",
    "Front",
    "KeyHandler",
    "PublicHandler",
    "SignedHandler",
    "json_response",
    "now_ms",
]

API_KEY_HEADER = "X-MBX-APIKEY"

SignedHandler = Callable[["Front", Caller, Params], Any]
PublicHandler = Callable[["Front", Params], Any]
KeyHandler = Callable[["Front", Caller, Params], Awaitable[Any]]
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(exc: BinanceError) -> web.Response:
    return json_response(exc.body(), exc.status)


@dataclass
class Front:
    ctx: SimContext
    keys: AccountKeys
    listen_keys: ListenKeys
    stats: MarketStats
    hub: StreamHub

    @property
    def engine(self) -> SimEngine:
        return self.ctx.engine

    def instrument(self, symbol: str) -> Instrument:
        try:
            return self.engine.instrument(symbol)
        except UnknownInstrument:
            raise bad_symbol() from None

    def symbol_param(self, p: Params, *, required: bool) -> Instrument | None:
        symbol = p.req_str("symbol") if required else p.opt_str("symbol")
        return None if symbol is None else self.instrument(symbol)

    def hedged(self, caller: Caller) -> bool:
        return self.engine.account_by_key(caller.api_key).position_mode is PositionMode.LONG_SHORT

    # ------------------------------------------------------------------ handler wrappers

    def signed(self, fn: SignedHandler, *, cancel: bool = False) -> AiohttpHandler:
        """SIGNED endpoint (TRADE / USER_DATA)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.text() if request.body_exists else ""
            try:
                caller, params = authenticate_signed(
                    self.keys, request.headers.get(API_KEY_HEADER), request.rel_url.raw_query_string, body
                )
                return json_response(fn(self, caller, params))
            except BinanceError as exc:
                return _error(exc)
            except EngineError as exc:
                return _error(from_engine(exc, cancel=cancel))

        return handler

    def keyed(self, fn: KeyHandler) -> AiohttpHandler:
        """USER_STREAM endpoint (API key, no signature)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.text() if request.body_exists else ""
            try:
                caller = authenticate_key(self.keys, request.headers.get(API_KEY_HEADER))
                params = Params(parse_params(request.rel_url.raw_query_string, body))
                return json_response(await fn(self, caller, params))
            except BinanceError as exc:
                return _error(exc)
            except EngineError as exc:
                return _error(from_engine(exc))

        return handler

    def public(self, fn: PublicHandler) -> AiohttpHandler:
        """NONE security (market data)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                params = Params(parse_params(request.rel_url.raw_query_string))
                return json_response(fn(self, params))
            except BinanceError as exc:
                return _error(exc)
            except EngineError as exc:
                return _error(from_engine(exc))

        return handler
