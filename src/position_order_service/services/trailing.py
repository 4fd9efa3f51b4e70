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
        self._unwritten: dict[
            str, Decimal
        ] = {}  # extremes a failed flush could not write (stop id -> extreme)
        self._by_slot: dict[tuple[str, str, str, str], str] = {}  # (user, exchange, symbol, side) -> stop id
        self.native = NativeStops(self, visibility_lag_s)
        self.executor = StopExecutor(self)
        self._unlisten: Callable[[], None] | None = None
        self.tick_to_send_s: list[float] = []  # latency samples: tick seen -> close order about to be sent
        self.on_sent: Callable[[TrailingStop], None] | None = None

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
        live = {s.id: s for s in await self.store.trailing_stops.list_live()}
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
                    self._on_change(change, seen)
                self._dirty.add(key)

    def _on_change(self, change: BookChange, seen: float) -> None:
        stop = self.stops.get(change.stop_id)
        if stop is None:
            return
        if change.kind == "activated":
            self._job(f"activate:{stop.id}", lambda: self._activate(stop.id, change.extreme))
        elif change.kind == "triggered":
            self.firing[stop.id] = (change.price, seen)
            self._job(f"fire:{stop.id}", lambda: self._fire(stop.id))

    async def flush(self) -> None:
        """Persist extremes that moved since the last flush (coalesced) and emit trailing_stop.updated."""
        keys, self._dirty = self._dirty, set()
        extremes, self._unwritten = self._unwritten, {}  # what a failed flush could not write, first
        for key in keys:
            book = self.books.get(key)
            if book is not None:
                extremes.update(book.take_moved())
        moved: list[tuple[TrailingStop, TrailingStop]] = []  # (as held before, with the new extreme)
        now = datetime.now(UTC)
        for sid, extreme in extremes.items():
            stop = self.stops.get(sid)
            if stop is None or stop.state is not StopState.ACTIVE or stop.extreme_price == extreme:
                continue
            raised = stop.model_copy(update={"extreme_price": extreme, "updated_at": now})
            self._remember(raised)
            moved.append((stop, raised))
        try:
            for i in range(0, len(moved), 500):
                await self.store.trailing_stops.raise_extremes([r for _, r in moved[i : i + 500]])
        except Exception:
            # not written: hold the stops as Redis has them, and write these extremes on the next flush
            # (the book has handed them out already: it would not list them again until they move again)
            for held, raised in moved:
                self._unwritten[raised.id] = extremes[raised.id]
                if self.stops.get(raised.id) is raised:
                    self._remember(held)
            raise

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
            except Exception as exc:  # Redis away: the book goes on trailing; the activation is written later
                metrics.trigger_retries.labels(kind="stop_activate").inc()
                log.warning("trailing stop %s: activation not recorded yet: %s", stop_id, exc)
                await backoff.sleep()

    async def _fire(self, stop_id: str) -> None:
        """Record the trigger, retrying until it is recorded, the stop is gone, or another instance won."""
        backoff = Backoff()
        while stop_id in self.firing:
            price, seen = self.firing[stop_id]
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
                version = current.version + 1
                triggered = await self.transition(
                    current,
                    "trailing_stop.triggered",
                    state=StopState.TRIGGERED,
                    trigger_price=price,
                    close_client_order_id=f"ts{current.id[:24]}v{version}"[:32],
                    owner=self.instance_id,
                    lease_until_ms=int(time.time() * 1000) + self.lease_ms,
                )
            except Exception as exc:
                metrics.trigger_retries.labels(kind="stop_trigger").inc()
                log.warning("trailing stop %s fired; trigger not recorded yet (%s): retrying", stop_id, exc,
                            extra={"user_id": current.user_id})  # fmt: skip
                await backoff.sleep()
                continue
            self.firing.pop(stop_id, None)
            if triggered is not None:
                await self.executor.execute(triggered, seen)
            else:  # lost the race: re-read; if still ours to fire (a flush bumped nothing), the book re-fires
                fresh = self.stops.get(stop_id)
                if fresh is not None and fresh.state is StopState.ACTIVE and fresh.mode is StopMode.EMULATED:
                    self._track(fresh)
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
