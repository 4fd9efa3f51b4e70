"""Building ccxt.pro clients: the settings every venue shares, and ``make_client`` for any venue.

Each venue package (``okx.client``, ``binance.client``) builds its own client class from :func:`client_config`
and finishes it with :func:`finish_client`; :func:`make_client` picks the venue (tests and benchmarks call it).
Configured as exchange-wire-notes.md says: no currency fetches, swap markets only, sandbox URLs redirected too
so nothing can reach elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from typing import Any

import certifi

from ..domain.enums import Exchange


def client_config(api_key: str, secret: str, *, base_url: str, timeout_ms: int) -> dict[str, Any]:
    return {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": not base_url,
        "timeout": timeout_ms,
        "newUpdates": True,
    }


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://").replace("https://", "wss://")


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: ccxt builds one per client (CA bundle and all, ~0.7 MB, ~20 ms)."""
    return ssl.create_default_context(cafile=certifi.where())


def finish_client(client: Any, *, hedged: bool, extra: dict[str, Any] | None) -> Any:
    # Per-user memory: permessage-deflate keeps a zlib compressor and decompressor per socket (~0.8 MB);
    # thousands of users' private streams cost more memory than their bandwidth saves.
    client.options["ws"] = {**(client.options.get("ws") or {}), "compress": 0}
    client.ssl_context = _shared_ssl_context()
    if hedged:
        client.options["hedged"] = True
    for k, v in (extra or {}).items():
        client.options[k] = v
    return client


def make_client(
    exchange: Exchange | str,
    base_url: str = "",
    api_key: str = "",
    secret: str = "",
    passphrase: str = "",
    *,
    timeout_ms: int = 10_000,
    hedged: bool = False,
    extra: dict[str, Any] | None = None,
) -> Any:
    """A ccxt.pro client of the venue; `base_url` empty = the real exchange. Without push handlers it behaves
    as plain ccxt.pro (the gateways register theirs)."""
    from .factory import gateway_class

    return gateway_class(exchange).make_client(
        base_url.rstrip("/"),
        api_key,
        secret,
        passphrase,
        timeout_ms=timeout_ms,
        hedged=hedged,
        extra=extra,
    )


# An exchange refuses WebSocket connection attempts over its per-IP rate (OKX: 3 per second, Binance USD-M:
# 300 per 5 minutes; HTTP 429): (attempts, window in seconds) kept by every client of a venue address, with a
# little margin for the time an attempt takes to reach the exchange.
WS_CONNECT_LIMITS = {Exchange.OKX: (3, 1.1), Exchange.BINANCE: (300, 310.0)}


class ConnectPacer:
    """At most `limit` connection attempts in any `window_s`: the private and business sockets of many
    accounts and the public feeds, all starting at once after a restart, are spread so the exchange admits
    them all, not refused and retried one backoff after another."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    async def wait(self) -> None:
        while True:
            now = time.monotonic()
            while self._times and now - self._times[0] >= self.window_s:
                self._times.popleft()
            if len(self._times) < self.limit:
                self._times.append(now)
                return
            await asyncio.sleep(self.window_s - (now - self._times[0]) + 0.01)


_PACERS: dict[tuple[str, str], ConnectPacer] = {}


def pacer_for(exchange: Exchange, base_url: str) -> ConnectPacer | None:
    """The process-wide pacer of a venue address (None for a venue without a known limit)."""
    limit = WS_CONNECT_LIMITS.get(exchange)
    if limit is None:
        return None
    return _PACERS.setdefault((exchange.value, base_url.rstrip("/")), ConnectPacer(*limit))


def pace_connections(client: Any, pacer: ConnectPacer | None) -> None:
    """Every WebSocket client `client` makes waits for the venue's pacer before each connection attempt (after
    ccxt's own reconnect backoff). Only the service's gateways are paced: a plain `make_client` is not."""
    if pacer is None:
        return
    make = client.client

    def paced_client(url: str) -> Any:
        ws = make(url)
        if not getattr(ws, "paced", False):
            ws.paced = True
            open_ = ws.open

            async def paced_open(session: Any, backoff_delay: float = 0) -> Any:
                if backoff_delay:
                    await asyncio.sleep(backoff_delay)
                await pacer.wait()
                return await open_(session, 0)

            ws.open = paced_open
        return ws

    client.client = paced_client
