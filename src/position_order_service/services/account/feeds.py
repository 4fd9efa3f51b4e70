"""What feeds an account actor from the exchange, each a supervised task that only reads the gateway and
posts messages: one pump per private stream, and the account's REST worker (snapshots and final-state
lookups). Nothing here writes state; the actor alone does.

The REST worker takes a snapshot at start, after a stream gap (reconnect), when the streams have been silent
for `silent_s`, and promptly (`confirm_after_s`) when the actor asks for the second snapshot that confirms a
miss. A first snapshot that could not wait for the streams' sockets (connection attempts are paced per IP: at
a cold start the last accounts' sockets open many seconds after their actors start) is followed by another
as soon as they are open: what happened between the two reaches the account then, not at the silent one.
It notes the inbox's arrival number before its first REST call: the actor then knows which stream updates
arrived while the snapshot was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ... import metrics
from ...aio import Backoff, cancel_requested, spawn
from ...domain.market import FillReport
from ...domain.models import Order
from ...exchanges.base import (
    AuthenticationFailed,
    ExchangeGateway,
    GatewayError,
    OrderNotFound,
    StreamDisconnected,
)
from .messages import Inbox, Message, OrderFinalState, Snapshot, SnapshotFailed, StreamGap

log = logging.getLogger(__name__)
RESUBSCRIBE_S = 0.5
FILLS_OVERLAP_MS = 10_000
"""Each snapshot reads the fills from this long before the previous one started (clock skew, trades listed
late): consecutive windows overlap, so a fill a stream lost is read back once; the actor emits it once."""
STREAMS_READY_S = 5.0  # the first snapshot waits this long at most for the private streams' connections
STREAMS_CHECK_S = 30.0
"""After a first snapshot taken without them, each wait for the sockets (the gateway wakes when they open, so
this only bounds one call)."""
STREAMS_LATE_S = 45.0
"""Sockets still not open this long after the first snapshot started, and after their first connection attempt
started: the account says so (`reconnecting`, the streams named in `last_error`) instead of `starting`. A socket
still waiting its turn at our own connection pacer (a cold start at OKX's 3 attempts/s opens ~135 sockets in
45 s) is never late: its clock starts with its attempt. The venue refusing them (or their login) keeps an
account here for good."""


@dataclass
class AccountHealth:
    state: str = "starting"  # starting | healthy | reconnecting | degraded | error | stopped
    last_error: str | None = None
    last_reconcile_at: datetime | None = None
    last_event_at: datetime | None = None
    reconnects: int = 0
    corrections: int = 0
    updates_applied: int = 0
    streams_down: set[str] = field(default_factory=set)
    down_since: float | None = None  # monotonic time the first stream went down
    streams_late: str | None = None  # which streams are still not open, and for how long (the actor says)
    queued: Callable[[], str | None] | None = None  # its sockets' place at our own connection pacer, if any

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "healthy": self.state == "healthy",
            "last_error": self.last_error,
            "detail": self.detail(),
            "last_reconcile_at": self.last_reconcile_at.isoformat() if self.last_reconcile_at else None,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "reconnects": self.reconnects,
            "corrections": self.corrections,
            "updates_applied": self.updates_applied,
        }

    def detail(self) -> str | None:
        """Why an account that is not healthy waits, when it is no error: "waiting for a connection slot: 12
        ahead (3/s for okx ...), ~4 s" (read when asked: the queue moves)."""
        if self.state not in ("starting", "reconnecting") or self.queued is None:
            return None
        return self.queued()

    def failed(self, reason: str, auth: bool = False) -> None:
        # a pump failing while its streams are late: the error says both (the streams, then this attempt)
        self.last_error = (
            reason if self.streams_late is None else f"{self.streams_late} (last error: {reason})"
        )
        self.state = "error" if auth else "reconnecting"


def reason_of(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"


Divert = Callable[[Callable[[list[Any]], None]], Callable[[], None] | None]
"""Hands the stream's batches to the callback as they are parsed, while the pump waits in `watch`; returns the
undo, or None when the gateway cannot (ccxt's own parsing)."""


async def pump(
    name: str,
    watch: Callable[[], Awaitable[list[Any]]],
    wrap: Callable[[list[Any]], Message],
    inbox: Inbox,
    health: AccountHealth,
    rest: RestWorker,
    exchange: str,
    divert: Divert | None = None,
) -> None:
    """Read one private stream forever; post each batch. A drop posts a StreamGap (the actor asks for a
    snapshot: updates during the gap are not replayed) and reconnects after a backoff.

    `divert` (the gateway's, where it parses pushes itself): a batch is posted from inside the push
    handler while this task waits in ``watch``: no task wake-up per push. ``watch`` still returns what could
    not go that way and raises the drops, in their order."""
    backoff = Backoff()
    loop = asyncio.get_running_loop()
    pending: list[Any] = []

    def post() -> None:
        if pending:
            batch = pending[:]
            pending.clear()
            inbox.post(wrap(batch))

    def arrived(batch: list[Any]) -> None:
        # what the pushes of one loop turn brought is posted as one message, as the watch task did: a
        # message per push costs the actor more than the hop it saves
        if not pending:
            loop.call_soon(post)
        pending.extend(batch)
        backoff.reset()
        rest.note_activity()
        _up(health, name)

    def returned(batch: list[Any]) -> None:
        post()  # what was diverted came before what the watch call returns or raises
        if batch:
            inbox.post(wrap(batch))
        backoff.reset()
        rest.note_activity()
        _up(health, name)

    undo = divert(arrived) if divert is not None else None
    try:
        await _pump(name, watch, returned, post, inbox, health, rest, exchange, backoff)
    finally:
        if undo is not None:
            undo()
        post()


async def _pump(
    name: str,
    watch: Callable[[], Awaitable[list[Any]]],
    returned: Callable[[list[Any]], None],
    post: Callable[[], None],
    inbox: Inbox,
    health: AccountHealth,
    rest: RestWorker,
    exchange: str,
    backoff: Backoff,
) -> None:
    while True:
        if cancel_requested():  # a library swallowed our cancel (Python 3.11): stop anyway
            raise asyncio.CancelledError
        try:
            batch = await watch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if cancel_requested():
                raise asyncio.CancelledError from exc
            post()
            if isinstance(exc, StreamDisconnected):
                health.reconnects += 1
                metrics.reconnects.labels(exchange=exchange).inc()
            health.failed(reason_of(exc), isinstance(exc, AuthenticationFailed))
            if name not in health.streams_down:
                health.streams_down.add(name)
                health.down_since = health.down_since or time.monotonic()
                inbox.post(StreamGap(name, reason_of(exc)))
            log.warning("stream %s: %s", name, reason_of(exc))
            await backoff.sleep()
            # resubscribing now: updates since the drop are not replayed, so a snapshot follows once the
            # subscription is likely live again (a second one confirms anything it finds missing). A quiet
            # stream says nothing when it is back: it counts as up from here, until it fails again.
            rest.request(RESUBSCRIBE_S)
            _up(health, name)
            continue
        returned(batch)


def _up(health: AccountHealth, name: str) -> None:
    if name in health.streams_down:
        health.streams_down.discard(name)
        if not health.streams_down:
            health.down_since = None


class RestWorker:
    """The account's REST side: snapshots when due, and lookups of orders the snapshots no longer list.

    Every snapshot after the first also reads the account's fills since shortly before the previous one
    started (`symbols`: the instruments to ask for where the venue lists trades per instrument): a fill whose
    push was lost (a gap, or a push dropped on a live socket) still reaches the events. The first reads them
    from shortly before the account's fill mark (`fill_mark`: the exchange's time of the last fill a snapshot
    read back and applied), at most `backfill_max_s` back: fills made while the account had no owner (moving
    between workers, a restart) reach the events once. An account never marked has its mark set by its first
    snapshot (`Snapshot.seed_fill_mark_ms`): fills from before it was first tracked are not read back."""

    def __init__(
        self,
        gateway: ExchangeGateway,
        inbox: Inbox,
        *,
        silent_s: float = 30.0,
        confirm_after_s: float = 1.0,
        symbols: Callable[[], Iterable[str]] = tuple,
        fill_mark: Callable[[], Awaitable[int | None]] | None = None,
        backfill_max_s: float = 86_400.0,
        streams_ready_s: float = STREAMS_READY_S,
        streams_late_s: float = STREAMS_LATE_S,
        on_streams_late: Callable[[float], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.symbols = symbols
        self.fill_mark = fill_mark
        self.backfill_max_s = backfill_max_s
        self._fills_from_ms: int | None = None  # None until the first snapshot: tracking starts there
        self.inbox = inbox
        self.silent_s = silent_s
        self.confirm_after_s = confirm_after_s
        self._due: float | None = time.monotonic()  # the first snapshot at once (once the streams are up)
        self._first = True
        self._streams_pending = False  # the first snapshot ran before the streams' sockets were open
        self.streams_ready_s = streams_ready_s
        self.streams_late_s = streams_late_s
        self._on_streams_late = on_streams_late  # (seconds waited) the sockets are late: the actor says why
        self._waiting_since: float | None = None  # when the first snapshot started waiting for the sockets
        self._late = False
        self._opening: asyncio.Task[bool] | None = None  # waits for the sockets while the worker waits too
        self._lookups: asyncio.Queue[Order] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._last_activity = time.monotonic()

    def request(self, after_s: float = 0.0) -> None:
        due = time.monotonic() + after_s
        self._due = due if self._due is None else min(self._due, due)
        self._wake.set()

    def confirm(self) -> None:
        """A first miss: the second snapshot that confirms (or not) comes soon, not after silence."""
        self.request(self.confirm_after_s)

    def look_up(self, order: Order) -> None:
        self._lookups.put_nowait(order)
        self._wake.set()

    def note_activity(self) -> None:
        self._last_activity = time.monotonic()

    async def run(self) -> None:
        try:
            await self._serve()
        finally:
            if self._opening is not None:
                self._opening.cancel()

    @property
    def streams_late(self) -> bool:
        """The sockets are still not open past `streams_late_s` (reset once they are)."""
        return self._late

    async def _serve(self) -> None:
        backoff = Backoff()
        while True:
            await self._wait()
            if not self._lookups.empty():
                order = self._lookups.get_nowait()
                try:
                    await self._lookup(order)
                    backoff.reset()
                except GatewayError as exc:
                    self._lookups.put_nowait(order)  # a network error is no answer: ask again later
                    log.info("lookup of order %s failed: %s", order.order_id, reason_of(exc))
                    await backoff.sleep()
                continue
            self._due = None
            try:
                await self._snapshot()
                backoff.reset()
            except GatewayError as exc:
                auth = isinstance(exc, AuthenticationFailed)
                self.inbox.post(SnapshotFailed(reason_of(exc), auth))
                self.request(backoff.next())

    async def _wait(self) -> None:
        while self._lookups.empty():
            now = time.monotonic()
            silent_due = self._last_activity + self.silent_s
            due = silent_due if self._due is None else min(self._due, silent_due)
            if self._streams_pending and not self._late and self._waiting_since is not None:
                late_at = self._late_at(self._waiting_since, now)
                if late_at <= now:
                    self._late = True
                    if self._on_streams_late is not None:  # (how long since its clock started)
                        self._on_streams_late(now - late_at + self.streams_late_s)
                    continue
                due = min(due, late_at)
            if due <= now:
                return
            self._wake.clear()
            if not self._streams_pending:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due - now):
                        await self._wake.wait()
            elif await self._streams_opened(due - now):
                self._streams_pending = self._late = False
                self.request()

    def _late_at(self, since: float, now: float) -> float:
        """When the sockets not open yet are late: `streams_late_s` after `since` (the first snapshot) and after
        the first attempt of the earliest one attempted. Sockets still waiting at our own pacer, none attempted,
        are not late: looked at again `streams_late_s` from now (their attempt starts no sooner), not polled."""
        pending = self.gateway.sockets_pending()
        if pending.attempted_since is not None:
            return max(since, pending.attempted_since) + self.streams_late_s
        if pending.queued is not None:
            return now + self.streams_late_s
        return since + self.streams_late_s

    async def _streams_opened(self, within_s: float) -> bool:
        """True once the sockets are open; False after `within_s` or when woken (a request, a lookup). The
        wait for the sockets goes on across calls: it wakes when they open, not to poll them."""
        if self._opening is None:
            self._opening = spawn(self._until_streams_open(), name="rest:streams-open")  # (run cancels it)
        woken = spawn(self._wake.wait(), name="rest:woken")
        try:
            await asyncio.wait((self._opening, woken), timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if not self._opening.done():
            return False
        opening, self._opening = self._opening, None
        return opening.result()

    async def _until_streams_open(self) -> bool:
        while True:
            try:
                if await self.gateway.streams_ready(STREAMS_CHECK_S):
                    return True
            except GatewayError:  # (markets not loaded yet, say): not open; asked again a little later
                await asyncio.sleep(1.0)

    async def _snapshot(self) -> None:
        first, seed = self._first, False
        if first:  # subscribe first, then the snapshot: an update between the two is seen by one of them
            self._waiting_since = self._waiting_since or time.monotonic()
            self._streams_pending = not await self.gateway.streams_ready(self.streams_ready_s)
            mark = None if self.fill_mark is None else await self.fill_mark()
            if mark is not None:  # (our clock only bounds how far back: the mark is the exchange's time)
                oldest = int(time.time() * 1000) - int(self.backfill_max_s * 1000)
                self._fills_from_ms = max(mark - FILLS_OVERLAP_MS, oldest)
            seed = mark is None and self.fill_mark is not None
        started = self.inbox.arrivals
        started_ms = int(time.time() * 1000)  # (bounds a window of the exchange's times, never a version)
        hedged = await self.gateway.fetch_position_mode()
        orders = await self.gateway.fetch_open_orders()
        positions = await self.gateway.fetch_positions()
        fills: list[FillReport] = []
        if self._fills_from_ms is not None:
            symbols = {*self.symbols(), *(o.symbol for o in orders), *(p.symbol for p in positions)}
            fills = await self.gateway.fetch_fills(self._fills_from_ms, sorted(symbols))
        self._fills_from_ms = started_ms - FILLS_OVERLAP_MS
        # not first any more only now: a first snapshot that failed half way reads the mark again
        self._first = False
        self._last_activity = time.monotonic()
        self.inbox.post(
            Snapshot(
                orders,
                positions,
                hedged,
                started,
                fills=fills,
                streams_live=not self._streams_pending,
                # read from `mark - FILLS_OVERLAP_MS` by the next owner: from this snapshot's start, never
                # from before the account was first tracked (those fills were never this service's)
                seed_fill_mark_ms=started_ms + FILLS_OVERLAP_MS if seed else None,
            )
        )

    async def _lookup(self, order: Order) -> None:
        try:
            found = await self.gateway.fetch_order(order.symbol, order_id=order.order_id)
        except OrderNotFound:
            found = None  # (any other error is no answer: raised, asked again, never guessed)
        self.inbox.post(OrderFinalState(order.order_id, found))
