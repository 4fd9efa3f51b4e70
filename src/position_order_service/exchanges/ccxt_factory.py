"""Building ccxt.pro clients: the settings every venue shares, and ``make_client`` for any venue.

Each venue package (``okx.client``, ``binance.client``) builds its own client class from :func:`client_config`
and finishes it with :func:`finish_client`; :func:`make_client` picks the venue (tests and benchmarks call it).
Configured as exchange-wire-notes.md says: no currency fetches, swap markets only, sandbox URLs redirected too
so nothing can reach elsewhere.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import certifi

from ..domain.enums import Exchange
from .base import ConnectionQueue

T = TypeVar("T")


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
# 300 per 5 minutes; HTTP 429) and OKX closes a connection that sends more than 480 login/subscribe/unsubscribe
# requests in an hour (60014). Every client of a venue address in this process keeps one pacer per venue
# address (a window with a guard for the time an attempt takes to reach the exchange); each socket
# keeps its own request budget. Settings (OKX_WS_CONNECTS_PER_S, OKX_WS_REQUESTS_PER_CONN_PER_HOUR,
# BINANCE_WS_CONNECTS_PER_5MIN, WS_RECONNECT_JITTER_S) change them: bootstrap calls set_connection_limits.
# An attempt reaches the exchange some time after it leaves the pacer, and not always the same time (a busy
# event loop, the network, TLS): counted from their starts, attempts spaced over OKX's one-second window were
# refused now and then at the real 3/s (2-4 of 600 with 0.1 s or even 0.25 s to spare, bench/bench_cold_start.py).
# So an attempt counts in the window from when it COMPLETES (the exchange has seen it by then) and while in
# flight: the attempt `limit` places later starts a full window after it reached the exchange, whatever the
# delays. The small guard covers the two clocks' rates and rounding.
OKX_WINDOW_S = 1.0 + 0.05
MAX_ATTEMPT_S = (
    15.0  # an attempt still in flight after this (ccxt gives up after 10 s) no longer holds a place
)
BINANCE_WINDOW_S = 300.0 + 10.0
OKX_REQUEST_WINDOW_S = 3600.0 + 60.0
REQUEST_OPS = frozenset({"login", "subscribe", "unsubscribe"})


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    okx_connects_per_s: int = 3
    okx_requests_per_conn_per_hour: int = 480
    binance_connects_per_5min: int = 300
    reconnect_jitter_s: float = 1.0  # a reconnect waits a random 0..this before its turn at the pacer

    def connect_window(self, exchange: Exchange) -> tuple[int, float, float] | None:
        """(attempts, window in seconds, spacing in seconds) of the venue's per-IP connection limit, guard
        included. Attempts count from their completion (ConnectPacer.run), so both venues keep their bursts:
        an account's private sockets and a new public feed open at once."""
        if exchange is Exchange.OKX:
            return self.okx_connects_per_s, OKX_WINDOW_S, 0.0
        if exchange is Exchange.BINANCE:
            return self.binance_connects_per_5min, BINANCE_WINDOW_S, 0.0
        return None

    def request_window(self, exchange: Exchange) -> tuple[int, float] | None:
        if exchange is Exchange.OKX:
            return self.okx_requests_per_conn_per_hour, OKX_REQUEST_WINDOW_S
        return None


_LIMITS = ConnectionLimits()


class ConnectPacer:
    """At most `limit` connection attempts in any `window_s`: the private and business sockets of many
    accounts and the public feeds, all starting at once after a restart, are spread so the exchange admits
    them all, not refused and retried one backoff after another. Waiters get their turn in the order they
    asked (a lock is first come, first served), so accounts started first connect first.

    `run(attempt)` counts an attempt from its start until it completes, and in the window from its
    completion; `wait()` (requests on an open socket, which reach the exchange at once) from its start.
    `run(attempt, waiter=w)` also lets `ahead_of(w)` say where `w` stands in the queue until its attempt
    starts (an account's health: waiting for our own turn is not the venue refusing it)."""

    def __init__(self, limit: int, window_s: float, spacing_s: float = 0.0, address: str = "") -> None:
        self.limit = limit
        self.window_s = window_s
        self.spacing_s = spacing_s  # at least this long between two starts
        self.address = address  # the venue address it paces (shown to operators), e.g. "okx 127.0.0.1:8090"
        self._times: deque[float] = deque()  # when admitted attempts completed (wait(): started)
        self._in_flight: dict[int, float] = {}  # attempt -> when it started
        self._next_id = 0
        self._last_start = float("-inf")
        self._turn = asyncio.Lock()
        self._tickets = 0
        self._queue: list[int] = []  # tickets of the run() calls not started yet, in the lock's order
        self._waiters: dict[Hashable, int] = {}  # waiter -> its ticket
        self.waited = 0  # attempts that had to wait for the window

    async def _admit(self) -> None:
        """Called holding the turn: returns once one more attempt may start now."""
        while True:
            now = time.monotonic()
            for attempt, started in list(self._in_flight.items()):
                if now - started > MAX_ATTEMPT_S:  # never finished (a lost task): counted as done by now
                    del self._in_flight[attempt]
                    self._times.append(started + MAX_ATTEMPT_S)
            while self._times and now - self._times[0] >= self.window_s:
                self._times.popleft()
            if now - self._last_start < self.spacing_s:
                self.waited += 1
                await asyncio.sleep(self.spacing_s - (now - self._last_start))
                continue
            if len(self._times) + len(self._in_flight) < self.limit:
                self._last_start = now
                return
            self.waited += 1
            # the oldest completion leaves the window then; an attempt in flight may complete sooner
            await asyncio.sleep(self.window_s - (now - self._times[0]) + 0.01 if self._times else 0.02)

    @property
    def busy(self) -> bool:
        """Another attempt is in flight or waiting for its turn (many sockets reconnecting at once)."""
        return bool(self._in_flight) or self._turn.locked()

    @property
    def rate(self) -> str:
        """The limit in words: "3/s", "300 per 5 min"."""
        if self.window_s < 2:
            return f"{self.limit}/s"
        return f"{self.limit} per {max(1, round(self.window_s / 60))} min"

    @property
    def queued(self) -> int:
        """run() calls waiting for their turn (their attempts not started)."""
        return len(self._queue)

    def ahead_of(self, waiter: Hashable) -> int | None:
        """How many attempts will start before `waiter`'s (0: it is next); None when it is not waiting."""
        ticket = self._waiters.get(waiter)
        return None if ticket is None else bisect.bisect_left(self._queue, ticket)

    def eta_s(self, ahead: int) -> float:
        """About how long until the attempt with `ahead` attempts before it starts, at the limit."""
        rounds, slot = divmod(ahead, max(1, self.limit))
        now = time.monotonic()
        # attempts still in flight hold their place in the window until they complete: at the soonest, now
        times = sorted([*self._times, *(now for _ in self._in_flight)])
        free_in = times[slot] + self.window_s - now if slot < len(times) else 0.0
        return max(0.0, free_in) + rounds * self.window_s

    def queue_of(self, waiters: list[Hashable]) -> ConnectionQueue | None:
        """Where the first of `waiters` still waiting stands (None when none waits)."""
        ahead = [a for w in waiters if (a := self.ahead_of(w)) is not None]
        if not ahead:
            return None
        first = min(ahead)
        return ConnectionQueue(len(ahead), first, self.rate, self.address, self.eta_s(first))

    async def wait(self) -> None:
        async with self._turn:
            await self._admit()
            self._times.append(self._last_start)

    async def run(self, attempt: Callable[[], Awaitable[T]], waiter: Hashable | None = None) -> T:
        ticket = self._tickets = self._tickets + 1
        self._queue.append(ticket)  # (tickets grow: the list stays sorted)
        if waiter is not None:
            self._waiters[waiter] = ticket
        try:
            async with self._turn:
                await self._admit()
                token = self._next_id = self._next_id + 1
                self._in_flight[token] = self._last_start
        finally:  # admitted, or cancelled while waiting: out of the queue
            self._leave(ticket, waiter)
        try:
            return await attempt()
        finally:
            if self._in_flight.pop(token, None) is not None:
                self._times.append(time.monotonic())

    def _leave(self, ticket: int, waiter: Hashable | None) -> None:
        i = bisect.bisect_left(self._queue, ticket)
        if i < len(self._queue) and self._queue[i] == ticket:
            del self._queue[i]
        if waiter is not None and self._waiters.get(waiter) == ticket:
            del self._waiters[waiter]


_PACERS: dict[tuple[str, str], ConnectPacer] = {}


def set_connection_limits(limits: ConnectionLimits) -> None:
    """The limits every gateway of this process paces by (bootstrap, from the settings)."""
    global _LIMITS
    if limits != _LIMITS:
        _LIMITS = limits
        _PACERS.clear()


def connection_limits() -> ConnectionLimits:
    return _LIMITS


def pacer_for(exchange: Exchange, base_url: str) -> ConnectPacer | None:
    """The process-wide pacer of a venue address (None for a venue without a known limit)."""
    window = _LIMITS.connect_window(exchange)
    if window is None:
        return None
    key = (exchange.value, base_url.rstrip("/"))
    pacer = _PACERS.get(key)
    if pacer is None:
        host = key[1].split("://", 1)[-1]
        pacer = _PACERS[key] = ConnectPacer(*window, address=f"{exchange.value} {host}".strip())
    return pacer


class PacedSockets:
    """One ccxt client's sockets at its pacer, by url: which wait for their turn (not attempted yet), and when
    each was first attempted. Kept on the client (`paced_sockets(client)`) for its gateway to tell an
    account's health "queued at our own pacer" from "attempted, and the venue or network has not opened it"."""

    def __init__(self, pacer: ConnectPacer) -> None:
        self.pacer = pacer
        self._waiting: dict[str, object] = {}  # url -> the waiter of its attempt at the pacer
        self._attempted: dict[str, float] = {}  # url -> when its first attempt started (monotonic)

    def queue(self, urls: list[str]) -> ConnectionQueue | None:
        """Where the first of these sockets waiting at the pacer stands; None when none waits."""
        return self.pacer.queue_of([w for url in urls if (w := self._waiting.get(url)) is not None])

    def first_attempt(self, url: str) -> float | None:
        return self._attempted.get(url)

    async def open(self, url: str, attempt: Callable[[], Awaitable[T]]) -> T:
        waiter = self._waiting[url] = object()

        async def started() -> T:
            self._waiting.pop(url, None)
            self._attempted.setdefault(url, time.monotonic())
            return await attempt()

        try:
            return await self.pacer.run(started, waiter)
        finally:
            if self._waiting.get(url) is waiter:  # (cancelled while waiting)
                del self._waiting[url]


def paced_sockets(client: Any) -> PacedSockets | None:
    """What the pacer knows of `client`'s sockets (None: not paced, see pace_connections)."""
    paced = getattr(client, "paced_sockets", None)
    return paced if isinstance(paced, PacedSockets) else None


def pace_connections(
    client: Any,
    pacer: ConnectPacer | None,
    limits: ConnectionLimits | None = None,
    exchange: Exchange | None = None,
) -> None:
    """Every WebSocket client `client` makes waits for the venue's pacer before each connection attempt (after
    ccxt's own reconnect backoff, and on a reconnect while other attempts are under way (a storm) after a random
    jitter of up to reconnect_jitter_s, so that sockets dropped together do not all queue in the order they
    dropped, and several processes sharing an address do not come back in lockstep; a lone reconnect goes at
    once). On OKX each socket also paces its login/subscribe/unsubscribe
    requests within the per-connection hourly budget. Only the service's gateways are paced: a plain
    `make_client` is not."""
    if pacer is None:
        return
    limits = limits or _LIMITS
    requests = limits.request_window(exchange) if exchange is not None else None
    make = client.client
    sockets = client.paced_sockets = PacedSockets(pacer)
    opened: set[str] = set()  # urls this client connected before: the next open of one is a reconnect

    def paced_client(url: str) -> Any:
        ws = make(url)
        if not getattr(ws, "paced", False):
            ws.paced = True
            open_ = ws.open

            async def paced_open(session: Any, backoff_delay: float = 0) -> Any:
                if backoff_delay:
                    await asyncio.sleep(backoff_delay)
                if url in opened and limits.reconnect_jitter_s > 0 and pacer.busy:
                    await asyncio.sleep(random.uniform(0, limits.reconnect_jitter_s))
                opened.add(url)
                return await sockets.open(url, lambda: open_(session, 0))

            ws.open = paced_open
            if requests is not None:
                budget = ws.request_budget = ConnectPacer(*requests)  # bursts allowed: the window is an hour
                send = ws.send

                async def paced_send(message: Any) -> Any:
                    if isinstance(message, dict) and message.get("op") in REQUEST_OPS:
                        await budget.wait()
                    return await send(message)

                ws.send = paced_send
        return ws

    client.client = paced_client
