"""Builds ccxt.pro clients for OKX and Binance USD-M, optionally pointed at a base URL (the simulator).

Configured as exchange-wire-notes.md says: no currency fetches, swap markets only, sandbox URLs redirected too
so nothing can reach elsewhere, and Binance's linear error table forced (a loopback URL never matches ccxt's
URL-prefix lookup, so -2019 would surface as a plain ExchangeError otherwise).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import certifi

from ..domain.enums import Exchange

CCXT_IDS = {Exchange.OKX: "okx", Exchange.BINANCE: "binanceusdm"}


def _okx_urls(base: str) -> dict[str, str]:
    ws = base.replace("http://", "ws://").replace("https://", "wss://") + "/ws/v5"
    return {"rest": base, "ws": ws}


def _binance_urls(base: str, template: dict[str, Any]) -> dict[str, Any]:
    urls = dict(template)
    for key, path in (
        ("fapiPublic", "/fapi/v1"),
        ("fapiPublicV2", "/fapi/v2"),
        ("fapiPublicV3", "/fapi/v3"),
        ("fapiPrivate", "/fapi/v1"),
        ("fapiPrivateV2", "/fapi/v2"),
        ("fapiPrivateV3", "/fapi/v3"),
        ("fapiData", "/futures/data"),
    ):
        urls[key] = base + path
    ws = dict(urls.get("ws", {}))
    ws["linear"] = base.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
    urls["ws"] = ws
    return urls


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: ccxt builds one per client (CA bundle and all, ~0.7 MB, ~20 ms)."""
    return ssl.create_default_context(cafile=certifi.where())


@functools.cache
def _binance_error_table() -> dict[str, Any]:
    """The shared codes plus the linear (USD-M) ones: merged, so -1022 or -2013 map as on the real URL."""
    exceptions = ccxt.binanceusdm().exceptions
    return {**exceptions["exact"], **exceptions["linear"]["exact"]}


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
    """A ccxt.pro client; `base_url` empty = the real exchange."""
    exchange = Exchange(exchange)
    config: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": not base_url,
        "timeout": timeout_ms,
        "newUpdates": True,
    }
    if exchange is Exchange.OKX:
        config["password"] = passphrase
        config["options"] = {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}
        client = ccxtpro.okx(config)
        client.has["fetchCurrencies"] = False
        if base_url:
            urls = _okx_urls(base_url.rstrip("/"))
            client.urls["api"] = dict(urls)
            client.urls["test"] = dict(urls)
    elif exchange is Exchange.BINANCE:
        config["options"] = {"fetchCurrencies": False, "defaultType": "future"}
        client = ccxtpro.binanceusdm(config)
        if base_url:
            base = base_url.rstrip("/")
            client.urls["api"] = _binance_urls(base, client.urls["api"])
            client.urls["test"] = _binance_urls(base, client.urls.get("test", {}))
            table = _binance_error_table()
            client.exceptions = {
                **client.exceptions,
                "exact": table,
            }
    else:
        raise ValueError(f"{exchange.value} is not supported yet")
    # Per-user memory: permessage-deflate keeps a zlib compressor and decompressor per socket (~0.8 MB);
    # thousands of users' private streams cost more memory than their bandwidth saves.
    client.options["ws"] = {**(client.options.get("ws") or {}), "compress": 0}
    client.ssl_context = _shared_ssl_context()
    if hedged:
        client.options["hedged"] = True
    for k, v in (extra or {}).items():
        client.options[k] = v
    return client


RECENT = 8  # resolutions remembered per message hash


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
    limit = WS_CONNECT_LIMITS.get(exchange)
    if limit is None:
        return None
    return _PACERS.setdefault((exchange.value, base_url.rstrip("/")), ConnectPacer(*limit))


def instrument_clients(exchange: Any, pacer: ConnectPacer | None) -> None:
    """Every WebSocket client this exchange object makes:
    - remembers its last price resolutions per message hash (`recent`: tickers and mark prices, where only the
      newest matters). ccxt resolves a watch's future with each message and drops the value of a message that
      arrives while no future waits (the watcher has not re-armed yet: two pushes read in one loop turn), so a
      price watcher that wakes up reads the newest value, not the first of a burst. (Positions read ccxt's
      position cache instead; orders and trades are kept by ccxt's own caches.)
    - waits for the venue's connection pacer before each connection attempt (after ccxt's own backoff)."""
    make = exchange.client

    def client(url: str) -> Any:
        ws = make(url)
        if not hasattr(ws, "recent"):
            ws.recent = {}
            resolve = ws.resolve

            def remembering(result: Any, message_hash: Any) -> Any:
                if isinstance(message_hash, str) and ("ticker" in message_hash or "mark" in message_hash):
                    ws.recent.setdefault(message_hash, deque(maxlen=RECENT)).append(result)
                return resolve(result, message_hash)

            ws.resolve = remembering
            if pacer is not None:
                open_ = ws.open

                async def paced_open(session: Any, backoff_delay: float = 0) -> Any:
                    if backoff_delay:
                        await asyncio.sleep(backoff_delay)
                    await pacer.wait()
                    return await open_(session, 0)

                ws.open = paced_open
        return ws

    exchange.client = client


def recent_resolutions_matching(exchange: Any, match: Callable[[str], bool]) -> list[Any]:
    """What the exchange's WebSocket clients resolved lately under the message hashes `match` accepts."""
    out: list[Any] = []
    for ws in list((getattr(exchange, "clients", None) or {}).values()):
        for message_hash, values in list(getattr(ws, "recent", {}).items()):
            if isinstance(message_hash, str) and match(message_hash):
                out.extend(values)
    return out
