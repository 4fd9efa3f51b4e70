"""A GatewayProvider that builds one gateway per (user, exchange) from stored credentials, and shares one
public gateway per exchange for market data."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from ..exchanges.base import Credentials, ExchangeGateway
from .credentials import CredentialStore

GatewayBuilder = Callable[[str, str, Credentials | None], Awaitable[ExchangeGateway]]


class GatewayPool:
    def __init__(self, credentials: CredentialStore, build: GatewayBuilder) -> None:
        self.credentials = credentials
        self.build = build
        self._users: dict[tuple[str, str], ExchangeGateway] = {}
        self._public: dict[str, ExchangeGateway] = {}
        self._lock = asyncio.Lock()

    async def for_user(self, user_id: str, exchange: str) -> ExchangeGateway:
        key = (user_id, exchange)
        gw = self._users.get(key)
        if gw is not None:
            return gw
        async with self._lock:
            gw = self._users.get(key)
            if gw is None:
                creds = await self.credentials.get(user_id, exchange)
                gw = self._users[key] = await self.build(exchange, user_id, creds)
            return gw

    def peek(self, user_id: str, exchange: str) -> ExchangeGateway | None:
        return self._users.get((user_id, exchange))

    async def public(self, exchange: str) -> ExchangeGateway:
        gw = self._public.get(exchange)
        if gw is not None:
            return gw
        async with self._lock:
            gw = self._public.get(exchange)
            if gw is None:
                gw = self._public[exchange] = await self.build(exchange, "_public", None)
            return gw

    async def release(self, user_id: str, exchange: str) -> None:
        gw = self._users.pop((user_id, exchange), None)
        if gw is not None:
            with contextlib.suppress(Exception):
                await gw.close()

    async def close(self) -> None:
        gateways = list(self._users.values()) + list(self._public.values())
        self._users.clear()
        self._public.clear()
        for gw in gateways:
            with contextlib.suppress(Exception):
                await gw.close()
