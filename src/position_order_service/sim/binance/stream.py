"""WebSocket hub: turns engine events into Binance pushes and routes them to connections.

Engine events arrive synchronously from ``engine.subscribe``; the hub only appends them to a buffer and
schedules one flush on the event loop (``call_soon``), so the engine is never blocked and one engine call's
events (order trade, position, balance) are seen together: a fill's position and balance changes become one
ACCOUNT_UPDATE, as on Binance. Every connection has its own queue drained by its own sender task.

Routing: user-stream connections by account id (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE,
ACCOUNT_CONFIG_UPDATE); market connections by stream name (``<symbol>@miniTicker``, ``@ticker``,
``@bookTicker``, ``@markPrice[@1s]`` and the ``!..@arr`` all-market forms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from ..engine import (
    AccountConfigEvent,
    AlgoEvent,
    AlgoEventKind,
    BalanceEvent,
    EngineError,
    Event,
    OrderEvent,
    OrderState,
    PositionEvent,
    SimEngine,
    TickerEvent,
)
from . import ws_format
from .auth import AccountKeys
from .market import MarketStats, mini_ticker_event, ticker_event
from .rest_format import algo_status

__all__ = ["MAX_QUEUE", "Connection", "StreamHub"]

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
"""A connection whose unsent backlog passes this is dropped (a slow consumer, as Binance does)."""

_ZERO = Decimal(0)
_OPEN = (OrderState.LIVE, OrderState.PARTIALLY_FILLED)


def _dumps(payload: Any) -> str:
    return orjson.dumps(payload).decode()


class Connection:
    """One accepted WebSocket: its subscriptions and its outgoing queue."""

    def __init__(
        self, ws: web.WebSocketResponse, account_id: str | None, listen_key: str | None, combined: bool
    ) -> None:
        self.ws = ws
        self.account_id = account_id
        self.listen_key = listen_key
        self.combined = combined
        self.streams: set[str] = set()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())
        self._closing: asyncio.Future[bool] | None = None
        self.closed = False

    def send(self, text: str) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= MAX_QUEUE:
            log.warning("dropping a slow WebSocket consumer (%d messages behind)", MAX_QUEUE)
            self.closed = True
            self._closing = asyncio.ensure_future(self.ws.close(code=1008, message=b"slow consumer"))
            return
        self._queue.put_nowait(text)

    def send_user(self, payload: dict[str, Any]) -> None:
        if self.combined:
            self.send(_dumps({"stream": self.listen_key, "data": payload}))
        else:
            self.send(_dumps(payload))

    async def _pump(self) -> None:
        ws = self.ws
        queue = self._queue
        try:
            while True:
                text = await queue.get()
                await ws.send_str(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away: the receive loop ends the connection
            self.closed = True

    async def stop(self) -> None:
        self.closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def _market_streams(symbol: str) -> tuple[tuple[str, str], ...]:
    """(stream name, kind) pairs a price change of ``symbol`` feeds."""
    s = symbol.lower()
    return (
        (f"{s}@miniTicker", "mini"),
        (f"{s}@ticker", "ticker"),
        (f"{s}@bookTicker", "book"),
        (f"{s}@markPrice", "mark"),
        (f"{s}@markPrice@1s", "mark"),
        ("!miniTicker@arr", "mini_arr"),
        ("!ticker@arr", "ticker_arr"),
        ("!bookTicker", "book"),
        ("!markPrice@arr", "mark_arr"),
        ("!markPrice@arr@1s", "mark_arr"),
    )


class StreamHub:
    def __init__(self, engine: SimEngine, keys: AccountKeys, stats: MarketStats) -> None:
        self._engine = engine
        self._keys = keys
        self._stats = stats
        self._user: dict[str, set[Connection]] = {}
        self._streams: dict[str, set[Connection]] = {}
        self._pending: list[Event] = []
        self._scheduled = False
        self._unsubscribe: Callable[[], None] | None = engine.subscribe(self._on_event)

    # ------------------------------------------------------------------ connections

    def add(self, conn: Connection) -> None:
        if conn.account_id is not None:
            self._user.setdefault(conn.account_id, set()).add(conn)

    def subscribe(self, conn: Connection, streams: Iterable[str]) -> None:
        for name in streams:
            conn.streams.add(name)
            self._streams.setdefault(name, set()).add(conn)

    def unsubscribe(self, conn: Connection, streams: Iterable[str]) -> None:
        for name in streams:
            conn.streams.discard(name)
            subs = self._streams.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._streams[name]

    async def remove(self, conn: Connection) -> None:
        self.unsubscribe(conn, list(conn.streams))
        if conn.account_id is not None:
            conns = self._user.get(conn.account_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._user[conn.account_id]
        await conn.stop()

    def user_connections(self, account_id: str) -> list[Connection]:
        return list(self._user.get(account_id, ()))

    def subscribers(self, stream: str) -> int:
        """How many connections subscribed to ``stream``."""
        return len(self._streams.get(stream, ()))

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        conns = {c for s in self._user.values() for c in s} | {c for s in self._streams.values() for c in s}
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"server shutdown")
            await conn.stop()
        self._user.clear()
        self._streams.clear()

    # ------------------------------------------------------------------ engine events

    def _on_event(self, event: Event) -> None:
        self._pending.append(event)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # engine driven outside the loop (setup code): nobody is connected yet
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        events = self._pending
        self._pending = []
        self._scheduled = False
        i = 0
        n = len(events)
        while i < n:
            ev = events[i]
            i += 1
            try:
                if type(ev) is TickerEvent:
                    self._ticker(ev)
                elif type(ev) is OrderEvent:
                    self._order(ev)
                elif type(ev) is PositionEvent:
                    nxt = events[i] if i < n else None
                    if type(nxt) is BalanceEvent and nxt.account_id == ev.account_id:
                        i += 1
                        self._account(nxt, [ev.position])
                elif type(ev) is BalanceEvent:
                    self._account(ev, [])
                elif type(ev) is AlgoEvent:
                    self._algo(ev)
                elif type(ev) is AccountConfigEvent:
                    self._config(ev)
            except Exception:  # one bad event must not stop the others
                log.exception("failed to push engine event %r", ev)

    def _push_user(self, account_id: str, payload: dict[str, Any]) -> None:
        conns = self._user.get(account_id)
        if not conns:
            return
        text = _dumps(payload)
        for conn in conns:
            if conn.combined:
                conn.send_user(payload)
            else:
                conn.send(text)

    def _ticker(self, ev: TickerEvent) -> None:
        t = ev.ticker
        stats = self._stats.on_ticker(t)
        if not self._streams:
            return
        for name, kind in _market_streams(t.inst_id):
            conns = self._streams.get(name)
            if not conns:
                continue
            payload: Any
            if kind == "mini":
                payload = mini_ticker_event(t.inst_id, stats, ev.ts)
            elif kind == "mini_arr":
                payload = [mini_ticker_event(t.inst_id, stats, ev.ts)]
            elif kind == "ticker":
                payload = ticker_event(t.inst_id, stats, ev.ts)
            elif kind == "ticker_arr":
                payload = [ticker_event(t.inst_id, stats, ev.ts)]
            elif kind == "book":
                payload = ws_format.book_ticker_event(t)
            elif kind == "mark":
                payload = ws_format.mark_price_event(t)
            else:
                payload = [ws_format.mark_price_event(t)]
            text = _dumps(payload)
            for conn in conns:
                conn.send(_dumps({"stream": name, "data": payload}) if conn.combined else text)

    def _order(self, ev: OrderEvent) -> None:
        if ev.fill is not None:
            self._stats.on_fill(ev.fill)
        if ev.account_id not in self._user:
            return
        self._push_user(ev.account_id, ws_format.order_trade_update(ev))
        o = ev.order
        if o.algo_id is not None and o.state not in _OPEN:
            self._algo_finished(ev.account_id, o.algo_id, ev)

    def _algo_finished(self, account_id: str, algo_id: str, ev: OrderEvent) -> None:
        api_key = self._keys.api_key_of(account_id)
        if api_key is None:
            return
        try:
            algo = self._engine.get_algo(api_key, algo_id=algo_id)
        except EngineError:
            return
        o = ev.order
        payload = ws_format.algo_update(algo, "FINISHED", ev.ts, o.avg_px, o.filled_sz)
        self._push_user(account_id, payload)

    def _account(self, balance: BalanceEvent, positions: list[Any]) -> None:
        if balance.account_id in self._user:
            self._push_user(balance.account_id, ws_format.account_update(balance, positions))

    def _algo(self, ev: AlgoEvent) -> None:
        if ev.kind is AlgoEventKind.ACTIVATED or ev.account_id not in self._user:
            return
        a = ev.algo
        status = "TRIGGERED" if ev.kind is AlgoEventKind.TRIGGERED else algo_status(a, None)
        self._push_user(ev.account_id, ws_format.algo_update(a, status, ev.ts, None, _ZERO))

    def _config(self, ev: AccountConfigEvent) -> None:
        if ev.kind != "leverage" or ev.inst_id is None or ev.leverage is None or ev.pos_side is not None:
            return
        if ev.account_id in self._user:
            self._push_user(ev.account_id, ws_format.account_config_update(ev.ts, ev.inst_id, ev.leverage))
