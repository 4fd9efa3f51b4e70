"""Building ccxt.pro clients: the settings every venue shares, and ``make_client`` for any venue.

Each venue package (``okx.client``, ``binance.client``) builds its own client class from :func:`client_config`
and finishes it with :func:`finish_client`; :func:`make_client` picks the venue (tests and benchmarks call it).
Configured as exchange-wire-notes.md says: no currency fetches, swap markets only, sandbox URLs redirected too
so nothing can reach elsewhere.
"""

from __future__ import annotations

import functools
import ssl
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
