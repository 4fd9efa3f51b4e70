"""A GatewayProvider that builds one gateway per (user, exchange) from stored credentials, and shares one
public gateway per exchange for market data."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from .. import metrics
from ..exchanges.base import Credentials, ExchangeGateway
from .credentials import CredentialStore

GatewayBuilder = Callable[[str, str, Credentials | None], Awaitable[ExchangeGateway]]


class InstrumentedGateway:
    """Wraps a gateway: latency and errors of every call, by exchange and endpoint (method)."""

    def __init__(self, inner: ExchangeGateway) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        exchange = str(getattr(self._inner.exchange, "value", self._inner.exchange))
        streaming = name.startswith("watch_")

        async def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = await attr(*args, **kwargs)
            except Exception as exc:
                metrics.exchange_errors.labels(
                    exchange=exchange, endpoint=name, error=type(exc).__name__
                ).inc()
                raise
            if not streaming:  # a watch waits for the market; its duration is not a latency
                metrics.exchange_latency.labels(exchange=exchange, endpoint=name).observe(
                    time.perf_counter() - start
                )
            return result

        self.__dict__[name] = call  # built once per method: later lookups never reach __getattr__
        return call


def instrumented(gateway: ExchangeGateway) -> ExchangeGateway:
    return cast(ExchangeGateway, InstrumentedGateway(gateway))


class GatewayPool:
    def __init__(self, credentials: CredentialStore, build: GatewayBuilder) -> None:
        self.credentials = credentials
        self.build = build
        self._users: dict[tuple[str, str], ExchangeGateway] = {}
        self._used: dict[tuple[str, str], float] = {}  # last use (monotonic) of each user's gateway
        self._public: dict[str, ExchangeGateway] = {}
        self._lock = asyncio.Lock()

    async def for_user(self, user_id: str, exchange: str) -> ExchangeGateway:
        key = (user_id, exchange)
        self._used[key] = time.monotonic()
        gw = self._users.get(key)
        if gw is not None:
            return gw
        async with self._lock:
            gw = self._users.get(key)
            if gw is None:
                creds = await self.credentials.get(user_id, exchange)
                gw = self._users[key] = instrumented(await self.build(exchange, user_id, creds))
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
                gw = self._public[exchange] = instrumented(await self.build(exchange, "_public", None))
            return gw

    def detach(self, user_id: str, exchange: str) -> ExchangeGateway | None:
        """Take the user's gateway out of the pool (the next `for_user` builds a new one); close it yourself."""
        self._used.pop((user_id, exchange), None)
        return self._users.pop((user_id, exchange), None)

    async def evict_idle(self, keep: set[tuple[str, str]], idle_s: float) -> int:
        """Close the gateways of users not in `keep` (not tracked) that nobody used for `idle_s`: a command
        for an untracked user must not leave its sockets and client behind for good."""
        now = time.monotonic()
        stale = [k for k in list(self._users) if k not in keep and now - self._used.get(k, 0.0) > idle_s]
        gateways = [gw for k in stale if (gw := self.detach(*k)) is not None]
        await asyncio.gather(*(gw.close() for gw in gateways), return_exceptions=True)
        return len(gateways)

    async def reset_public(self, exchange: str) -> None:
        """Rebuild the exchange's public connection (a price feed went silent): the next `public` builds anew."""
        gw = self._public.pop(exchange, None)
        if gw is not None:
            with contextlib.suppress(Exception):
                await gw.close()

    async def release(self, user_id: str, exchange: str) -> None:
        gw = self.detach(user_id, exchange)
        if gw is not None:
            with contextlib.suppress(Exception):
                await gw.close()

    async def close(self) -> None:
        gateways = list(self._users.values()) + list(self._public.values())
        self._users.clear()
        self._public.clear()
        # concurrently: each ccxt client's close() waits ~250 ms, one after another that is minutes
        await asyncio.gather(*(gw.close() for gw in gateways), return_exceptions=True)
