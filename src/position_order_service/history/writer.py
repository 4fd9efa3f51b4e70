"""HistoryWriter: users' event streams (Redis) -> history tables (SQL), exactly once per row.

Each user's events are in the stream `events:{user_id}` with ids `{seq}-1`. The writer XREADs the streams
it tracks from the last seq it applied, turns a batch of entries into rows (`mapping.Batch`) and writes them
in ONE transaction together with the new per-stream offsets (`stream_offsets`). Delivery is at least once
(a crash after the commit but before the offsets move in memory re-reads a batch) and every write is
idempotent: rows carry the version of the event that wrote them and an upsert only replaces an older one,
fills and ledger rows are insert-or-nothing. A database or Redis outage loses nothing: the pass fails, the
offsets stay where the last commit left them and the next pass catches up from there.

A Redis that lost its data (restart without persistence, flush) starts its seq counters again at 1. The
writer notices (the counter fell below the stored offset, or the entry at the stored seq is another event),
starts a new epoch for that stream and reads it from the start; versions are `(epoch << 40) | seq`, so the
new events still count as newer. Entries trimmed from a stream before they were read (MAXLEN) are reported
as gaps (`stats.gaps`): they cannot be recovered.

One writer per set of streams: two writers on the same stream stay correct for orders, fills, stops and
rules (version guards), but position lifetimes are derived from the stored rows and expect one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, Table, and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from ..aio import cancel_requested
from ..store.events import read_groups
from ..store.keys import Keys
from . import tables as t
from .db import HistoryDB, make_engine
from .mapping import CLOSED_POSITION_STATUSES, Batch, PositionEvent, Row

log = logging.getLogger(__name__)

MAX_SEQ_PART = "18446744073709551615"  # an XREAD start id after every entry of a seq: "{seq}-{max}"
_IN_CHUNK = 500
K = TypeVar("K")


# -- statements ------------------------------------------------------------------------------------------


def _dialect_insert(dialect: str, table: Table) -> PgInsert | SqliteInsert:
    if dialect == "postgresql":
        return pg_insert(table)
    if dialect == "sqlite":
        return sqlite_insert(table)
    raise NotImplementedError(f"history supports PostgreSQL and SQLite, not {dialect}")


def _newer(table: Table, ins: PgInsert | SqliteInsert) -> ColumnElement[bool]:
    return table.c.src_version < ins.excluded.src_version


def _earlier(a: Any, b: Any) -> Any:
    return case((b < a, b), else_=a)


@dataclass(frozen=True, slots=True)
class _Statements:
    orders: Insert
    fills: Insert
    positions: Insert
    realized_pnl: Insert
    stops_replace: Insert
    stops_merge: Insert
    rules_replace: Insert
    rules_merge: Insert
    transitions: Insert
    dead_letters: Insert
    offsets: Insert


def _set_all(table: Table, ins: PgInsert | SqliteInsert, keep: Iterable[str]) -> dict[str, Any]:
    skip = {"id", *keep}
    return {c.name: ins.excluded[c.name] for c in table.columns if c.name not in skip}


def _latest_state(table: Table, dialect: str, key: list[str], merge: bool) -> Insert:
    """Upsert of a latest-state table. `merge`: keep the stored creation time and the first finish time."""
    ins = _dialect_insert(dialect, table)
    set_ = _set_all(table, ins, key)
    if merge:
        set_["created_at"] = table.c.created_at
        set_["finished_at"] = func.coalesce(table.c.finished_at, ins.excluded.finished_at)
    return ins.on_conflict_do_update(index_elements=key, set_=set_, where=_newer(table, ins))


@cache
def _statements(dialect: str) -> _Statements:
    o = _dialect_insert(dialect, t.orders)
    o_set = _set_all(t.orders, o, ("user_id", "exchange", "order_id"))
    o_set["created_at"] = _earlier(t.orders.c.created_at, o.excluded.created_at)
    o_set["closed_at"] = func.coalesce(t.orders.c.closed_at, o.excluded.closed_at)
    orders = o.on_conflict_do_update(
        index_elements=["user_id", "exchange", "order_id"], set_=o_set, where=_newer(t.orders, o)
    )

    fills = _dialect_insert(dialect, t.fills).on_conflict_do_nothing(
        index_elements=["user_id", "exchange", "symbol", "trade_id", "side"]
    )

    pos_key = ["user_id", "exchange", "position_id", "lifetime"]
    p = _dialect_insert(dialect, t.positions)
    positions = p.on_conflict_do_update(
        index_elements=pos_key, set_=_set_all(t.positions, p, pos_key), where=_newer(t.positions, p)
    )

    realized = _dialect_insert(dialect, t.realized_pnl).on_conflict_do_nothing(
        index_elements=["user_id", "src_version"]
    )

    stop_key = ["user_id", "exchange", "stop_id"]
    rule_key = ["user_id", "rule_id"]
    transitions = _dialect_insert(dialect, t.transitions).on_conflict_do_nothing(
        index_elements=["user_id", "src_version"]
    )
    dead = _dialect_insert(dialect, t.dead_letters).on_conflict_do_nothing(
        index_elements=["stream", "epoch", "seq"]
    )

    off = _dialect_insert(dialect, t.stream_offsets)
    so = t.stream_offsets.c
    offsets = off.on_conflict_do_update(
        index_elements=["stream"],
        set_=_set_all(t.stream_offsets, off, ("stream",)),
        where=or_(
            so.epoch < off.excluded.epoch,
            and_(so.epoch == off.excluded.epoch, so.last_seq < off.excluded.last_seq),
        ),
    )
    return _Statements(
        orders=orders,
        fills=fills,
        positions=positions,
        realized_pnl=realized,
        stops_replace=_latest_state(t.trailing_stops, dialect, stop_key, merge=False),
        stops_merge=_latest_state(t.trailing_stops, dialect, stop_key, merge=True),
        rules_replace=_latest_state(t.conditional_rules, dialect, rule_key, merge=False),
        rules_merge=_latest_state(t.conditional_rules, dialect, rule_key, merge=True),
        transitions=transitions,
        dead_letters=dead,
        offsets=offsets,
    )


# -- applying a batch -------------------------------------------------------------------------------------


def _chunks(items: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


async def _current_positions(
    conn: AsyncConnection, events: Sequence[PositionEvent]
) -> dict[tuple[str, str, str], Row]:
    """The latest stored lifetime of every position the events touch."""
    current: dict[tuple[str, str, str], Row] = {}
    ids = sorted({e.position_id for e in events})
    for chunk in _chunks(ids, _IN_CHUNK):
        result = await conn.execute(select(t.positions).where(t.positions.c.position_id.in_(chunk)))
        for r in result.mappings():
            key = (r["user_id"], r["exchange"], r["position_id"])
            if key not in current or r["lifetime"] > current[key]["lifetime"]:
                row = dict(r)
                row.pop("id", None)
                current[key] = row
    return current


def fold_positions(
    current: dict[tuple[str, str, str], Row], events: Sequence[PositionEvent]
) -> tuple[list[Row], list[Row]]:
    """Apply position events (stream order) to the stored lifetimes: (rows to upsert, realized-PnL rows).

    An event older than (or as old as) the stored row is ignored. An open event after a close starts a new
    lifetime. Each change of a lifetime's realized PnL becomes one realized_pnl row (amount = the change).
    """
    changed: dict[tuple[str, str, str, int], Row] = {}
    ledger: list[Row] = []
    for e in events:
        st = current.get(e.key)
        if st is not None and e.version <= st["src_version"]:
            continue
        if st is None or (st["status"] in CLOSED_POSITION_STATUSES and not e.is_closed):
            prev_closed = None if st is None else st["closed_at"]
            opened_at = e.opened_at
            if opened_at is None or (prev_closed is not None and opened_at < prev_closed):
                opened_at = e.ts
            row: Row = {
                "user_id": e.user_id,
                "exchange": e.exchange,
                "position_id": e.position_id,
                "lifetime": 0 if st is None else st["lifetime"] + 1,
                "max_size": Decimal(0),
                "entry_price": Decimal(0),
                "exit_price": None,
                "current_price": None,
                "fees": Decimal(0),
                "funding": Decimal(0),
                "opened_at": opened_at,
                "closed_at": None,
            }
            prev_realized = Decimal(0)
        else:
            row = dict(st)
            prev_realized = st["realized_pnl"]
        row.update(
            symbol=e.symbol,
            side=e.side,
            status=e.status,
            size=e.size,
            max_size=max(row["max_size"], e.size),
            entry_price=e.entry_price if e.entry_price > 0 else row["entry_price"],
            current_price=e.current_price if e.current_price is not None else row["current_price"],
            leverage=e.leverage,
            grid_level=e.grid_level,
            realized_pnl=e.realized_pnl,
            unrealized_pnl=e.unrealized_pnl,
            fees=e.fees if e.fees is not None else row["fees"],
            funding=e.funding if e.funding is not None else row["funding"],
            last_event_type=e.event_type,
            updated_at=e.ts,
            src_version=e.version,
        )
        if e.is_closed:
            if row["closed_at"] is None:
                row["closed_at"] = e.closed_at or e.ts
            if e.exit_price is not None:
                row["exit_price"] = e.exit_price
            elif row["exit_price"] is None:
                row["exit_price"] = e.current_price
        delta = e.realized_pnl - prev_realized
        if delta != 0:
            ledger.append(
                {
                    "user_id": e.user_id,
                    "exchange": e.exchange,
                    "position_id": e.position_id,
                    "symbol": e.symbol,
                    "amount": delta,
                    "ts": e.ts,
                    "src_version": e.version,
                }
            )
        current[e.key] = row
        changed[(*e.key, row["lifetime"])] = row
    return list(changed.values()), ledger


async def _write_latest(
    conn: AsyncConnection, rows: dict[K, Row], created: set[K], replace: Insert, merge: Insert
) -> None:
    fresh = [r for k, r in rows.items() if k in created]
    rest = [r for k, r in rows.items() if k not in created]
    if fresh:
        await conn.execute(replace, fresh)
    if rest:
        await conn.execute(merge, rest)


async def apply_batch(conn: AsyncConnection, batch: Batch) -> None:
    """Write a batch (rows and stream offsets) on `conn`; the caller owns the transaction."""
    s = _statements(conn.dialect.name)
    if batch.orders:
        await conn.execute(s.orders, list(batch.orders.values()))
    if batch.fills:
        await conn.execute(s.fills, list(batch.fills.values()))
    if batch.positions:
        current = await _current_positions(conn, batch.positions)
        rows, ledger = fold_positions(current, batch.positions)
        if rows:
            await conn.execute(s.positions, rows)
        if ledger:
            await conn.execute(s.realized_pnl, ledger)
    await _write_latest(conn, batch.trailing_stops, batch.created_stops, s.stops_replace, s.stops_merge)
    await _write_latest(conn, batch.conditional_rules, batch.created_rules, s.rules_replace, s.rules_merge)
    if batch.transitions:
        await conn.execute(s.transitions, batch.transitions)
    if batch.dead_letters:
        await conn.execute(s.dead_letters, batch.dead_letters)
    if batch.progress:
        now = datetime.now(UTC)
        await conn.execute(
            s.offsets,
            [
                {
                    "stream": p.stream,
                    "user_id": p.user_id,
                    "epoch": p.epoch,
                    "last_seq": p.last_seq,
                    "last_event_id": p.last_event_id,
                    "updated_at": now,
                }
                for p in batch.progress.values()
            ],
        )


# -- the writer -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamOffset:
    user_id: str
    stream: str
    epoch: int = 0
    last_seq: int = 0
    last_event_id: str | None = None
    loaded: bool = False
    checked: bool = False


@dataclass(slots=True)
class WriterStats:
    entries: int = 0  # stream entries consumed (written, ignored or dead-lettered)
    ignored: int = 0  # entries history does not keep (prices, unknown kinds)
    dead_letters: int = 0
    batches: int = 0
    gaps: int = 0  # entries trimmed from a stream before the writer read them
    resets: int = 0  # streams found restarted (Redis lost its data): read again from seq 1, new epoch
    errors: int = 0
    last_error: str | None = None
    last_batch_at: datetime | None = None
    batch_seconds: list[float] = field(default_factory=list)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seq_of(entry_id: Any) -> int:
    return int(_s(entry_id).split("-", 1)[0])


class HistoryWriter:
    """Consumes users' event streams into the history database. See the module docstring.

    `db`: a `HistoryDB`, an `AsyncEngine`, or a URL/path (the writer then owns its engine; `close()` it).
    The schema must exist (`HistoryDB.open(..., migrate=True)` or `migrate.upgrade(url)`).
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        db: HistoryDB | AsyncEngine | str | Path | None = None,
        user_ids: Iterable[str] = (),
        *,
        batch_size: int = 2000,
        block_ms: int = 500,
        max_streams_per_read: int = 500,
        track_active_users: bool = False,
        discover_interval_s: float = 30.0,
        reset_check_interval_s: float = 30.0,
        retry_max_s: float = 5.0,
        linger_s: float = 0.2,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if linger_s < 0:
            raise ValueError("linger_s must be >= 0")
        self.redis = redis
        self.keys = keys
        if isinstance(db, HistoryDB):
            self.engine, self._owns_engine = db.engine, False
        elif isinstance(db, AsyncEngine):
            self.engine, self._owns_engine = db, False
        else:
            self.engine, self._owns_engine = make_engine(db), True
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.max_streams_per_read = max(1, max_streams_per_read)
        self.track_active_users = track_active_users
        self.discover_interval_s = discover_interval_s
        self.reset_check_interval_s = reset_check_interval_s
        self.retry_max_s = retry_max_s
        self.linger_s = linger_s
        self.stats = WriterStats()
        self._offsets: dict[str, StreamOffset] = {}
        self._by_stream: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._last_discover = float("-inf")
        self._last_reset_check = float("-inf")
        for user_id in user_ids:
            self.add_user(user_id)

    # -- users ----------------------------------------------------------------------------------------
    @property
    def user_ids(self) -> list[str]:
        return list(self._offsets)

    def add_user(self, user_id: str) -> None:
        """Track a user's stream from the offset stored for it (or from its start)."""
        if user_id in self._offsets:
            return
        stream = self.keys.event_stream(user_id)
        self._offsets[user_id] = StreamOffset(user_id=user_id, stream=stream)
        self._by_stream[stream] = user_id

    def remove_user(self, user_id: str) -> None:
        off = self._offsets.pop(user_id, None)
        if off is not None:
            self._by_stream.pop(off.stream, None)

    def applied_seq(self, user_id: str) -> int | None:
        off = self._offsets.get(user_id)
        return None if off is None or not off.loaded else off.last_seq

    # -- lifecycle --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume until `stop()`. A failed pass (database or Redis down) is logged and retried with
        exponential backoff (tenacity), cut short by `stop()`; the offsets stay where the last commit left
        them, so nothing is lost or applied twice."""
        self._stop.clear()
        consumed = 0
        while not self._stop.is_set():
            if cancel_requested():  # a library swallowed our cancel (asyncpg, Python 3.11): stop anyway
                raise asyncio.CancelledError
            retrying = AsyncRetrying(
                retry=retry_if_exception(self._retryable),
                wait=wait_exponential(multiplier=0.1, max=self.retry_max_s),
                stop=lambda _: self._stop.is_set(),
                sleep=self._pause,
                before_sleep=self._log_failure,
                reraise=True,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        # block on Redis only when the last pass had drained everything
                        block = self.block_ms if consumed < self.batch_size // 2 else None
                        consumed = await self.run_once(block_ms=block, linger=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                if not self._stop.is_set():
                    raise
                return  # stopped while failing: the next start catches up from the stored offsets

    def _retryable(self, exc: BaseException) -> bool:
        if cancel_requested() or not isinstance(exc, Exception):
            return False
        self.stats.errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        return True

    def _log_failure(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("history writer pass failed (retry in %.1fs): %s", wait, self.stats.last_error)

    async def _pause(self, seconds: float) -> None:
        """The backoff's sleep, over as soon as the writer is asked to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        self.stop()
        if self._owns_engine:
            await self.engine.dispose()

    async def drain(self, max_passes: int = 10_000) -> int:
        """Run passes until one finds nothing new; returns the entries consumed."""
        total = 0
        for _ in range(max_passes):
            n = await self.run_once()
            if n == 0:
                break
            total += n
        return total

    # -- one pass ------------------------------------------------------------------------------------------
    async def run_once(self, block_ms: int | None = None, *, linger: bool = False) -> int:
        """Read one batch from the tracked streams and write it; returns the entries consumed.

        `linger`: a read of less than half a batch waits up to `linger_s` for more entries (cut short by
        `stop()`) and is read again, so that entries trickling in share one transaction."""
        await self._maybe_discover()
        await self._load_offsets()
        await self._maybe_check_resets()
        read = await self._read(block_ms)
        if not read:
            return 0
        if linger and self.linger_s > 0 and self._drained(read) and not self._stop.is_set():
            # a transaction's fixed cost (statements, commit, the driver's thread hop) dwarfs a few rows':
            # paying it once per linger instead of once per trickle is what keeps ordinary rates cheap
            await self._pause(self.linger_s)
            if not self._stop.is_set():
                # the offsets have not moved: the same start ids return the first read and what came since
                read = await self._read(None) or read
        batch = Batch()
        for user_id, items in read:
            off = self._offsets.get(user_id)
            if off is None:
                continue
            expected = off.last_seq + 1
            for entry_id, fields in items:
                seq = _seq_of(entry_id)
                if seq < expected:
                    continue
                if seq > expected:
                    self.stats.gaps += seq - expected
                    log.warning(
                        "history: stream %s skipped seq %d..%d (trimmed before it was read)",
                        off.stream,
                        expected,
                        seq - 1,
                    )
                expected = seq + 1
                data = fields.get(b"data", fields.get("data", b""))
                batch.add(off.stream, user_id, off.epoch, seq, data)
        if not batch.entries:
            return 0
        t0 = time.perf_counter()
        async with self.engine.begin() as conn:
            await apply_batch(conn, batch)
        elapsed = time.perf_counter() - t0
        for p in batch.progress.values():
            off = self._offsets.get(p.user_id)
            if off is not None and off.epoch == p.epoch and p.last_seq > off.last_seq:
                off.last_seq = p.last_seq
                off.last_event_id = p.last_event_id
        st = self.stats
        st.entries += batch.entries
        st.ignored += batch.ignored
        st.dead_letters += len(batch.dead_letters)
        st.batches += 1
        st.last_batch_at = datetime.now(UTC)
        st.batch_seconds = [*st.batch_seconds[-99:], elapsed]
        if batch.dead_letters:
            log.warning(
                "history: %d stream entries could not be applied (see dead_letters)", len(batch.dead_letters)
            )
        return batch.entries

    def _per_stream(self, streams: int) -> int:
        """Entries asked of each stream in one read: about batch_size in all."""
        return max(1, -(-self.batch_size // max(streams, 1)))

    def _drained(self, read: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """A small read that emptied every stream: worth a linger. A stream that filled its share has more
        waiting, and lingering then would cap a busy account at one share per linger (400 accounts tracked,
        batches of 1,000, a 200 ms linger: 3 entries per linger, 15 a second), however few the read brought."""
        share = self._per_stream(sum(1 for o in self._offsets.values() if o.loaded))
        total = sum(len(items) for _, items in read)
        return total < self.batch_size // 2 and all(len(items) < share for _, items in read)

    async def _read(self, block_ms: int | None) -> list[tuple[str, list[tuple[Any, dict[Any, Any]]]]]:
        offs = [o for o in self._offsets.values() if o.loaded]
        if not offs:
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return []
        count = self._per_stream(len(offs))
        groups = read_groups(self.redis, offs, lambda o: o.stream, self.max_streams_per_read)

        def streams(group: list[StreamOffset]) -> dict[Any, Any]:
            return {o.stream: f"{o.last_seq}-{MAX_SEQ_PART}" if o.last_seq else "0-0" for o in group}

        if len(groups) == 1:
            replies = [await self.redis.xread(streams(groups[0]), count=count, block=block_ms or None)]
        else:
            pipe = self.redis.pipeline(transaction=False)
            for g in groups:
                pipe.xread(streams(g), count=count)
            replies = await pipe.execute()
        out: list[tuple[str, list[tuple[Any, dict[Any, Any]]]]] = []
        for reply in replies:
            if not reply:
                continue
            pairs = reply.items() if isinstance(reply, dict) else reply
            for name, raw in pairs:
                entries: Any = raw
                if isinstance(entries, list) and entries and isinstance(entries[0], list):
                    entries = entries[0]  # RESP3 shape: {stream: [[(id, fields), ...]]}
                user_id = self._by_stream.get(_s(name))
                if user_id is not None and entries:
                    out.append((user_id, list(entries)))
        if not out and len(groups) > 1 and block_ms:
            await asyncio.sleep(min(block_ms, 200) / 1000)
        return out

    # -- offsets, discovery, resets ------------------------------------------------------------------------
    async def _load_offsets(self) -> None:
        pending = [o for o in self._offsets.values() if not o.loaded]
        if not pending:
            return
        by_stream = {o.stream: o for o in pending}
        async with self.engine.connect() as conn:
            for chunk in _chunks(list(by_stream), _IN_CHUNK):
                result = await conn.execute(
                    select(
                        t.stream_offsets.c.stream,
                        t.stream_offsets.c.epoch,
                        t.stream_offsets.c.last_seq,
                        t.stream_offsets.c.last_event_id,
                    ).where(t.stream_offsets.c.stream.in_(chunk))
                )
                for stream, epoch, last_seq, last_event_id in result:
                    o = by_stream[stream]
                    o.epoch, o.last_seq, o.last_event_id = int(epoch), int(last_seq), last_event_id
        for o in pending:
            o.loaded = True
            o.checked = False

    async def _maybe_discover(self) -> None:
        if not self.track_active_users:
            return
        now = time.monotonic()
        if now - self._last_discover < self.discover_interval_s:
            return
        self._last_discover = now
        for member in await self.redis.smembers(self.keys.active_users()):
            self.add_user(_s(member))

    async def _maybe_check_resets(self) -> None:
        now = time.monotonic()
        due = now - self._last_reset_check >= self.reset_check_interval_s
        offs = [o for o in self._offsets.values() if o.loaded and (due or not o.checked)]
        if due:
            self._last_reset_check = now
        if offs:
            await self.check_resets(offs)

    async def check_resets(self, offs: Sequence[StreamOffset] | None = None) -> list[str]:
        """Find streams that started again (Redis lost its data); returns their users. Each gets a new epoch
        (persisted at once) and is read again from its first entry."""
        offs = list(self._offsets.values()) if offs is None else list(offs)
        started = [o for o in offs if o.loaded and o.last_seq > 0]
        for o in offs:
            o.checked = True
        if not started:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for o in started:
            pipe.get(self.keys.event_seq(o.user_id))
            pipe.xrange(o.stream, f"{o.last_seq}-0", f"{o.last_seq}-{MAX_SEQ_PART}", count=1)
        replies = await pipe.execute()
        reset: list[StreamOffset] = []
        for i, o in enumerate(started):
            counter_raw, at_offset = replies[2 * i], replies[2 * i + 1]
            counter = int(counter_raw) if counter_raw is not None else 0
            if counter < o.last_seq:
                reset.append(o)
                continue
            if at_offset and o.last_event_id is not None:
                _, fields = at_offset[0]
                event_id = _event_id(fields.get(b"data", fields.get("data")))
                if event_id is not None and event_id != o.last_event_id:
                    reset.append(o)
        if not reset:
            return []
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                _statements(conn.dialect.name).offsets,
                [
                    {
                        "stream": o.stream,
                        "user_id": o.user_id,
                        "epoch": o.epoch + 1,
                        "last_seq": 0,
                        "last_event_id": None,
                        "updated_at": now,
                    }
                    for o in reset
                ],
            )
        for o in reset:
            log.warning(
                "history: stream %s restarted (Redis lost its data?): epoch %d -> %d, reading it again from seq 1",
                o.stream,
                o.epoch,
                o.epoch + 1,
            )
            o.epoch += 1
            o.last_seq = 0
            o.last_event_id = None
        self.stats.resets += len(reset)
        return [o.user_id for o in reset]

    async def lag(self) -> dict[str, int]:
        """Per tracked user: events in the stream not yet applied (last seq assigned - last seq applied)."""
        await self._load_offsets()
        offs = list(self._offsets.values())
        if not offs:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for o in offs:
            pipe.get(self.keys.event_seq(o.user_id))
        counters = await pipe.execute()
        out: dict[str, int] = {}
        for o, raw in zip(offs, counters, strict=True):
            counter = int(raw) if raw is not None else 0
            out[o.user_id] = counter if counter < o.last_seq else counter - o.last_seq
        return out


def _event_id(data: Any) -> str | None:
    if data is None:
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(payload, dict) and payload.get("event_id") is not None:
        return str(payload["event_id"])[:64]
    return None
