"""Trailing-stop engine (SPEC section 5): stops that really act, durable and exactly once.

Emulated stops are evaluated in bulk per (exchange, symbol, side, price source) by TrailingBook on every tick
(a `mark` stop watches the exchange's mark-price feed). State changes are compare-and-set transitions in Redis
(store/machines.py): two instances may both see a trigger, one wins the transition and sends the order.

Nothing is lost between the tick and the order (issue 11):
- a stop the book fires stays in `firing` until its trigger is recorded; a failed write (Redis away) is
  retried with backoff until it succeeds, or the stop is cancelled or fired elsewhere;
- a recorded trigger is executed by a supervised job that retries transient failures (network, Redis) until
  the close order is placed or the exchange refuses it; the close order's client id is fixed at the trigger,
  so a retry (or a restarted engine) first asks whether that order exists and only sends it if it does not;
- the order is sized from the account's reconciled view of the position (never before the account's first
  snapshot after a start or reconnect), else from the exchange.
The engine reacts to the bus (PositionClosed cancels a stop; OrderChanged moves a native stop) in its own
tasks, never inside an account's turn. Extremes are persisted at most every `flush_interval_s`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .. import metrics
from ..aio import Backoff
from ..bus import Bus
from ..domain.enums import PositionSide
from ..domain.market import PriceTick
from ..domain.messages import OrderChanged, PositionClosed
from ..domain.symbols import InvalidSymbol, native_symbol
from ..domain.trailing import PriceSource, StopMode, StopState, TrailingStop, observed_price
from ..domain.trailing_book import BookChange, TrailingBook
from ..exchanges.base import GatewayError
from ..store import Store
from ..store.leases import StaleWrite
from ..store.machines import Trigger
from ..supervisor import Supervisor, run_jobs
from .account.ports import Accounts
from .commands import CommandError, Conflict, NotFound
from .gateways import GatewayProvider
from .orders import OrderManager
from .prices import PriceHub
from .trailing_exec import StopExecutor
from .trailing_native import NativeStops

log = logging.getLogger(__name__)

BookKey = tuple[str, str, PriceSource, PositionSide]
LEASE_MS = 30_000
# triggers recorded per pipelined round trip: a tick's triggers in one (up to this many). Smaller chunks in flight
# together overlap Redis with packing, but the first chunks' sends then run (and their replies are handled) before
# the last chunk is read: measured worse for the last order of a 100-stop tick (bench_trailing_tick.py)
FIRE_CHUNK = 500
# moved extremes persisted per Redis round trip, i.e. per hold of the event loop: each costs ~100-200 us of CPU
# on this box (its trailing_stop.updated event body + redis-py packing), so a chunk holds the loop ~3-6 ms
FLUSH_CHUNK = 32
_ALWAYS = {PositionSide.LONG: Decimal(0), PositionSide.SHORT: Decimal("Infinity")}


class TrailingStopEngine:
    def __init__(
        self,
        store: Store,
        gateways: GatewayProvider,
        accounts: Accounts,
        orders: OrderManager,
        prices: PriceHub,
        bus: Bus,
        supervisor: Supervisor,
        *,
        instance_id: str | None = None,
        flush_interval_s: float = 1.0,
        resync_interval_s: float = 5.0,
        lease_s: float = LEASE_MS / 1000,
        visibility_lag_s: float = 5.0,
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.accounts = accounts
        self.orders = orders
        self.prices = prices
        self.bus = bus
        self.supervisor = supervisor.scope("trailing")
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.flush_interval_s = flush_interval_s
        self.resync_interval_s = resync_interval_s
        self.lease_ms = int(lease_s * 1000)
        self.stops: dict[str, TrailingStop] = {}
        self.books: dict[BookKey, TrailingBook] = {}
        self.firing: dict[str, tuple[Decimal, float]] = {}  # fired by the book, trigger not recorded yet
        self._dirty: set[BookKey] = set()
        self._by_slot: dict[tuple[str, str, str, str], str] = {}  # (user, exchange, symbol, side) -> stop id
        self.native = NativeStops(self, visibility_lag_s)
        self.executor = StopExecutor(self)
        self._unlisten: Callable[[], None] | None = None
        self.tick_to_send_s: list[float] = []  # latency samples: tick seen -> close order about to be sent
        self.on_sent: Callable[[TrailingStop], None] | None = None
        # scale-out (issue 14): whether this process evaluates an account's stops (its worker holds the lease);
        # None = every stop (one process)
        self.owns: Callable[[str, str], bool] | None = None

    def mine(self, stop: TrailingStop) -> bool:
        return self.owns is None or self.owns(stop.user_id, stop.exchange.value)

    @property
    def holder(self) -> str:
        return f"trailing:{self.instance_id}"

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._unlisten = self.prices.listen(self.on_tick)
        self.bus.subscribe("trailing-orders", self._on_order, OrderChanged)
        self.bus.subscribe("trailing-positions", self._on_position_closed, PositionClosed)
        await self.resync()
        self.supervisor.every("flush", self.flush_interval_s, self.flush)
        self.supervisor.every("resync", self.resync_interval_s, self.resync)

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        self.bus.unsubscribe("trailing-orders")
        self.bus.unsubscribe("trailing-positions")
        await self.supervisor.stop()
        with contextlib.suppress(Exception):
            await self.flush()
        for exchange, symbol in {(k[0], k[1]) for k in self.books}:
            self.prices.release(exchange, symbol, self.holder)

    def _job(self, name: str, fn: Callable[[], Any]) -> None:
        self.supervisor.spawn(name, fn, kind=name.split(":", 1)[0], restart=False)

    async def wait_idle(self) -> None:
        """Wait until the transitions scheduled so far are done (tests, shutdown)."""
        while jobs := [j for j in self.supervisor.jobs if j.kind.split("/")[-1] not in ("flush", "resync")]:
            await run_jobs(jobs)

    # -- loading -------------------------------------------------------------------------------------------
    async def resync(self) -> None:
        """Load live stops from Redis (new ones from other instances, restarts); drop finished ones; finish
        triggers whose execution was cut off; resolve native stops left `placing`."""
        live = {s.id: s for s in await self.store.trailing_stops.list_live() if self.mine(s)}
        for sid in list(self.stops):
            if sid not in live and sid not in self.firing:
                self._forget(self.stops[sid])
        for stop in live.values():
            if stop.state is StopState.TRIGGERED:
                if not self.executor.executing(
                    stop.id
                ):  # a trigger whose execution was cut off, here or elsewhere
                    self._remember(stop)
                    self._job(f"execute:{stop.id}", lambda s=stop: self.executor.execute(s))  # type: ignore[misc]
                continue
            if stop.state is StopState.PLACING:
                self._remember(stop)
                self.native.resolve_later(stop)
                continue
            if stop.id in self.firing:
                continue  # its trigger is being recorded
            known = self.stops.get(stop.id)
            if known is not None and known.version >= stop.version:
                continue
            self._forget(stop)
            self._remember(stop)
            if stop.mode is StopMode.EMULATED and stop.state.is_live:
                self._track(stop)

    def _book_key(self, stop: TrailingStop) -> BookKey:
        return (stop.exchange.value, stop.symbol, stop.price_source, stop.side)

    def _track(self, stop: TrailingStop) -> None:
        key = self._book_key(stop)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = TrailingBook(stop.side)
            self.prices.hold(stop.exchange.value, stop.symbol, self.holder)
        if stop.state is StopState.ACTIVE:
            book.add(stop.id, stop.callback_rate, stop.activation_price, stop.extreme_price)
        else:
            activation = stop.activation_price if stop.activation_price is not None else _ALWAYS[stop.side]
            book.add(stop.id, stop.callback_rate, activation, None)

    def _remember(self, stop: TrailingStop) -> None:
        """Hold a stop in memory, indexed by its position slot and (native) its exchange order."""
        self.stops[stop.id] = stop
        self._by_slot[stop.key_parts()] = stop.id
        self.native.index(stop)

    def _forget(self, stop: TrailingStop) -> None:
        self.stops.pop(stop.id, None)
        self.firing.pop(stop.id, None)
        if self._by_slot.get(stop.key_parts()) == stop.id:
            del self._by_slot[stop.key_parts()]
        self.native.unindex(stop)
        key = self._book_key(stop)
        book = self.books.get(key)
        if book is not None:
            book.remove(stop.id)
            if not len(book) and stop.id not in self.firing:
                del self.books[key]
                if not any(k[:2] == key[:2] for k in self.books):  # no stop watches the symbol any more
                    self.prices.release(stop.exchange.value, stop.symbol, self.holder)

    # -- the tick ---------------------------------------------------------------------------------------
    def on_tick(self, tick: PriceTick) -> None:
        seen = time.perf_counter()
        fired: list[str] = []
        for source in PriceSource:
            if source is PriceSource.MARK and tick.mark is None:
                continue  # a mark stop watches the exchange's mark price, never the last price
            for side in PositionSide:
                key = (tick.exchange, tick.symbol, source, side)
                book = self.books.get(key)
                if book is None or not len(book):
                    continue
                price = observed_price(source, side, tick.last, tick.bid, tick.ask, tick.mark)
                for change in book.on_price(price):
                    if self._on_change(change, seen):
                        fired.append(change.stop_id)
                self._dirty.add(key)
        if fired:  # the tick's triggers are recorded together: one round trip for all of them
            self._job(f"fire:{fired[0]}", lambda: self._fire_many(fired))

    def _on_change(self, change: BookChange, seen: float) -> bool:
        """Start what a change of the book asks for; True for a trigger (recorded with the tick's others)."""
        stop = self.stops.get(change.stop_id)
        if stop is None:
            return False
        if change.kind == "activated":
            self._job(f"activate:{stop.id}", lambda: self._activate(stop.id, change.extreme))
        elif change.kind == "triggered":
            self.firing[stop.id] = (change.price, seen)
            return True
        return False

    async def flush(self) -> None:
        """Persist extremes that moved since the last flush (coalesced) and emit trailing_stop.updated.

        In chunks of FLUSH_CHUNK stops, each computed when the previous one is written: the event loop (and the
        ticks) runs between two chunks, so 100k moved extremes never hold it for more than one chunk. A chunk
        that cannot be written hands its trees back to the book: the next flush writes their latest extremes.
        """
        keys, self._dirty = self._dirty, set()
        for key in keys:
            book = self.books.get(key)
            if book is None:
                continue
            report = book.moved_chunks(FLUSH_CHUNK)
            try:
                for chunk in report:
                    await self._persist_extremes(chunk)
            except Exception:
                report.requeue()
                self._dirty.add(key)
                raise

    async def _persist_extremes(self, chunk: list[tuple[str, Decimal]]) -> None:
        moved: list[TrailingStop] = []
        now = datetime.now(UTC)
        for sid, extreme in chunk:
            stop = self.stops.get(sid)
            if stop is None or stop.state is not StopState.ACTIVE or stop.extreme_price == extreme:
                continue
            moved.append(stop.model_copy(update={"extreme_price": extreme, "updated_at": now}))
        if not moved:
            return
        await self.store.trailing_stops.raise_extremes(moved)
        for stop in moved:  # written: remembered (same version, same indexes) unless it changed meanwhile
            known = self.stops.get(stop.id)
            if known is not None and known.version == stop.version:
                self.stops[stop.id] = stop

    # -- transitions ------------------------------------------------------------------------------------
    async def transition(self, stop: TrailingStop, event: str | None, **changes: Any) -> TrailingStop | None:
        """CAS from the stop's current version. On a lost race, reload it and return None. Redis errors
        propagate (the caller retries)."""
        new = stop.model_copy(
            update={**changes, "version": stop.version + 1, "updated_at": datetime.now(UTC)}
        )
        new = TrailingStop.model_validate(new.model_dump())
        if await self.store.trailing_stops.save(new, stop.version, event):
            if new.state.is_final:
                self._forget(new)
            else:
                self._remember(new)
            return new
        fresh = await self.store.trailing_stops.get(*stop.key_parts())
        if fresh is not None and fresh.id == stop.id:
            if fresh.state.is_final:
                self._forget(fresh)
            else:
                self._remember(fresh)
        return None

    async def _activate(self, stop_id: str, extreme: Decimal) -> None:
        backoff = Backoff()
        while True:
            current = self.stops.get(stop_id)
            if current is None or current.state is not StopState.PENDING or stop_id in self.firing:
                return
            try:
                await self.transition(current, "trailing_stop.activated", state=StopState.ACTIVE,
                                      extreme_price=self.books_extreme(current) or extreme)  # fmt: skip
            except StaleWrite:  # the account moved to another worker: it activates the stop there
                return
            except Exception as exc:  # Redis away: the book goes on trailing; the activation is written later
                metrics.trigger_retries.labels(kind="stop_activate").inc()
                log.warning("trailing stop %s: activation not recorded yet: %s", stop_id, exc)
                await backoff.sleep()

    def _trigger_of(self, current: TrailingStop, price: Decimal) -> Trigger:
        """The `triggered` version of an active stop, with its close order's fixed client id and intent."""
        version = current.version + 1
        new = current.model_copy(
            update={
                "state": StopState.TRIGGERED,
                "trigger_price": price,
                "close_client_order_id": f"ts{current.id[:24]}v{version}"[:32],
                "owner": self.instance_id,
                "lease_until_ms": int(time.time() * 1000) + self.lease_ms,
                "version": version,
                "updated_at": datetime.now(UTC),
            }
        )
        key = self.store.intents.key(new.user_id, new.exchange.value, new.close_client_order_id or "")
        return Trigger(new, current.version, key, self.executor.intent_fields(new))

    async def _fire_many(self, stop_ids: list[str]) -> None:
        """Record the triggers of one tick in one pipelined round trip (each trigger: compare-and-set to
        `triggered` plus the intent of its close order, one script; FIRE_CHUNK at most per round trip, more
        chunks in flight together), then send their close orders concurrently. A trigger not recorded that
        way is retried on its own (`_fire`) until recorded or moot."""
        ready: list[tuple[TrailingStop, Decimal]] = []
        for sid in stop_ids:
            current = self.stops.get(sid)
            if sid not in self.firing or current is None:
                self.firing.pop(sid, None)
                continue
            if current.state is not StopState.ACTIVE:  # activated and crossed in one tick, or changed
                self._job(f"fire:{sid}", lambda sid=sid: self._fire(sid))  # type: ignore[misc]
                continue
            ready.append((current, self.firing[sid][0]))
        chunks = [ready[i : i + FIRE_CHUNK] for i in range(0, len(ready), FIRE_CHUNK)]
        for chunk in chunks[1:]:
            self._job(f"fire:{chunk[0][0].id}", lambda c=chunk: self._record_and_send(c))  # type: ignore[misc]
        if chunks:
            await self._record_and_send(chunks[0])

    async def _record_and_send(self, chunk: list[tuple[TrailingStop, Decimal]]) -> None:
        batch = [self._trigger_of(stop, price) for stop, price in chunk]
        results: list[bool | Exception]
        try:
            results = await self.store.trailing_stops.trigger_many(batch)
        except (
            Exception
        ) as exc:  # nothing known of any of them: each is retried (a won CAS then reads as lost)
            results = [exc] * len(batch)
        last = None
        for t, r in zip(batch, results, strict=True):
            if isinstance(r, StaleWrite):  # the account moved to another worker, which fires it on its prices
                self.firing.pop(t.stop.id, None)
                self._forget(t.stop)
                continue
            if isinstance(r, Exception):
                metrics.trigger_retries.labels(kind="stop_trigger").inc()
                log.warning("trailing stop %s fired; trigger not recorded yet (%s): retrying", t.stop.id, r,
                            extra={"user_id": t.stop.user_id})  # fmt: skip
                self._job(f"fire:{t.stop.id}", lambda sid=t.stop.id: self._fire(sid))  # type: ignore[misc]
                continue
            send = await self._recorded(t.stop, r)
            if send is not None:
                if last is not None:  # sent concurrently, each in its own job
                    self._job(f"execute:{last[0].id}", lambda a=last: self.executor.execute(*a))  # type: ignore[misc]
                last = send
        if last is not None:
            await self.executor.execute(*last)

    async def _recorded(self, new: TrailingStop, won: bool) -> tuple[TrailingStop, float | None, bool] | None:
        """After a trigger's CAS: what to execute (the stop, the tick's time, its intent recorded), if any."""
        fired = self.firing.pop(new.id, None)
        if won:
            self._remember(new)
            metrics.count_outcome("trailing_stop.triggered")
            return new, fired[1] if fired else None, True
        # lost the race: re-read; if still ours to fire (a flush bumped nothing), the book re-fires
        fresh = await self.store.trailing_stops.get(*new.key_parts())
        if fresh is None or fresh.id != new.id:
            return None
        if fresh.state.is_final:
            self._forget(fresh)
            return None
        self._remember(fresh)
        if fresh.state is StopState.ACTIVE and fresh.mode is StopMode.EMULATED:
            self._track(fresh)
        elif (
            fresh.state is StopState.TRIGGERED
            and fresh.owner == self.instance_id
            and not self.executor.executing(fresh.id)
        ):  # recorded by us in a round trip whose answer was lost: executed, asking first whether it left
            return fresh, None, False
        return None

    async def _fire(self, stop_id: str) -> None:
        """Record the trigger, retrying until it is recorded, the stop is gone, or another instance won."""
        backoff = Backoff()
        while stop_id in self.firing:
            price, _seen = self.firing[stop_id]
            current = self.stops.get(stop_id)
            if current is None:
                self.firing.pop(stop_id, None)
                return
            try:
                if current.state is StopState.PENDING:  # activated and crossed within one tick
                    activated = await self.transition(
                        current, "trailing_stop.activated", state=StopState.ACTIVE, extreme_price=price
                    )
                    current = activated or self.stops.get(stop_id, current)
                if current.state is not StopState.ACTIVE:  # cancelled meanwhile, or fired elsewhere
                    self.firing.pop(stop_id, None)
                    return
                trigger = self._trigger_of(current, price)
                (result,) = await self.store.trailing_stops.trigger_many([trigger])
                if isinstance(result, Exception):
                    raise result
            except StaleWrite:  # the account moved to another worker, which fires the stop on its own prices
                self.firing.pop(stop_id, None)
                self._forget(current)
                return
            except Exception as exc:
                metrics.trigger_retries.labels(kind="stop_trigger").inc()
                log.warning("trailing stop %s fired; trigger not recorded yet (%s): retrying", stop_id, exc,
                            extra={"user_id": current.user_id})  # fmt: skip
                await backoff.sleep()
                continue
            send = await self._recorded(trigger.stop, result)
            if send is not None:
                await self.executor.execute(*send)
            return

    def books_extreme(self, stop: TrailingStop) -> Decimal | None:
        book = self.books.get(self._book_key(stop))
        return book.extreme_of(stop.id) if book else None

    # -- reacting to the account (the bus) ---------------------------------------------------------------
    async def _on_order(self, event: OrderChanged) -> None:
        await self.native.on_order(event.order)

    def _on_position_closed(self, event: PositionClosed) -> None:
        """A position closed by other means cancels its stop (in its own job: a native stop's cancel goes to
        the exchange)."""
        p = event.position
        stop = self.stops.get(self._by_slot.get((p.user_id, p.exchange.value, p.symbol, p.side.value), ""))
        if stop is not None and (stop.state.is_live or stop.state is StopState.PLACING):
            self._job(f"cancel:{stop.id}", lambda: self._cancel_quietly(stop.id))

    async def _cancel_quietly(self, stop_id: str) -> None:
        stop = self.stops.get(stop_id)
        if stop is None:
            return
        with contextlib.suppress(Conflict):  # it fired or changed meanwhile: nothing to cancel
            await self.cancel(stop, reason="position closed")

    # -- commands -----------------------------------------------------------------------------------------
    async def create(self, stop: TrailingStop) -> TrailingStop:
        stop = stop.model_copy(update={"symbol": await self._known_symbol(stop.exchange.value, stop.symbol)})
        existing = await self.store.trailing_stops.get(*stop.key_parts())
        if existing is not None and not existing.state.is_final:
            raise Conflict(
                f"a {existing.state.value} trailing stop exists for {stop.symbol} {stop.side.value}; delete it first",
                "symbol",
            )
        expected = existing.version if existing is not None else None
        stop = stop.model_copy(update={"version": (expected or 0) + 1, "state": StopState.PENDING})
        if stop.mode is StopMode.NATIVE:
            return await self.native.create(stop, expected)
        if not await self.store.trailing_stops.save(stop, expected, "trailing_stop.created"):
            raise Conflict("the trailing stop changed while being created; try again", "symbol")
        if not self.mine(stop):  # the worker holding the account evaluates it (from its next resync)
            return stop
        self._remember(stop)
        tick = self.prices.last(stop.exchange.value, stop.symbol)
        if stop.activation_price is None and (
            tick is None or (stop.price_source is PriceSource.MARK and tick.mark is None)
        ):
            with contextlib.suppress(
                GatewayError
            ):  # no price yet: ask for one (the first tick activates it else)
                gateway = await self.gateways.public(stop.exchange.value)
                tick = await gateway.fetch_ticker(stop.symbol)
        if stop.activation_price is None and tick is not None:
            price = observed_price(stop.price_source, stop.side, tick.last, tick.bid, tick.ask, tick.mark)
            activated = await self.transition(
                stop, "trailing_stop.activated", state=StopState.ACTIVE, extreme_price=price
            )
            stop = activated or stop
        self._track(stop)
        return self.stops.get(stop.id, stop)

    async def _known_symbol(self, exchange: str, symbol: str) -> str:
        try:
            native = native_symbol(exchange, symbol)
            gateway = await self.gateways.public(exchange)
            return gateway.market(native).symbol
        except (InvalidSymbol, KeyError, ValueError):
            raise CommandError(f"unknown symbol {symbol!r} on {exchange}", "symbol") from None

    async def cancel(self, stop: TrailingStop, reason: str = "deleted") -> TrailingStop:
        current = self.stops.get(stop.id) or stop
        if current.state.is_final or current.state is StopState.TRIGGERED or current.id in self.firing:
            raise Conflict(
                f"the trailing stop is already {current.state.value if current.id not in self.firing else 'firing'}",
                "side",
            )
        if current.mode is StopMode.NATIVE:
            await self.native.cancel_order(current)
        done = await self.transition(
            current, "trailing_stop.cancelled", state=StopState.CANCELLED, error=reason
        )
        if done is None:
            fresh = await self.store.trailing_stops.get(*current.key_parts())
            if fresh is not None and (fresh.state.is_live or fresh.state is StopState.PLACING):
                return await self.cancel(fresh, reason)
            if fresh is not None and fresh.state is StopState.CANCELLED:
                return fresh  # cancelled meanwhile (its native order's cancel came back first)
            raise Conflict("the trailing stop changed state (it may have triggered)", "side")
        return done

    async def delete(self, user_id: str, exchange: str, symbol: str, side: str) -> TrailingStop:
        stop = await self.store.trailing_stops.get(user_id, exchange, native_symbol(exchange, symbol), side)
        if stop is None or stop.state.is_final:
            raise NotFound(f"no live trailing stop for user {user_id} on {exchange} {symbol} {side}")
        return await self.cancel(stop)
