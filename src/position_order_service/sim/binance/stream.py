"""WebSocket hub: turns engine events into Binance pushes and routes them to connections.

Engine events arrive synchronously from ``engine.subscribe``; the hub only appends them to a buffer and
schedules one flush on the event loop (``call_soon``), so the engine is never blocked and one engine call's
events (order trade, position, balance) are seen together: a fill's position and balance changes become one
ACCOUNT_UPDATE, as on Binance. Every connection has its own queue drained by its own sender task.

Routing: user-stream connections by account id (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE,
ACCOUNT_CONFIG_UPDATE); market connections by stream name (``<symbol>@miniTicker``, ``@ticker``,
``@bookTicker``, ``@markPrice[@1s]`` and the ``!..@arr`` all-market forms).

Data pushes go through each connection's :class:`~..push_faults.PushShaper` (ws_drop, ws_duplicate,
ws_reorder by event type); replies to SUBSCRIBE etc. do not. Mark price streams push on change and, as on
Binance, every 3 s (``@markPrice``) or 1 s (``@1s``) regardless (:class:`~..mark_pacer.MarkPacer`).
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

from ...aio import spawn
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
    push_names,
)
from ..mark_pacer import MarkPacer
from ..push_faults import PushShaper
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
        self._task = spawn(self._pump(), name=f"sim-binance-ws-pump-{account_id or 'market'}")
        self._closing: asyncio.Task[None] | None = None
        self.closed = False
        self.shaper: PushShaper[str] | None = None

    def push(self, text: str, event_type: str) -> None:
        """A data push (``event_type``: its ``e``): push faults apply, unlike replies sent with ``send``."""
        if self.shaper is None:
            self.send(text)
        else:
            self.shaper.send(text, push_names(event_type))

    def send(self, text: str) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= MAX_QUEUE:
            log.warning("dropping a slow WebSocket consumer (%d messages behind)", MAX_QUEUE)
            self.closed = True
            self._closing = spawn(self._close(1008, b"slow consumer"), name="sim-binance-ws-close")
            return
        self._queue.put_nowait(text)

    def send_user(self, payload: dict[str, Any]) -> None:
        text = _dumps({"stream": self.listen_key, "data": payload}) if self.combined else _dumps(payload)
        self.push(text, str(payload.get("e", "")))

    async def _close(self, code: int, message: bytes) -> None:
        await self.ws.close(code=code, message=message)

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
        if self.shaper is not None:
            self.shaper.close()
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
        ("!miniTicker@arr", "mini_arr"),
        ("!ticker@arr", "ticker_arr"),
        ("!bookTicker", "book"),
    )


_EVENT_TYPES = {"mini": "24hrMiniTicker", "mini_arr": "24hrMiniTicker", "ticker": "24hrTicker",
                "ticker_arr": "24hrTicker", "book": "bookTicker"}  # fmt: skip
_MARK_ARR = ("!markPrice@arr", "!markPrice@arr@1s")


def _mark_streams(symbol: str) -> tuple[str, ...]:
    s = symbol.lower()
    return (f"{s}@markPrice", f"{s}@markPrice@1s", *_MARK_ARR)


def _is_mark_stream(name: str) -> bool:
    return "@markPrice" in name


def _mark_interval_s(name: str) -> float:
    return 1.0 if name.endswith("@1s") else 3.0


class StreamHub:
    def __init__(self, engine: SimEngine, keys: AccountKeys, stats: MarketStats) -> None:
        self._engine = engine
        self._keys = keys
        self._stats = stats
        self._user: dict[str, set[Connection]] = {}
        self._streams: dict[str, set[Connection]] = {}
        self._pending: list[Event] = []
        self._scheduled = False
        self._last_mark: dict[str, Decimal] = {}
        self.marks = MarkPacer(
            self._push_mark,
            lambda: [n for n in self._streams if _is_mark_stream(n)],
            min_gap_s=0.0,
            idle_s=_mark_interval_s,
        )
        self._unsubscribe: Callable[[], None] | None = engine.subscribe(self._on_event)

    # ------------------------------------------------------------------ connections

    def add(self, conn: Connection) -> None:
        identity = "binance:user" if conn.account_id is not None else "binance:market"
        conn.shaper = PushShaper(self._engine.faults, identity, conn.send)
        if conn.account_id is not None:
            self._user.setdefault(conn.account_id, set()).add(conn)

    def subscribe(self, conn: Connection, streams: Iterable[str]) -> None:
        for name in streams:
            conn.streams.add(name)
            self._streams.setdefault(name, set()).add(conn)
            if _is_mark_stream(name):
                self.marks.start()

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
        self.marks.close()
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
        event_type = str(payload.get("e", ""))
        for conn in conns:
            if conn.combined:
                conn.send_user(payload)
            else:
                conn.push(text, event_type)

    def _ticker(self, ev: TickerEvent) -> None:
        t = ev.ticker
        stats = self._stats.on_ticker(t)
        mark_changed = self._last_mark.get(t.inst_id) != t.mark
        self._last_mark[t.inst_id] = t.mark
        if not self._streams:
            return
        if mark_changed:
            for name in _mark_streams(t.inst_id):
                if name in self._streams:
                    self.marks.changed(name)
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
            else:
                payload = ws_format.book_ticker_event(t)
            self._push_market(name, conns, payload, _EVENT_TYPES[kind])

    def _push_market(self, name: str, conns: set[Connection], payload: Any, event_type: str) -> None:
        text = _dumps(payload)
        for conn in conns:
            conn.push(_dumps({"stream": name, "data": payload}) if conn.combined else text, event_type)

    def _push_mark(self, name: str) -> None:
        """The current mark price on stream ``name`` (``<sym>@markPrice[@1s]`` or ``!markPrice@arr[@1s]``)."""
        conns = self._streams.get(name)
        if not conns:
            return
        now = self._engine.now_ms()
        payload: Any
        if name in _MARK_ARR:
            tickers = [self._engine.ticker(i.inst_id) for i in self._engine.instruments()]
            payload = [ws_format.mark_price_event(t, now) for t in tickers if t is not None]
            if not payload:
                return
        else:
            symbol = name.split("@", 1)[0].upper()
            try:
                t = self._engine.ticker(symbol)
            except EngineError:  # a stream of an unknown symbol: Binance stays silent too
                return
            if t is None:
                return
            payload = ws_format.mark_price_event(t, now)
        self._push_market(name, conns, payload, "markPriceUpdate")

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
