"""OKX v5 WebSocket front: /ws/v5/public, /ws/v5/private, /ws/v5/business.

Protocol (what ccxt.pro.okx speaks): text ``ping`` -> ``pong``; ``{"op":"login","args":[{apiKey, passphrase,
timestamp, sign}]}`` -> ``{"event":"login","code":"0",...}`` or ``{"event":"error","code":"600xx",...}``;
``{"op":"subscribe"|"unsubscribe","args":[{channel,...}]}`` -> one ack per arg, then pushes
``{"arg":{...,"uid"},"data":[...]}``; order ops (``order``, ``batch-orders``, ``cancel-order``, ``amend-order``
and their batch forms) on /private -> ``{"id","op","code","msg","data"}``.

Channels: public ``tickers``, ``mark-price`` (instId); private ``orders``, ``positions`` (instType, optional
instId/instFamily; ``positions`` pushes a snapshot on subscribe), ``account`` (snapshot on subscribe);
business ``orders-algo`` (conditional/oco/trigger) and ``algo-advance`` (move_order_stop).

Engine events arrive synchronously from ``SimEngine.subscribe``: the hub formats each once, serialises it per
matching subscription and puts the text on the connection's queue; a writer task per connection sends it.
The engine is never blocked by a socket. Pushes go only to connections logged in as the event's account.

Data pushes pass through the connection's :class:`~..push_faults.PushShaper` (ws_drop, ws_duplicate,
ws_reorder); replies never do. ``mark-price`` pushes on change at most every 200 ms and every 10 s when the
mark is unchanged (:class:`~..mark_pacer.MarkPacer`). Connection limits (``..limits``): an upgrade over
the per-IP attempt rate gets HTTP 429; a connection's 481st login/subscribe/unsubscribe within an hour gets
``{"event":"error","code":"60014"}`` and the socket is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from ...aio import spawn
from ..context import SimContext
from ..engine import (
    Account,
    AlgoEvent,
    AlgoType,
    BalanceEvent,
    Event,
    Instrument,
    OrderEvent,
    OrderEventKind,
    PositionEvent,
    SimEngine,
    TickerEvent,
    UnknownInstrument,
    push_names,
)
from ..limits import RequestBudget
from ..mark_pacer import MarkPacer
from ..push_faults import PushShaper
from .auth import verify_login
from .codes import OkxError
from .fmt import algo_dict, balance_dict, mark_price_dict, order_dict, position_dict, ticker_dict
from .market import MarketStats
from .trade import Reply, Trader

__all__ = ["MAX_QUEUE", "Conn", "Hub", "Sub", "encode"]

log = logging.getLogger(__name__)

PUBLIC, PRIVATE, BUSINESS = "public", "private", "business"
MAX_QUEUE = 100_000
"""Messages waiting for one slow client before the hub drops it (OKX closes such sockets too)."""
MARK_MIN_GAP_S = 0.2
MARK_IDLE_S = 10.0
_LIMITED_OPS = ("login", "subscribe", "unsubscribe")


@dataclass(frozen=True, slots=True)
class _Channel:
    url: str
    private: bool
    needs_inst_id: bool = False
    needs_inst_type: bool = False


CHANNELS: dict[str, _Channel] = {
    "tickers": _Channel(PUBLIC, False, needs_inst_id=True),
    "mark-price": _Channel(PUBLIC, False, needs_inst_id=True),
    "orders": _Channel(PRIVATE, True, needs_inst_type=True),
    "positions": _Channel(PRIVATE, True, needs_inst_type=True),
    "account": _Channel(PRIVATE, True),
    "orders-algo": _Channel(BUSINESS, True, needs_inst_type=True),
    "algo-advance": _Channel(BUSINESS, True, needs_inst_type=True),
}
_INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "ANY")
_MATCH_TYPES = (None, "ANY", "SWAP")
_ORDER_OPS = (
    "order",
    "batch-orders",
    "cancel-order",
    "batch-cancel-orders",
    "amend-order",
    "batch-amend-orders",
)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


@dataclass(slots=True)
class Sub:
    channel: str
    arg: dict[str, Any]  # as the client sent it: echoed in acks
    push_arg: dict[str, Any]  # arg + uid: the "arg" of every push
    inst_type: str | None = None
    inst_id: str | None = None
    inst_family: str | None = None
    ccy: str | None = None

    def matches(self, inst_id: str, family: str) -> bool:
        return (
            self.inst_type in _MATCH_TYPES
            and (self.inst_id is None or self.inst_id == inst_id)
            and (self.inst_family is None or self.inst_family == family)
        )


_MERGED_CHANNELS = frozenset({"orders", "orders-algo", "algo-advance"})
_Item = (
    str | tuple[Sub | None, dict[str, Any]] | None
)  # None: close the socket once the queue before it is sent


def encode(items: list[str | tuple[Sub | None, dict[str, Any]]]) -> list[str]:
    """Serialise queued items; adjacent pushes for the same ``orders``/``orders-algo``/``algo-advance``
    subscription become one message with several ``data`` entries (OKX's ``data`` is an array). A client
    therefore sees an order's live -> filled sequence at once: ccxt keeps no buffer between two watch calls,
    so separate back-to-back frames can leave the last update unseen until the next push."""
    out: list[str] = []
    prev_sub: Sub | None = None
    prev: dict[str, Any] | None = None
    for item in items:
        if isinstance(item, str):
            if prev is not None:
                out.append(_dumps(prev))
                prev = prev_sub = None
            out.append(item)
            continue
        sub, payload = item
        if sub is not None and sub is prev_sub and prev is not None:
            prev["data"] = [*prev["data"], *payload["data"]]
            continue
        if prev is not None:
            out.append(_dumps(prev))
        if sub is not None and sub.channel in _MERGED_CHANNELS:
            prev, prev_sub = dict(payload), sub
        else:
            prev = prev_sub = None
            out.append(_dumps(payload))
    if prev is not None:
        out.append(_dumps(prev))
    return out


@dataclass(eq=False, slots=True)
class Conn:
    """One client socket: its URL kind, login, subscriptions and outgoing queue."""

    ws: web.WebSocketResponse
    kind: str
    conn_id: str
    account: Account | None = None
    subs: dict[str, list[Sub]] = field(default_factory=dict)
    queue: asyncio.Queue[_Item] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUE))
    writer: asyncio.Task[None] | None = None
    closer: asyncio.Task[None] | None = None  # the close of a connection dropped for a full buffer
    overflowed: bool = False
    shaper: PushShaper[tuple[Sub, dict[str, Any]]] | None = None
    budget: RequestBudget | None = None
    closing: bool = False  # closed for too many requests: what the client still sends is ignored

    def _put(self, item: _Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if not self.overflowed:
                self.overflowed = True
                log.warning("okx ws %s: client too slow, dropping the connection", self.conn_id)
                self.closer = spawn(
                    self._close(1013, b"buffer full"), name=f"sim-okx-ws-close-{self.conn_id}"
                )

    async def _close(self, code: int, message: bytes) -> None:
        await self.ws.close(code=code, message=message)

    def push_text(self, text: str) -> None:
        self._put(text)

    def close_after_queued(self) -> None:
        self.closing = True
        self._put(None)

    def push(self, payload: dict[str, Any], sub: Sub | None = None) -> None:
        """Queue a message; the writer task serialises it (``sub``: the subscription a data push is for)."""
        self._put((sub, payload))

    def push_data(self, payload: dict[str, Any], sub: Sub) -> None:
        """A data push caused by a change (not a reply, not a subscription's snapshot): push faults apply."""
        if self.shaper is None:
            self._put((sub, payload))
        else:
            self.shaper.send((sub, payload), push_names(sub.channel))

    def _deliver(self, item: tuple[Sub, dict[str, Any]]) -> None:
        self._put(item)

    def _deliver_again(self, item: tuple[Sub, dict[str, Any]]) -> None:
        self._put(_dumps(item[1]))  # its own frame: not merged into the first copy's message

    def error(self, code: str, msg: str, req_id: str | None = None) -> None:
        body: dict[str, Any] = {"event": "error", "code": code, "msg": msg, "connId": self.conn_id}
        if req_id is not None:
            body["id"] = req_id
        self.push(body)

    async def run_writer(self) -> None:
        ws, queue = self.ws, self.queue
        try:
            while True:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                closing = None in items
                cut = items.index(None) if closing else len(items)
                for text in encode([i for i in items[:cut] if i is not None]):
                    await ws.send_str(text)
                if closing:
                    await ws.close(code=1008, message=b"Requests too frequent.")
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer is gone: the reader loop ends the connection
            return


def _family(inst: Instrument) -> str:
    return f"{inst.base}-{inst.quote}"


class Hub:
    """All WebSocket connections of the front and the fan-out of engine events to them."""

    def __init__(self, ctx: SimContext, trader: Trader, stats: MarketStats) -> None:
        self.ctx = ctx
        self.engine: SimEngine = ctx.engine
        self.trader = trader
        self.stats = stats
        self.conns: set[Conn] = set()
        self._by_account: dict[str, set[Conn]] = {}
        self._by_inst: dict[str, set[Conn]] = {}  # public ticker/mark-price subscribers per instId
        self._last_trade: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._families: dict[str, str] = {}
        self._last_mark: dict[str, Decimal] = {}
        self.marks = MarkPacer(
            self._push_mark, self._mark_keys, min_gap_s=MARK_MIN_GAP_S, idle_s=lambda _: MARK_IDLE_S
        )

    # ------------------------------------------------------------------ engine events (synchronous)

    def _inst_family(self, inst_id: str) -> str:
        fam = self._families.get(inst_id)
        if fam is None:
            fam = self._families[inst_id] = _family(self.engine.instrument(inst_id))
        return fam

    def on_event(self, ev: Event) -> None:
        """Engine listener. Never raises: an exception here would surface as an error of the engine call
        whose state change already stands (a placed order would look failed to the REST client)."""
        try:
            if isinstance(ev, TickerEvent):
                self._on_ticker(ev)
            elif isinstance(ev, OrderEvent):
                self._on_order(ev)
            elif isinstance(ev, PositionEvent):
                self._on_position(ev)
            elif isinstance(ev, BalanceEvent):
                self._on_balance(ev)
            elif isinstance(ev, AlgoEvent):
                self._on_algo(ev)
        except Exception:
            log.exception("okx ws: failed to push %s", type(ev).__name__)

    def _fan_out(
        self, conns: set[Conn] | None, channel: str, inst_id: str, make: Callable[[], dict[str, Any]]
    ) -> None:
        if not conns:
            return
        family = self._inst_family(inst_id)
        data: list[dict[str, Any]] | None = None
        for conn in conns:
            for sub in conn.subs.get(channel, ()):
                if sub.matches(inst_id, family):
                    if data is None:
                        data = [make()]
                    conn.push_data({"arg": sub.push_arg, "data": data}, sub)

    def _on_ticker(self, ev: TickerEvent) -> None:
        t = ev.ticker
        self.stats.on_ticker(t)
        mark_changed = self._last_mark.get(t.inst_id) != t.mark
        self._last_mark[t.inst_id] = t.mark
        conns = self._by_inst.get(t.inst_id)
        if conns:
            inst = self.engine.instrument(t.inst_id)
            self._fan_out(
                conns, "tickers", t.inst_id, lambda: ticker_dict(inst, t, self.stats.get(t.inst_id))
            )
            if mark_changed and any(c.subs.get("mark-price") for c in conns):
                self.marks.changed(t.inst_id)  # pushed now or at the end of OKX's 200 ms

    def _mark_keys(self) -> list[str]:
        return [i for i, conns in self._by_inst.items() if any(c.subs.get("mark-price") for c in conns)]

    def _push_mark(self, inst_id: str) -> None:
        """The current mark price to every mark-price subscriber of ``inst_id`` (the pacer decides when)."""
        t = self.engine.ticker(inst_id)
        if t is not None:
            now = self.engine.now_ms()
            self._fan_out(self._by_inst.get(inst_id), "mark-price", inst_id, lambda: mark_price_dict(t, now))

    def _on_order(self, ev: OrderEvent) -> None:
        order, fill = ev.order, ev.fill
        amended = ev.kind is OrderEventKind.AMENDED
        if fill is not None:
            self.stats.on_fill(fill)
            self._last_trade[(ev.account_id, order.inst_id)] = fill.trade_id
        self._fan_out(
            self._by_account.get(ev.account_id),
            "orders",
            order.inst_id,
            lambda: order_dict(order, fill, push=True, amended=amended),
        )

    def _on_position(self, ev: PositionEvent) -> None:
        conns = self._by_account.get(ev.account_id)
        if not conns:
            return
        pos = ev.position
        trade_id = self._last_trade.get((ev.account_id, pos.inst_id), "")
        family = self._inst_family(pos.inst_id)
        data: list[dict[str, Any]] | None = None
        for conn in conns:
            for sub in conn.subs.get("positions", ()):
                if sub.matches(pos.inst_id, family):
                    if data is None:
                        data = [position_dict(pos, self.engine.ticker(pos.inst_id), ev.ts, trade_id)]
                    conn.push_data({"arg": sub.push_arg, "eventType": "event_update", "data": data}, sub)

    def _on_balance(self, ev: BalanceEvent) -> None:
        conns = self._by_account.get(ev.account_id)
        if not conns:
            return
        for conn in conns:
            for sub in conn.subs.get("account", ()):
                if sub.ccy is None or sub.ccy == ev.ccy:
                    assert conn.account is not None
                    self._push_balance(conn, sub, "event_update", ev.ts)

    def _push_balance(self, conn: Conn, sub: Sub, event_type: str, ts: int) -> None:
        assert conn.account is not None
        bals = self.engine.balances(conn.account.api_key)
        if sub.ccy is not None:
            bals = {c: b for c, b in bals.items() if c == sub.ccy}
        payload = {"arg": sub.push_arg, "eventType": event_type, "curPage": 1, "lastPage": True,
                   "data": [balance_dict(bals, ts)]}  # fmt: skip
        if event_type == "snapshot":
            conn.push(payload, sub)
        else:
            conn.push_data(payload, sub)

    def _on_algo(self, ev: AlgoEvent) -> None:
        conns = self._by_account.get(ev.account_id)
        if not conns:
            return
        algo = ev.algo
        channel = "algo-advance" if algo.algo_type is AlgoType.MOVE_ORDER_STOP else "orders-algo"

        def make() -> dict[str, Any]:
            account = self.engine.account(ev.account_id)
            t = self.engine.ticker(algo.inst_id)
            return algo_dict(algo, td_mode=account.get_margin_mode(algo.inst_id).value,
                             lever=account.get_leverage(algo.inst_id, algo.pos_side),
                             last=None if t is None else t.last)  # fmt: skip

        self._fan_out(conns, channel, algo.inst_id, make)

    # ------------------------------------------------------------------ connections

    async def serve(self, request: web.Request, kind: str) -> web.StreamResponse:
        limits = self.ctx.limits
        if not limits.admit(request.remote):
            log.info("okx ws: refusing a connection from %s (connection limit)", request.remote)
            body = {"code": "50011", "msg": "Too Many Requests"}
            return web.Response(status=429, body=orjson.dumps(body), content_type="application/json",
                                headers={"Retry-After": "1"})  # fmt: skip
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Conn(ws, kind, f"{next(self._ids):08x}")
        conn.budget = limits.budget()
        conn.shaper = PushShaper(self.ctx.faults, f"okx:{kind}", conn._deliver, conn._deliver_again)
        conn.writer = spawn(conn.run_writer(), name=f"sim-okx-ws-writer-{conn.conn_id}")
        self.conns.add(conn)
        self.ctx.track(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self.handle_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    conn.error("60012", "Illegal request: binary frames are not supported")
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._drop(conn)
            self.ctx.untrack(ws)
        return ws

    def _drop(self, conn: Conn) -> None:
        self.conns.discard(conn)
        if conn.account is not None:
            peers = self._by_account.get(conn.account.account_id)
            if peers is not None:
                peers.discard(conn)
        for sub in conn.subs.get("tickers", []) + conn.subs.get("mark-price", []):
            if sub.inst_id is not None:
                self._by_inst.get(sub.inst_id, set()).discard(conn)
        if conn.writer is not None:
            conn.writer.cancel()
        if conn.shaper is not None:
            conn.shaper.close()

    async def close_sockets(self) -> None:
        """Close every client socket (server shutdown: 1001 going away)."""
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"server shutdown")

    async def close(self) -> None:
        self.marks.close()
        writers = [c.writer for c in self.conns if c.writer is not None]
        for w in writers:
            w.cancel()
        for w in writers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await w

    # ------------------------------------------------------------------ client messages

    def handle_text(self, conn: Conn, text: str) -> None:
        if conn.closing:
            return
        if text == "ping":
            conn.push_text("pong")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.error("60012", f"Illegal request: {text}")
            return
        if not isinstance(msg, dict):
            conn.error("60012", f"Illegal request: {text}")
            return
        op = msg.get("op")
        req_id = msg.get("id") if isinstance(msg.get("id"), str) else None
        args = msg.get("args")
        if op in _LIMITED_OPS and conn.budget is not None and not conn.budget.take():
            log.info("okx ws %s: over the login/subscribe request limit, closing", conn.conn_id)
            conn.error("60014", "Requests too frequent.", req_id)
            conn.close_after_queued()
            return
        if op == "login":
            self._login(conn, args, req_id)
        elif op in ("subscribe", "unsubscribe"):
            if not isinstance(args, list) or not args:
                conn.error("60012", f"Illegal request: {text}", req_id)
                return
            for arg in args:
                if op == "subscribe":
                    self._subscribe(conn, arg, req_id)
                else:
                    self._unsubscribe(conn, arg, req_id)
        elif op in _ORDER_OPS:
            self._order_op(conn, str(op), args, req_id)
        else:
            conn.error("60019", f"Invalid op: {op}", req_id)

    def _login(self, conn: Conn, args: Any, req_id: str | None) -> None:
        arg = args[0] if isinstance(args, list) and args else None
        try:
            account = verify_login(self.engine, arg)
        except OkxError as exc:
            conn.error(exc.code, exc.msg, req_id)
            return
        if conn.account is not None:
            old = self._by_account.get(conn.account.account_id)
            if old is not None:
                old.discard(conn)
        conn.account = account
        self._by_account.setdefault(account.account_id, set()).add(conn)
        reply: dict[str, Any] = {"event": "login", "code": "0", "msg": "", "connId": conn.conn_id}
        if req_id is not None:
            reply["id"] = req_id
        conn.push(reply)

    def _parse_sub(self, conn: Conn, arg: Any) -> Sub:
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            raise OkxError("60012", f"Illegal request: {_dumps(arg)}")
        name = arg["channel"]
        spec = CHANNELS.get(name)
        inst_id = arg.get("instId") if isinstance(arg.get("instId"), str) and arg.get("instId") else None
        if spec is None:
            raise OkxError("60018", f"Wrong URL or channel:{name},instId:{inst_id or ''} doesn't exist. "
                                    "Please use the correct URL, channel and parameters referring to API document.")  # fmt: skip
        if spec.url != conn.kind:
            if spec.url == BUSINESS:
                raise OkxError("64001", "This channel has been migrated to the '/business' URL. "
                                        "Please subscribe using the new URL.")  # fmt: skip
            if conn.kind == BUSINESS:
                raise OkxError("64002", f"This channel is not supported by the business URL. Please use the "
                                        f"'/{spec.url}' URL.")  # fmt: skip
            raise OkxError("60018", f"Wrong URL or channel:{name},instId:{inst_id or ''} doesn't exist. "
                                    "Please use the correct URL, channel and parameters referring to API document.")  # fmt: skip
        if spec.private and conn.account is None:
            raise OkxError("60011", "Please log in")
        inst_type = arg.get("instType")
        if spec.needs_inst_type and (not isinstance(inst_type, str) or inst_type not in _INST_TYPES):
            raise OkxError("60018", f"Wrong URL or channel:{name},instType:{inst_type} doesn't exist.")
        if inst_id is not None:
            try:
                self.engine.instrument(inst_id)
            except UnknownInstrument:
                raise OkxError(
                    "60018", f"Wrong URL or channel:{name},instId:{inst_id} doesn't exist."
                ) from None
        elif spec.needs_inst_id:
            raise OkxError("60018", f"Wrong URL or channel:{name},instId: doesn't exist.")
        family = arg.get("instFamily") if isinstance(arg.get("instFamily"), str) else None
        ccy = arg.get("ccy") if isinstance(arg.get("ccy"), str) and arg.get("ccy") else None
        push_arg = dict(arg)
        if spec.private:
            assert conn.account is not None
            push_arg["uid"] = conn.account.account_id
        return Sub(name, dict(arg), push_arg, inst_type if isinstance(inst_type, str) else None,
                   inst_id, family or None, ccy)  # fmt: skip

    def _subscribe(self, conn: Conn, arg: Any, req_id: str | None) -> None:
        try:
            sub = self._parse_sub(conn, arg)
        except OkxError as exc:
            conn.error(exc.code, exc.msg, req_id)
            return
        subs = conn.subs.setdefault(sub.channel, [])
        if all(s.arg != sub.arg for s in subs):
            subs.append(sub)
        if sub.channel in ("tickers", "mark-price") and sub.inst_id is not None:
            self._by_inst.setdefault(sub.inst_id, set()).add(conn)
        ack: dict[str, Any] = {"event": "subscribe", "arg": sub.arg, "connId": conn.conn_id}
        if req_id is not None:
            ack["id"] = req_id
        conn.push(ack)
        self._snapshot(conn, sub)

    def _snapshot(self, conn: Conn, sub: Sub) -> None:
        """What OKX pushes right after a subscription: current ticker/mark, positions, balances."""
        if sub.channel in ("tickers", "mark-price"):
            assert sub.inst_id is not None
            t = self.engine.ticker(sub.inst_id)
            if t is not None:
                if sub.channel == "tickers":
                    inst = self.engine.instrument(sub.inst_id)
                    data = ticker_dict(inst, t, self.stats.get(sub.inst_id))
                else:
                    data = mark_price_dict(t, self.engine.now_ms())
                    self.marks.pushed(sub.inst_id)
                conn.push({"arg": sub.push_arg, "data": [data]})
        elif sub.channel == "positions":
            assert conn.account is not None
            ts = self.engine.now_ms()
            rows = []
            for p in self.engine.positions(conn.account.api_key):
                if sub.matches(p.inst_id, self._inst_family(p.inst_id)):
                    trade_id = self._last_trade.get((conn.account.account_id, p.inst_id), "")
                    rows.append(position_dict(p, self.engine.ticker(p.inst_id), ts, trade_id))
            conn.push({"arg": sub.push_arg, "eventType": "snapshot", "data": rows})
        elif sub.channel == "account":
            self._push_balance(conn, sub, "snapshot", self.engine.now_ms())

    def _unsubscribe(self, conn: Conn, arg: Any, req_id: str | None) -> None:
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            conn.error("60012", f"Illegal request: {_dumps(arg)}", req_id)
            return
        name = arg["channel"]
        subs = conn.subs.get(name, [])
        keep = [s for s in subs if s.arg != arg]
        conn.subs[name] = keep
        inst_id = arg.get("instId")
        if name in ("tickers", "mark-price") and isinstance(inst_id, str):
            still = any(
                s.inst_id == inst_id for ch in ("tickers", "mark-price") for s in conn.subs.get(ch, ())
            )
            if not still:
                self._by_inst.get(inst_id, set()).discard(conn)
        ack: dict[str, Any] = {"event": "unsubscribe", "arg": arg, "connId": conn.conn_id}
        if req_id is not None:
            ack["id"] = req_id
        conn.push(ack)

    def _order_op(self, conn: Conn, op: str, args: Any, req_id: str | None) -> None:
        offset_us = self.engine.faults.clock_offset_ms * 1000
        in_time = str(time.time_ns() // 1000 + offset_us)
        reply: dict[str, Any] = {"id": req_id or "", "op": op}
        if conn.kind != PRIVATE:
            conn.error("60018", f"Wrong URL or op:{op} doesn't exist.", req_id)
            return
        if conn.account is None:
            conn.error("60011", "Please log in", req_id)
            return
        single = not op.startswith("batch-")
        try:
            if not isinstance(args, list) or not args or (single and len(args) != 1):
                raise OkxError("60013", "Invalid args")
            account = conn.account
            if op in ("order", "batch-orders"):
                result: Reply = self.trader.place_orders(account, args)
            elif op in ("cancel-order", "batch-cancel-orders"):
                result = self.trader.cancel_orders(account, args)
            else:
                result = self.trader.amend_orders(account, args)
        except OkxError as exc:
            conn.error(exc.code, exc.msg, req_id)
            return
        reply.update(
            code=result.code,
            msg="",
            data=result.data,
            inTime=in_time,
            outTime=str(time.time_ns() // 1000 + offset_us),
        )
        conn.push(reply)
