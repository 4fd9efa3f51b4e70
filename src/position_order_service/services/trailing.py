"""Trailing-stop engine (SPEC section 5): stops that really act, durable and exactly once.

Emulated stops are evaluated in bulk per (exchange, symbol, side, price source) by TrailingBook on every tick.
State changes are compare-and-set transitions in Redis (store/machines.py): two instances may both see a
trigger, one wins the transition and sends the order. The close order's client id is fixed at the trigger, so
after a crash between trigger and execution the restarted engine first asks the exchange whether that order
exists, and only sends it if it does not. Extremes are persisted at most every `flush_interval_s`; after a
restart a stop goes on from its persisted extreme.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .. import metrics
from ..aio import cancel_all, cancel_requested
from ..domain.enums import OrderStatus, OrderType, PositionSide
from ..domain.market import PriceTick
from ..domain.models import Order, Position
from ..domain.symbols import InvalidSymbol, native_symbol
from ..domain.trailing import PriceSource, StopMode, StopState, TrailingStop, observed_price
from ..domain.trailing_book import BookChange, TrailingBook
from ..exchanges.base import ExchangeUnavailable, GatewayError, OrderNotFound
from ..store import Store
from .commands import CommandError, Conflict, NotFound
from .gateways import GatewayProvider
from .orders import OrderCommand, OrderManager
from .prices import PriceHub
from .tracking import TrackingService

log = logging.getLogger(__name__)

BookKey = tuple[str, str, PriceSource, PositionSide]
LEASE_MS = 30_000
_ALWAYS = {PositionSide.LONG: Decimal(0), PositionSide.SHORT: Decimal("Infinity")}


class TrailingStopEngine:
    def __init__(
        self,
        store: Store,
        gateways: GatewayProvider,
        tracking: TrackingService,
        orders: OrderManager,
        prices: PriceHub,
        *,
        instance_id: str | None = None,
        flush_interval_s: float = 1.0,
        resync_interval_s: float = 5.0,
        lease_s: float = LEASE_MS / 1000,
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.tracking = tracking
        self.orders = orders
        self.prices = prices
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.flush_interval_s = flush_interval_s
        self.resync_interval_s = resync_interval_s
        self.lease_ms = int(lease_s * 1000)
        self.stops: dict[str, TrailingStop] = {}
        self.books: dict[BookKey, TrailingBook] = {}
        self._dirty: set[BookKey] = set()
        self._executing: set[str] = set()
        self._by_slot: dict[tuple[str, str, str, str], str] = {}  # (user, exchange, symbol, side) -> stop id
        self._by_native_order: dict[str, str] = {}  # exchange order id -> native stop id
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._unlisten: Callable[[], None] | None = None
        self.tick_to_send_s: list[float] = []  # latency samples: tick seen -> close order about to be sent
        self.on_sent: Callable[[TrailingStop], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._unlisten = self.prices.listen(self.on_tick)
        self.tracking.order_listeners.append(self._on_order)
        self.tracking.position_listeners.append(self._on_position)
        await self.resync()
        self._loops = [
            asyncio.create_task(self._every(self.flush_interval_s, self.flush), name="trailing-flush"),
            asyncio.create_task(self._every(self.resync_interval_s, self.resync), name="trailing-resync"),
        ]

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        with contextlib.suppress(ValueError):
            self.tracking.order_listeners.remove(self._on_order)
        with contextlib.suppress(ValueError):
            self.tracking.position_listeners.remove(self._on_position)
        await cancel_all([*self._loops, *self._tasks])
        self._loops = []
        with contextlib.suppress(Exception):
            await self.flush()
        for key in {(k[0], k[1]) for k in self.books}:
            await self.prices.release(key[0], key[1], f"trailing:{self.instance_id}")

    async def _every(self, interval: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise
                log.exception("trailing-stop background step failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until the transitions scheduled so far are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- loading -------------------------------------------------------------------------------------------
    async def resync(self) -> None:
        """Load live stops from Redis (new ones from other instances, restarts); drop finished ones."""
        live = {s.id: s for s in await self.store.trailing_stops.list_live()}
        for sid in list(self.stops):
            if sid not in live:
                self._forget(self.stops[sid])
        for stop in live.values():
            if stop.state is StopState.TRIGGERED:
                if stop.id not in self._executing:  # a trigger whose execution was cut off, here or elsewhere
                    self._remember(stop)
                    self._spawn(self._execute(stop))
                continue
            known = self.stops.get(stop.id)
            if known is not None and known.version >= stop.version:
                continue
            self._forget(stop)
            self._remember(stop)
            if stop.mode is StopMode.EMULATED and stop.state.is_live:
                await self._track(stop)

    def _book_key(self, stop: TrailingStop) -> BookKey:
        return (stop.exchange.value, stop.symbol, stop.price_source, stop.side)

    async def _track(self, stop: TrailingStop) -> None:
        key = self._book_key(stop)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = TrailingBook(stop.side)
            await self.prices.hold(stop.exchange.value, stop.symbol, f"trailing:{self.instance_id}")
        if stop.state is StopState.ACTIVE:
            book.add(stop.id, stop.callback_rate, stop.activation_price, stop.extreme_price)
        else:
            activation = stop.activation_price if stop.activation_price is not None else _ALWAYS[stop.side]
            book.add(stop.id, stop.callback_rate, activation, None)

    def _remember(self, stop: TrailingStop) -> None:
        """Hold a stop in memory, indexed by its position slot and (native) its exchange order."""
        self.stops[stop.id] = stop
        self._by_slot[stop.key_parts()] = stop.id
        if stop.mode is StopMode.NATIVE and stop.close_order_id:
            self._by_native_order[stop.close_order_id] = stop.id

    def _forget(self, stop: TrailingStop) -> None:
        self.stops.pop(stop.id, None)
        if self._by_slot.get(stop.key_parts()) == stop.id:
            del self._by_slot[stop.key_parts()]
        if stop.close_order_id and self._by_native_order.get(stop.close_order_id) == stop.id:
            del self._by_native_order[stop.close_order_id]
        book = self.books.get(self._book_key(stop))
        if book is not None:
            book.remove(stop.id)

    # -- the tick ---------------------------------------------------------------------------------------
    def on_tick(self, tick: PriceTick) -> None:
        seen = time.perf_counter()
        for source in PriceSource:
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
            self._spawn(self._activate(stop, change.extreme))
        elif change.kind == "triggered":
            self._spawn(self._fire(stop, change.price, seen))

    async def flush(self) -> None:
        """Persist extremes that moved since the last flush (coalesced) and emit trailing_stop.updated."""
        keys, self._dirty = self._dirty, set()
        moved: list[TrailingStop] = []
        now = datetime.now(UTC)
        for key in keys:
            book = self.books.get(key)
            if book is None:
                continue
            for sid, extreme in book.take_moved():
                stop = self.stops.get(sid)
                if stop is None or stop.state is not StopState.ACTIVE or stop.extreme_price == extreme:
                    continue
                stop = stop.model_copy(update={"extreme_price": extreme, "updated_at": now})
                self._remember(stop)
                moved.append(stop)
        for i in range(0, len(moved), 500):
            await self.store.trailing_stops.raise_extremes(moved[i : i + 500])

    # -- transitions ------------------------------------------------------------------------------------
    async def _transition(self, stop: TrailingStop, event: str | None, **changes: Any) -> TrailingStop | None:
        """CAS from the stop's current version. On a lost race, reload it and return None."""
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

    async def _activate(self, stop: TrailingStop, extreme: Decimal) -> None:
        current = self.stops.get(stop.id, stop)
        if current.state is not StopState.PENDING:
            return
        done = await self._transition(
            current, "trailing_stop.activated", state=StopState.ACTIVE, extreme_price=extreme
        )
        if done is None:
            reloaded = self.stops.get(stop.id)
            if reloaded is not None and reloaded.state is StopState.PENDING:
                await self._activate(reloaded, extreme)  # lost to a flush of ours or a peer: retry once

    async def _fire(self, stop: TrailingStop, price: Decimal, seen: float) -> None:
        current = self.stops.get(stop.id, stop)
        if current.state is StopState.PENDING:  # activated and crossed within one tick
            await self._activate(current, self.books_extreme(current) or price)
            current = self.stops.get(stop.id, current)
        if current.state is not StopState.ACTIVE:
            return
        version = current.version + 1
        triggered = await self._transition(
            current,
            "trailing_stop.triggered",
            state=StopState.TRIGGERED,
            trigger_price=price,
            close_client_order_id=f"ts{current.id[:24]}v{version}"[:32],
            owner=self.instance_id,
            lease_until_ms=int(time.time() * 1000) + self.lease_ms,
        )
        if triggered is None:
            return  # another instance won the trigger: it sends the order
        await self._execute(triggered, seen)

    def books_extreme(self, stop: TrailingStop) -> Decimal | None:
        book = self.books.get(self._book_key(stop))
        return book.extreme_of(stop.id) if book else None

    async def _live_size(self, stop: TrailingStop) -> tuple[Decimal, bool]:
        """The live position size (the order is capped at it) and whether the account is in hedge mode."""
        tracker = self.tracking.get(stop.user_id, stop.exchange.value)
        if tracker is not None and tracker.health.last_reconcile_at is not None:
            p = tracker.stored_position(stop.symbol, stop.side.value)
            return (p.size if p is not None and p.is_open else Decimal(0)), tracker.hedged
        gateway = await self.gateways.for_user(stop.user_id, stop.exchange.value)
        hedged = await gateway.fetch_position_mode()
        for p in await gateway.fetch_positions([stop.symbol]):
            if p.side is stop.side and p.size > 0:
                return p.size, hedged
        return Decimal(0), hedged

    async def _execute(self, stop: TrailingStop, seen: float | None = None) -> None:
        """Send the close order of a triggered stop, exactly once."""
        if stop.id in self._executing:
            return
        self._executing.add(stop.id)
        try:
            await self._execute_once(stop, seen)
        except Exception:
            # e.g. credentials or Redis missing: the stop stays `triggered`; the next resync tries again
            log.exception(
                "trailing stop %s could not be executed yet", stop.id, extra={"user_id": stop.user_id}
            )
        finally:
            self._executing.discard(stop.id)

    async def _execute_once(self, stop: TrailingStop, seen: float | None) -> None:
        assert stop.close_client_order_id is not None
        now_ms = int(time.time() * 1000)
        if stop.owner != self.instance_id and (stop.lease_until_ms or 0) > now_ms:
            return  # its owner is (still) on it
        if stop.owner != self.instance_id:
            taken = await self._transition(
                stop, None, owner=self.instance_id, lease_until_ms=now_ms + self.lease_ms
            )
            if taken is None:
                return
            stop = taken
        user, exchange = stop.user_id, stop.exchange.value
        cid = stop.close_client_order_id
        assert cid is not None
        try:
            if seen is None:
                # a trigger recorded earlier (a crash, another instance): the order may have left already
                gateway = await self.gateways.for_user(user, exchange)
                existing = await gateway.fetch_order(stop.symbol, client_order_id=cid)
                if existing is not None:  # sent before a crash: do not send again
                    await self._executed(stop, existing)
                    return
                await self.store.intents.delete(
                    user, exchange, cid
                )  # a stale intent of a send that never left
            # else: this process won the trigger just now, and the client id is new: nothing can exist yet
            size, hedged = await self._live_size(stop)
            qty = size if stop.size is None else min(stop.size, size)
            if qty <= 0:
                await self._transition(
                    stop, "trailing_stop.failed", state=StopState.FAILED, error="no open position"
                )
                return
            if seen is not None:
                elapsed = time.perf_counter() - seen
                self.tick_to_send_s.append(elapsed)
                metrics.tick_to_trigger.observe(elapsed)
            if self.on_sent is not None:
                self.on_sent(stop)
            order = await self.orders.place(
                OrderCommand(
                    user_id=user,
                    exchange=exchange,
                    symbol=stop.symbol,
                    side=stop.side.exit_order_side,
                    order_type=OrderType.MARKET,
                    quantity=qty,
                    reduce_only=True,
                    position_side=stop.side if hedged else None,
                    client_order_id=cid,
                    metadata={"purpose": "trailing_stop", "trailing_stop_id": stop.id},
                )
            )
        except (TimeoutError, ExchangeUnavailable):
            log.warning(
                "trailing stop %s: exchange unreachable; will retry", stop.id, extra={"user_id": user}
            )
            await asyncio.sleep(1.0)
            return  # left `triggered`: the next resync tries again
        except (GatewayError, CommandError) as exc:
            reason = exc.reason if isinstance(exc, GatewayError) else exc.message
            await self._transition(stop, "trailing_stop.failed", state=StopState.FAILED, error=reason)
            return
        await self._executed(stop, order)

    async def _executed(self, stop: TrailingStop, order: Order) -> None:
        await self._transition(
            stop,
            "trailing_stop.executed",
            state=StopState.EXECUTED,
            close_order_id=order.order_id,
            filled_size=order.filled_qty,
            owner=None,
            lease_until_ms=None,
        )

    # -- reacting to orders and positions -------------------------------------------------------------
    async def _on_order(self, order: Order, previous: Order | None) -> None:
        """Native stops follow their exchange order."""
        stop = self.stops.get(self._by_native_order.get(order.order_id, ""))
        if stop is None:
            return
        if order.status is OrderStatus.FILLED:
            await self._executed(stop, order)
        elif order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            await self._transition(
                stop, "trailing_stop.cancelled", state=StopState.CANCELLED, error="exchange order cancelled"
            )
        elif order.status is OrderStatus.REJECTED:
            await self._transition(
                stop, "trailing_stop.failed", state=StopState.FAILED, error="order rejected"
            )

    async def _on_position(self, position: Position) -> None:
        """A position closed by other means cancels its stop."""
        if position.is_open:
            return
        slot = (position.user_id, position.exchange.value, position.symbol, position.side.value)
        stop = self.stops.get(self._by_slot.get(slot, ""))
        if stop is not None and stop.state.is_live:
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
            stop = await self._place_native(stop)
        if not await self.store.trailing_stops.save(stop, expected, "trailing_stop.created"):
            raise Conflict("the trailing stop changed while being created; try again", "symbol")
        self._remember(stop)
        if stop.mode is StopMode.EMULATED:
            tick = self.prices.last(stop.exchange.value, stop.symbol)
            if stop.activation_price is None and tick is None:
                with contextlib.suppress(GatewayError):  # no price at all yet: the first tick activates it
                    gateway = await self.gateways.public(stop.exchange.value)
                    tick = await gateway.fetch_ticker(stop.symbol)
            if stop.activation_price is None and tick is not None:
                price = observed_price(stop.price_source, stop.side, tick.last, tick.bid, tick.ask, tick.mark)
                activated = await self._transition(
                    stop, "trailing_stop.activated", state=StopState.ACTIVE, extreme_price=price
                )
                stop = activated or stop
            await self._track(stop)
        return self.stops.get(stop.id, stop)

    async def _known_symbol(self, exchange: str, symbol: str) -> str:
        try:
            native = native_symbol(exchange, symbol)
            gateway = await self.gateways.public(exchange)
            return gateway.market(native).symbol
        except (InvalidSymbol, KeyError, ValueError):
            raise CommandError(f"unknown symbol {symbol!r} on {exchange}", "symbol") from None

    async def _place_native(self, stop: TrailingStop) -> TrailingStop:
        size = stop.size
        if size is None:
            live, _ = await self._live_size(stop)
            if live <= 0:
                raise CommandError("size is required when there is no open position to protect", "size")
            size = live
        _, hedged = await self._live_size(stop)
        order = await self.orders.place(
            OrderCommand(
                user_id=stop.user_id,
                exchange=stop.exchange.value,
                symbol=stop.symbol,
                side=stop.side.exit_order_side,
                order_type=OrderType.TRAILING_STOP,
                quantity=size,
                reduce_only=True,
                position_side=stop.side if hedged else None,
                callback_rate=stop.callback_rate,
                activation_price=stop.activation_price,
                metadata={"purpose": "trailing_stop", "trailing_stop_id": stop.id},
            )
        )
        # the exchange keeps the extreme of a native stop; we follow its order
        return stop.model_copy(
            update={"state": StopState.ACTIVE, "close_order_id": order.order_id, "size": size}
        )

    async def cancel(self, stop: TrailingStop, reason: str = "deleted") -> TrailingStop:
        current = self.stops.get(stop.id) or stop
        if current.state.is_final or current.state is StopState.TRIGGERED:
            raise Conflict(f"the trailing stop is already {current.state.value}", "side")
        if current.mode is StopMode.NATIVE and current.close_order_id:
            with contextlib.suppress(NotFound, Conflict, OrderNotFound):
                await self.orders.cancel_order(
                    current.user_id,
                    current.exchange.value,
                    current.close_order_id,
                    current.symbol,
                    "trailing_stop",
                )
        done = await self._transition(
            current, "trailing_stop.cancelled", state=StopState.CANCELLED, error=reason
        )
        if done is None:
            fresh = await self.store.trailing_stops.get(*current.key_parts())
            if fresh is not None and fresh.state.is_live:
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
