"""The account actor: one (user, exchange) account, one inbox, one task (DESIGN: the heart of the service).

It alone writes the account's orders, positions and fills. It starts from the account's stored state, then
handles its messages one at a time, in order: stream batches, REST snapshots, command outcomes, lookups,
marks, annotations. Each turn folds the message into a Plan (domain/account_book.py: pure rules), writes the
Plan through the store's group-committed writer (state + Redis event in one atomic step per record), adopts it
in memory only once written, and then publishes typed domain events on the bus. No lock, no callback inside a
turn. A Redis error inside a turn is retried with backoff (the message is not lost; health says degraded).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ... import metrics
from ...aio import Backoff
from ...bus import Bus
from ...domain.account_book import AccountBook, Plan
from ...domain.events import dec, envelope
from ...domain.market import FillReport
from ...domain.messages import AccountReconciled, FillRecorded, OrderChanged, PositionChanged, PositionClosed
from ...domain.models import Order, Position
from ...domain.reconcile import Intent
from ...exchanges.base import ExchangeGateway
from ...store import Store
from ...store.leases import StaleWrite
from ...supervisor import Supervisor
from .feeds import STREAMS_LATE_S, STREAMS_READY_S, AccountHealth, RestWorker, pump
from .messages import (
    Annotate,
    CommandOutcome,
    Inbox,
    Marks,
    Message,
    OrderFinalState,
    RestReport,
    SetWatchlist,
    Snapshot,
    SnapshotFailed,
    StreamFills,
    StreamGap,
    StreamOrders,
    StreamPositions,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
STREAMS = ("orders", "positions", "fills")  # the account's private streams, one pump each
_PROVISIONAL = {"provisional": True}  # event metadata of an order known so far only from a command's reply
REDIS_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    ConnectionError,
    OSError,
)


@dataclass
class AccountOptions:
    silent_reconcile_s: float = 30.0  # a snapshot when the streams have been silent this long
    confirm_after_s: float = 1.0  # the second snapshot after a first miss
    fill_backfill_max_s: float = 86_400.0  # a new owner reads fills back from its fill mark, at most this far
    finished_orders_kept: int = 1000  # finished orders remembered in memory (the rest are read back)
    streams_ready_s: float = STREAMS_READY_S  # the first snapshot waits this long for the private sockets
    streams_late_s: float = STREAMS_LATE_S  # sockets still not open this long after: the account says why


class AccountActor:
    def __init__(
        self,
        user_id: str,
        exchange: str,
        gateway: ExchangeGateway,
        store: Store,
        bus: Bus,
        supervisor: Supervisor,
        options: AccountOptions,
        on_symbols: Callable[[AccountActor, set[str], set[str]], None],
    ) -> None:
        self.user_id = user_id
        self.exchange = exchange
        self.gateway = gateway
        self.store = store
        self.bus = bus
        self.scope = supervisor
        self.options = options
        self.inbox = Inbox()
        self.book = AccountBook(user_id, exchange, options.finished_orders_kept)
        self.health = AccountHealth(queued=self._queued)
        self.rest = RestWorker(
            gateway,
            self.inbox,
            silent_s=options.silent_reconcile_s,
            confirm_after_s=options.confirm_after_s,
            symbols=lambda: self.book.symbols_in_play() | self._watchlist,
            fill_mark=lambda: self._retrying(lambda: store.fill_marks.get(user_id, exchange)),
            backfill_max_s=options.fill_backfill_max_s,
            streams_ready_s=options.streams_ready_s,
            streams_late_s=options.streams_late_s,
            on_streams_late=self._streams_late,
        )
        self.reconciled = asyncio.Event()
        self._on_symbols = on_symbols  # (actor, symbols in play, symbols with open positions) changed
        self._watchlist: frozenset[str] = frozenset()
        self._symbols: tuple[set[str], set[str]] = (set(), set())
        self._loaded = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.user_id, self.exchange)

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        def wrap_orders(b: list[Any]) -> Message:
            return StreamOrders(b)

        def wrap_positions(b: list[Any]) -> Message:
            return StreamPositions(b)

        def wrap_fills(b: list[Any]) -> Message:
            return StreamFills(b)

        self.scope.spawn("actor", self._run, kind="actor")
        watches = (self.gateway.watch_orders, self.gateway.watch_positions, self.gateway.watch_fills)
        wraps = (wrap_orders, wrap_positions, wrap_fills)
        streams = tuple(zip(STREAMS, watches, wraps, strict=True))
        # a gateway that parses pushes itself hands them to the pump from its receive callback (no task hop)
        divert_of = getattr(self.gateway, "divert", None)
        for name, watch, wrap in streams:
            divert = functools.partial(divert_of, f"watch_{name}") if divert_of is not None else None
            self.scope.spawn(
                f"stream:{name}",
                lambda n=name, w=watch, m=wrap, d=divert: pump(
                    n, w, m, self.inbox, self.health, self.rest, self.exchange, d
                ),  # type: ignore[misc]
                kind=f"stream:{name}",
            )
        self.scope.spawn("rest", self.rest.run, kind="rest")

    async def stop(self) -> None:
        await self.scope.stop()
        self.health.state = "stopped"
        self._on_symbols(self, set(), set())

    async def wait_reconciled(self, within_s: float) -> bool:
        try:
            async with asyncio.timeout(within_s):
                await self.reconciled.wait()
        except TimeoutError:
            return False
        return True

    # -- the loop ---------------------------------------------------------------------------------------
    async def _run(self) -> None:
        if not self._loaded:
            orders = await self._retrying(lambda: self.store.orders.list_open(self.user_id, self.exchange))
            positions = await self._retrying(lambda: self.store.positions.list(self.user_id, self.exchange))
            self.book.load(orders, positions)
            self._loaded = True
            self._refresh_symbols()
        while True:
            arrival, msg = await self.inbox.get()
            try:
                if isinstance(msg, (StreamOrders, StreamPositions)) and len(self.inbox):
                    await self._stream_turn([(arrival, msg), *self.inbox.take_stream_run()])
                    continue
                await self._handle(arrival, msg)
            except asyncio.CancelledError:
                raise
            except StaleWrite as exc:  # another worker holds the account now: write nothing more, stop
                log.warning("account %s:%s: %s; stopping", self.user_id, self.exchange, exc)
                self.health.state = "stopped"
                _fail_reply(msg, exc)
                return
            except Exception as exc:  # a bug or a corrupt record: lose this message, not the account
                metrics.task_failures.labels(task="account/actor").inc()
                log.exception(
                    "account %s:%s could not handle %s", self.user_id, self.exchange, type(msg).__name__
                )
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                _fail_reply(msg, exc)
                self.rest.request()  # what the message said, the snapshot will tell again

    async def _handle(self, arrival: int, msg: Message) -> None:
        match msg:
            case StreamOrders(orders):
                intents = await self._preload(orders)
                await self._apply(self.book.fold_orders(orders, arrival, intents))
                self._stream_event()
            case StreamPositions(positions):
                await self._apply(self.book.fold_positions(positions, arrival))
                self._stream_event()
            case StreamFills(fills):
                await self._fills(fills)
                self._stream_event()
            case Snapshot():
                await self._snapshot(msg)
            case RestReport(orders, positions, reply):
                intents = await self._preload(orders)
                plan = self.book.fold_orders(orders, 0, intents)
                await self._apply(self.book.fold_positions(positions, 0, plan))
                if reply is not None and not reply.done():
                    reply.set_result(None)
            case OrderFinalState(order_id, found):
                intents = await self._preload([found] if found else [])
                await self._apply(self.book.fold_final_state(order_id, found, intents))
            case CommandOutcome():
                await self._outcome(arrival, msg)
            case Marks():
                plan = Plan()
                for symbol, price in self.inbox.take_marks().items():
                    plan.marks += (p := self.book.fold_mark(symbol, price)).marks
                    plan.position_entries.update(p.position_entries)
                await self._apply(plan)
            case Annotate(symbol, side, fields, metadata, reply):
                await self._apply(self.book.fold_annotation(symbol, side, fields, metadata))
                if reply is not None and not reply.done():
                    reply.set_result(self.book.position(symbol, side))
            case SetWatchlist(symbols):
                self._watchlist = symbols
                self._refresh_symbols()
            case StreamGap(stream, reason):
                self.book.stream_gap()
                self.reconciled.clear()
                self.health.failed(reason)
                log.info("account %s:%s: %s stream down (%s)", self.user_id, self.exchange, stream, reason)
            case SnapshotFailed(reason, auth):
                self.health.failed(reason, auth)
                log.warning("account %s:%s: snapshot failed: %s", self.user_id, self.exchange, reason)

    async def _stream_turn(self, run: list[tuple[int, StreamOrders | StreamPositions]]) -> None:
        """Stream batches that queued while the previous turn was writing: each folded with its own arrival,
        in order, into one plan, written in one group commit (per record atomic, as always)."""
        orders = [o for _, m in run if isinstance(m, StreamOrders) for o in m.orders]
        intents = await self._preload(orders)
        plan = Plan()
        for arrival, m in run:
            if isinstance(m, StreamOrders):
                self.book.fold_orders(m.orders, arrival, intents, plan)
            else:
                self.book.fold_positions(m.positions, arrival, plan)
        await self._apply(plan)
        self._stream_event()

    def _stream_event(self) -> None:
        self.health.last_event_at = datetime.now(UTC)

    async def _snapshot(self, snap: Snapshot) -> None:
        intents = await self._preload(snap.orders)
        plan = self.book.fold_snapshot(
            snap.orders, snap.positions, snap.hedged, snap.started_at_arrival, snap.exchange_time, intents
        )
        first = self.book.snapshots == 0
        applied = await self._apply(plan)
        if snap.fills or snap.seed_fill_mark_ms is not None:
            # the fills a stream gap lost (the rest were emitted already: each emits once)
            await self._fills(snap.fills, mark_from=snap.seed_fill_mark_ms, moves_mark=True)
        if applied:
            self.health.corrections += applied
            metrics.corrections.labels(exchange=self.exchange).inc(applied)
        for order in plan.lookups:
            self.rest.look_up(order)
        if plan.confirm_snapshot:
            self.rest.confirm()
        self.health.last_reconcile_at = datetime.now(UTC)
        # the account matches the exchange as of this snapshot: triggers may act on it. A stream still down
        # says "reconnecting"; its pump asks for the next snapshot once it has subscribed again. Streams not
        # open yet (paced connections) say "starting": the REST worker takes the next snapshot when they are;
        # unless a pump said why they are not, or they are late (not "starting" for ever, see _streams_late).
        if snap.streams_live:
            self.health.streams_late = None
        if not snap.streams_live and not self.health.streams_down and not self.rest.streams_late:
            self.health.state = "starting"
        else:
            self.health.state = (
                "reconnecting" if self.health.streams_down or not snap.streams_live else "healthy"
            )
        self.reconciled.set()
        self.bus.publish(AccountReconciled(self.user_id, self.exchange, datetime.now(UTC), first))

    def _streams_late(self, waited_s: float) -> None:
        """The private sockets are still not open long after the first snapshot and their first connection
        attempt (the venue refuses them or their login, or keeps dropping them; never sockets still waiting at
        our own pacer, see RestWorker._late_at): say so, naming the streams, and the pumps' last error if any. The
        pumps keep trying; the snapshot after they open says "healthy"."""
        late = self.health.streams_late = f"streams {', '.join(STREAMS)} not open after {waited_s:.0f} s"
        last = self.health.last_error
        self.health.last_error = late if last is None else f"{late} (last error: {last})"
        if self.health.state not in ("error", "degraded"):  # (an auth error or a Redis outage says more)
            self.health.state = "reconnecting"
        log.warning("account %s:%s: %s", self.user_id, self.exchange, self.health.last_error)

    def _queued(self) -> str | None:
        """Its private sockets' place at our own connection pacer, when some wait there (the health's detail)."""
        queue = self.gateway.sockets_pending().queued
        return None if queue is None else queue.describe()

    async def _outcome(self, arrival: int, out: CommandOutcome) -> None:
        view: Order | None = None
        if out.kind == "created" and out.order is not None:
            intents = await self._preload([out.order])
            intent = out.intent or intents.get(out.order.client_order_id or "")
            await self._apply(self.book.fold_reply(out.order, intent, arrival))
            view = self.book.order(out.order.order_id)
        elif out.order is not None:
            view = self.book.order(out.order.order_id)
        if view is None and out.client_order_id:
            view = self.book.order_by_client_id(out.client_order_id)
        if out.reply is not None and not out.reply.done():
            out.reply.set_result(view)

    # -- reading ahead ----------------------------------------------------------------------------------
    async def _preload(self, orders: list[Order]) -> dict[str, Intent]:
        """Stored records of orders the book does not hold (finished ones it forgot), and the intents of the
        ones seen for the first time: one round trip."""
        unknown = self.book.unknown(o.order_id for o in orders)
        if not unknown:
            return {}
        wanted = set(unknown)
        cids = [o.client_order_id for o in orders if o.order_id in wanted and o.client_order_id]
        stored, intents = await self._retrying(
            lambda: self.store.orders.known_and_intents(self.user_id, self.exchange, unknown, cids)
        )
        self.book.remember(stored)
        return intents

    # -- writing ----------------------------------------------------------------------------------------
    async def _apply(self, plan: Plan) -> int:
        """Write the plan, adopt it, publish its events. Returns how many records changed in Redis."""
        store = self.store
        fence = store.writer.fences.of(self.user_id, self.exchange)  # this worker's lease (issue 14)
        writes = [
            store.orders.write_for(
                w.order, None if w.versioned else _PROVISIONAL, event=w.event, versioned=w.versioned
            )
            for w in plan.orders
        ]
        writes += [
            store.positions.write_for(
                w.position, {"cause": w.cause} if w.cause != "exchange" else None, event=w.event,
                versioned=w.versioned,
            )
            for w in plan.positions
        ]  # fmt: skip
        for write in writes:
            write.fence = fence
        results = await self._retrying(lambda: store.writer.apply_many(writes)) if writes else []
        marks = [store.positions.mark_call(m.position).fenced(fence) for m in plan.marks]
        if marks:
            await self._retrying(lambda: store.writer.submit(marks))
        self.book.commit(plan)
        changed = 0
        n_orders = len(plan.orders)
        for w, r in zip(plan.orders, results[:n_orders], strict=True):
            if r.code == -1:  # Redis holds a newer version: it is the truth
                await self._reload_order(w.order)
                continue
            changed += r.code
            if w.event:
                self.bus.publish(OrderChanged(w.order, w.previous))
        for pw, r in zip(plan.positions, results[n_orders:], strict=True):
            if r.code == -1:
                await self._reload_position(pw.position)
                continue
            changed += r.code
            if pw.event == "position.closed":
                self.bus.publish(PositionClosed(pw.position, pw.previous))
            elif pw.event:
                self.bus.publish(PositionChanged(pw.position, pw.previous, pw.cause))  # type: ignore[arg-type]
        self.health.updates_applied += changed
        if plan.writes:
            self._refresh_symbols()
        return changed

    async def _fills(
        self, fills: list[FillReport], mark_from: int | None = None, moves_mark: bool = False
    ) -> None:
        """Emit each fill once. Only a snapshot's fills move the account's fill mark: its window is complete
        up to its start, while a stream's fill says nothing of an earlier fill whose push was lost (that one
        waits for the next snapshot: a mark moved past it would hide it from the next owner)."""
        if not fills and mark_from is None:
            return
        writer, keys = self.store.writer, self.store.keys
        guard = keys.seen_fills(self.user_id, self.exchange)
        body, member = (
            _fill_body,
            _fill_member,
        )  # fills dedupe by (symbol, trade id): OKX numbers per instrument
        fence = writer.fences.of(self.user_id, self.exchange)
        calls = [
            writer.emit_once_call(
                self.user_id, "", "fill.created", body(self.user_id, f), guard, member(f), fence=fence
            )
            for f in fills
        ]
        if moves_mark:  # after the fills in the same round trip: the mark never passes a fill not yet written
            times = [int(f.timestamp.timestamp() * 1000) for f in fills if f.exchange_time]
            if mark_from is not None:
                times.append(mark_from)
            if times:
                calls.append(
                    self.store.fill_marks.advance_call(self.user_id, self.exchange, max(times), fence)
                )
        seqs = (await self._retrying(lambda: writer.submit(calls)))[: len(fills)]
        for f, seq in zip(fills, seqs, strict=True):
            if int(seq):
                self.health.updates_applied += 1
                metrics.observe_since(metrics.fill_to_event, f.timestamp)
                self.bus.publish(FillRecorded(self.user_id, f))

    async def _reload_order(self, order: Order) -> None:
        stored = await self._retrying(
            lambda: self.store.orders.get(self.user_id, self.exchange, order.order_id)
        )
        if stored is not None:
            self.book.replace_order(stored)

    async def _reload_position(self, p: Position) -> None:
        stored = await self._retrying(
            lambda: self.store.positions.get(self.user_id, self.exchange, p.symbol, p.side.value)
        )
        if stored is not None:
            self.book.replace_position(stored)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Redis unavailable: try again with backoff until it answers. The turn waits; nothing is dropped."""
        backoff = Backoff()
        before = self.health.state
        while True:
            try:
                result = await call()
            except REDIS_UNAVAILABLE as exc:
                metrics.account_write_retries.labels(exchange=self.exchange).inc()
                if self.health.state != "degraded":
                    log.warning(
                        "account %s:%s: Redis unavailable (%s); retrying", self.user_id, self.exchange, exc
                    )
                    before = self.health.state  # what it says again once Redis answers (`starting`, say)
                self.health.state = "degraded"
                self.health.last_error = f"redis: {type(exc).__name__}: {exc}"
                await backoff.sleep()
                continue
            if self.health.state == "degraded":
                recovered = before if before != "degraded" else "healthy"
                self.health.state = recovered if self.book.reconciled else "reconnecting"
            return result

    def _refresh_symbols(self) -> None:
        in_play = self.book.symbols_in_play() | set(self._watchlist)
        with_positions = {p.symbol for p in self.book.open_positions()}
        if (in_play, with_positions) != self._symbols:
            self._symbols = (in_play, with_positions)
            self._on_symbols(self, in_play, with_positions)


def _fail_reply(msg: Message, exc: Exception) -> None:
    reply = getattr(msg, "reply", None)
    if reply is not None and not reply.done():
        reply.set_exception(exc)


def _fill_member(f: FillReport) -> str:
    return f"{f.symbol}:{f.trade_id}"


def _fill_body(user_id: str, f: FillReport) -> dict[str, Any]:
    return {
        **envelope(user_id, f.exchange),
        "trade_id": f.trade_id,
        "order_id": f.order_id,
        "client_order_id": f.client_order_id,
        "symbol": f.symbol,
        "side": f.side.value,
        "price": dec(f.price),
        "size": dec(f.size),
        "fee": dec(f.fee),
        "fee_currency": f.fee_currency,
        "liquidity": f.liquidity,
        "position_side": f.position_side.value if f.position_side else None,
        "filled_at": f.timestamp.isoformat(),
    }
