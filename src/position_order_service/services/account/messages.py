"""What goes into an account actor's inbox, and the inbox itself.

Every message gets the inbox's arrival number when it is posted; a snapshot carries the arrival number at
which it *started*, so the actor knows which stream updates arrived while the snapshot was in flight. Marks
are coalesced: the latest price per symbol waits in the inbox once, whatever the tick rate.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ...domain.market import FillReport
from ...domain.models import Order, Position
from ...domain.reconcile import Intent


@dataclass(frozen=True, slots=True)
class StreamOrders:
    orders: list[Order]


@dataclass(frozen=True, slots=True)
class StreamPositions:
    positions: list[Position]


@dataclass(frozen=True, slots=True)
class StreamFills:
    fills: list[FillReport]


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A private stream dropped: its updates until it is back are lost; a snapshot must fill the gap."""

    stream: str
    reason: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The exchange's open orders and positions over REST, taken from `started_at_arrival` on, and the
    account's fills since shortly before the previous snapshot (what a stream gap may have lost)."""

    orders: list[Order]
    positions: list[Position]
    hedged: bool
    started_at_arrival: int
    exchange_time: datetime | None = None
    fills: list[FillReport] = field(default_factory=list)
    streams_live: bool = True  # False: taken before the private streams' sockets were open
    # the first snapshot of an account no owner ever marked: the mark that makes the next owner's fill
    # read-back start at this snapshot (fills from before it were never this service's to emit)
    seed_fill_mark_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SnapshotFailed:
    reason: str
    auth: bool = False


@dataclass(frozen=True, slots=True)
class RestReport:
    """The exchange's own view of some orders or positions, read over REST by a command (not a snapshot:
    it says nothing about what it does not list)."""

    orders: list[Order] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    reply: asyncio.Future[None] | None = None


@dataclass(frozen=True, slots=True)
class OrderFinalState:
    """The REST lookup of an order two snapshots missed: its final state, or None when the exchange has no
    such order."""

    order_id: str
    order: Order | None


OutcomeKind = Literal["created", "cancelled", "rejected", "unknown"]


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What the exchange answered to one of our commands. A reply only confirms ids and the status the
    exchange reported; the actor answers `reply` with its view of the order after the commit."""

    kind: OutcomeKind
    order: Order | None  # the reply as a model (ids, reported status; the rest from the request)
    client_order_id: str | None = None
    intent: Intent | None = None
    reply: asyncio.Future[Order | None] | None = None


@dataclass(frozen=True, slots=True)
class Annotate:
    """Our own fields on an open position (SL/TP prices, grid level, metadata)."""

    symbol: str
    side: str
    fields: dict[str, Any]
    metadata: dict[str, Any] | None
    reply: asyncio.Future[Position | None] | None = None


@dataclass(frozen=True, slots=True)
class SetWatchlist:
    symbols: frozenset[str]


@dataclass(frozen=True, slots=True)
class Marks:
    """Coalesced mark prices: taken from the inbox's latest prices when the actor gets to them."""


Message = (
    StreamOrders | StreamPositions | StreamFills | StreamGap | Snapshot | SnapshotFailed | RestReport
    | OrderFinalState | CommandOutcome | Annotate | SetWatchlist | Marks
)  # fmt: skip


class Inbox:
    def __init__(self) -> None:
        self._queue: deque[tuple[int, Message]] = deque()
        self._wake = asyncio.Event()
        self._marks: dict[str, Decimal] = {}
        self.arrivals = 0  # messages posted so far: a snapshot notes it when it starts

    def post(self, msg: Message) -> int:
        self.arrivals += 1
        self._queue.append((self.arrivals, msg))
        self._wake.set()
        return self.arrivals

    def post_mark(self, symbol: str, price: Decimal) -> None:
        if not self._marks:
            self.post(Marks())
        self._marks[symbol] = price

    def take_marks(self) -> dict[str, Decimal]:
        marks, self._marks = self._marks, {}
        return marks

    def __len__(self) -> int:
        return len(self._queue)

    async def get(self) -> tuple[int, Message]:
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        return self._queue.popleft()

    def take_stream_run(self, limit: int = 256) -> list[tuple[int, StreamOrders | StreamPositions]]:
        """The order and position stream batches at the head of the queue (up to `limit`), each with its
        arrival: the actor folds them in one turn and writes them in one group commit."""
        run: list[tuple[int, StreamOrders | StreamPositions]] = []
        while self._queue and len(run) < limit:
            arrival, msg = self._queue[0]
            if not isinstance(msg, (StreamOrders, StreamPositions)):
                break
            self._queue.popleft()
            run.append((arrival, msg))
        return run
