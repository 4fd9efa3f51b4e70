"""The hot read route's fast path: GET /api/v1/positions/{user_id}/{exchange} answered as a plain ASGI app.

Bots poll this route many times a second; through FastAPI each request pays for routing, the dependency graph
and the metrics middleware's own route matching, more than the Redis read and the JSON. This path serves the
well-formed, authorized request directly: one token lookup (a dict keyed by the token's SHA-256, so the lookup's
timing says nothing about the secret), one Redis round trip (the same repository call as the route), the same
bytes as the route (`read._listing`), and the same request metrics. Anything else (a bad user id or exchange, no
or an unknown token, another user's data, an error) is handed to the full app unchanged, which answers it as it
always did (401/403/404/422/503 with its error body).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

from ..domain.enums import Exchange
from ..domain.symbols import InvalidSymbol, native_symbol
from .auth import ADMIN, Caller, TokenGrant
from .deps import USER_ID_PATTERN
from .read import listing_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/api/v1/positions/"
HANDLER = "/api/v1/positions/{user_id}/{exchange}"
_USER = re.compile(USER_ID_PATTERN)
_EXCHANGES = {e.value: e for e in Exchange}
_HEADERS = [(b"content-type", b"application/json")]


class PositionsFastPath:
    """ASGI middleware (outermost): serves the positions route's common case, passes everything else on."""

    def __init__(self, app: ASGIApp, observers: list[Callable[[Any], None]] | None = None) -> None:
        self.app = app
        self.observers = observers or []
        self._grants: list[TokenGrant] | None = None
        self._callers: dict[bytes, Caller] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        body = await self._serve(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), *_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": body})
        if self.observers:
            took = time.perf_counter() - start
            info = SimpleNamespace(method="GET", modified_handler=HANDLER, modified_status="2xx",
                                   modified_duration=took, modified_duration_without_streaming=took)  # fmt: skip
            for observe in self.observers:
                observe(info)

    async def _serve(self, scope: Scope) -> bytes | None:
        """The response body, or None when the full app should answer."""
        user_id, sep, exchange_name = scope["path"][len(PREFIX) :].partition("/")
        exchange = _EXCHANGES.get(exchange_name)
        if not sep or exchange is None or not _USER.match(user_id):
            return None
        app = scope.get("app")
        ctx = getattr(getattr(app, "state", None), "ctx", None)
        if ctx is None:
            return None
        caller = self._caller(scope, ctx.token_grants)
        if caller is None or not caller.may_act_for(user_id):
            return None
        symbol: str | None = None
        query = scope.get("query_string", b"")
        if query:
            params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            if len(params) != 1 or params[0][0] != "symbol" or len(params[0][1]) > 64:
                return None
            try:
                symbol = native_symbol(exchange.value, params[0][1])
            except InvalidSymbol:
                return None
        try:
            positions = await ctx.store.positions.list(user_id, exchange.value, symbol)
        except Exception:  # e.g. Redis away: the full app answers it (and maps the error) as it always did
            return None
        return listing_bytes(user_id, exchange, "positions", positions)

    def _caller(self, scope: Scope, grants: list[TokenGrant]) -> Caller | None:
        if not grants:
            return ADMIN  # no tokens configured: the server listens on loopback only (auth.py)
        if grants is not self._grants:
            self._grants = grants
            self._callers = {}
            for g in grants:  # the first grant of a token wins, as in auth.caller_for_token
                self._callers.setdefault(hashlib.sha256(g.token.encode()).digest(), Caller(g.users))
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return None
        return self._callers.get(hashlib.sha256(token.strip()).digest())
