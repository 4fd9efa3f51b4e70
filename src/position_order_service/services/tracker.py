"""One user's account on one exchange, kept in Redis as the exchange reports it.

Streams are a hint, REST is the truth (SPEC section 4): a snapshot at start, after every reconnect, and
whenever the streams have been silent for `silent_reconcile_s`; differences become ordinary updates through
the store's atomic writes, so they emit the same events a live update would. The tracker is the single
writer of its user's order and position state (DESIGN invariant 2); commands hand their results to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .. import metrics
from ..aio import cancel_all, cancel_requested
from ..domain.enums import OrderStatus
from ..domain.events import envelope
from ..domain.market import FillReport, PriceTick
from ..domain.models import Order, Position
from ..domain.reconcile import (
    Intent,
    close_position,
    flipped_side,
    marked,
    merge_order,
    merge_position,
    positions_gone,
)
from ..exchanges.base import (
    AuthenticationFailed,
    ExchangeGateway,
    GatewayError,
    OrderNotFound,
    StreamDisconnected,
)
from ..store import Store
from ..store.repositories import ORDER_CODEC, POSITION_CODEC
from .prices import PriceHub

log = logging.getLogger(__name__)

OrderListener = Callable[[Order, Order | None], Awaitable[None] | None]
PositionListener = Callable[[Position], Awaitable[None] | None]

# An order missing from the exchange's open list is declared gone only after this many not-found answers
# (a network error is never a "not found"): Hummingbot users lost live orders to a single miss.
NOT_FOUND_LIMIT = 3


@dataclass
class TrackerHealth:
    state: str = "starting"  # starting | healthy | reconnecting | error | stopped
    last_error: str | None = None
    last_reconcile_at: datetime | None = None
    last_event_at: datetime | None = None
    reconnects: int = 0
    corrections: int = 0
    updates_applied: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "healthy": self.state == "healthy",
            "last_error": self.last_error,
            "last_reconcile_at": self.last_reconcile_at.isoformat() if self.last_reconcile_at else None,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "reconnects": self.reconnects,
            "corrections": self.corrections,
            "updates_applied": self.updates_applied,
        }


@dataclass
class TrackerOptions:
    silent_reconcile_s: float = 30.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    mark_interval_s: float = 1.0  # positions re-valued from ticks at most this often
    settle_s: float = 1.0  # a second snapshot this long after the start


class UserTracker:
    def __init__(
        self,
        user_id: str,
        exchange: str,
        gateway: ExchangeGateway,
        store: Store,
        prices: PriceHub,
        options: TrackerOptions | None = None,
    ) -> None:
        self.user_id = user_id
        self.exchange = exchange
        self.gateway = gateway
        self.store = store
        self.prices = prices
        self.options = options or TrackerOptions()
        self.health = TrackerHealth()
        self.hedged = False
        self.orders: dict[str, Order] = {}
        self.positions: dict[tuple[str, str], Position] = {}
        self.order_listeners: list[OrderListener] = []
        self.position_listeners: list[PositionListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()  # one writer: stream batches, snapshots and commands take turns
        self._ready = asyncio.Event()
        self._reconcile_wanted = asyncio.Event()
        self._last_activity = time.monotonic()
        self._not_found: dict[str, int] = {}
        self._held_symbols: set[str] = set()
        self._dirty_marks: set[str] = set()
        self._unlisten: Callable[[], None] | None = None
        self._intents: dict[str, Intent] = {}  # scratch of one batch: intents of orders seen first
        self._watchlist: set[str] = set()

    @property
    def holder_id(self) -> str:
        return f"{self.user_id}:{self.exchange}"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._main(), name=f"tracker:{self.holder_id}")]
        self._unlisten = self.prices.listen(self._on_tick)

    async def wait_ready(self, within_s: float = 10.0) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._ready.wait()
        return self._ready.is_set()

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        await cancel_all(self._tasks)
        self._tasks = []
        for symbol in list(self._held_symbols):
            await self.prices.release(self.exchange, symbol, self.holder_id)
        self._held_symbols.clear()
        self.health.state = "stopped"

    async def _main(self) -> None:
        # Subscribe first, then take the snapshot: an update that lands between the two is then seen by
        # one of them. A second snapshot after `settle_s` covers subscriptions that took a while to go live.
        self._tasks += [
            asyncio.create_task(self._stream(self.gateway.watch_orders, self.apply_orders), name="orders"),
            asyncio.create_task(
                self._stream(self.gateway.watch_positions, self.apply_positions), name="positions"
            ),
            asyncio.create_task(self._stream(self.gateway.watch_fills, self.apply_fills), name="fills"),
        ]
        await asyncio.sleep(0)
        delay = self.options.backoff_initial_s
        while True:
            try:
                self.hedged = await self.gateway.fetch_position_mode()
                await self.reconcile()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                await asyncio.sleep(self._jitter(delay))
                delay = min(delay * 2, self.options.backoff_max_s)
        self.health.state = "healthy"
        self._ready.set()
        self._tasks += [
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._mark_loop(), name="marks"),
        ]
        await asyncio.sleep(self.options.settle_s)
        self._reconcile_wanted.set()

    def _jitter(self, delay: float) -> float:
        return delay * (0.5 + random.random())

    def _fail(self, exc: BaseException) -> None:
        reason = exc.reason if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
        self.health.last_error = reason
        self.health.state = "error" if isinstance(exc, AuthenticationFailed) else "reconnecting"
        log.warning(
            "tracker %s: %s",
            self.holder_id,
            reason,
            extra={"user_id": self.user_id, "exchange": self.exchange},
        )

    async def _stream(
        self, watch: Callable[[], Awaitable[list[Any]]], apply: Callable[[list[Any]], Awaitable[None]]
    ) -> None:
        delay = self.options.backoff_initial_s
        while True:
            if cancel_requested():  # a library swallowed our cancel (Python 3.11): stop anyway
                raise asyncio.CancelledError
            try:
                batch = await watch()
            except asyncio.CancelledError:
                raise
            except StreamDisconnected as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                self.health.reconnects += 1
                metrics.reconnects.labels(exchange=self.exchange).inc()
                self._fail(exc)
                await asyncio.sleep(self._jitter(delay))
                delay = min(delay * 2, self.options.backoff_max_s)
                self._reconcile_wanted.set()  # updates during the gap are not replayed: snapshot
                continue
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                self._fail(exc)
                await asyncio.sleep(self._jitter(delay))
                delay = min(delay * 2, self.options.backoff_max_s)
                continue
            delay = self.options.backoff_initial_s
            self._last_activity = time.monotonic()
            self.health.last_event_at = datetime.now(UTC)
            if self.health.state != "healthy" and not self._reconcile_wanted.is_set():
                self.health.state = "healthy"
            if batch:
                try:
                    await apply(batch)
                except Exception as exc:
                    log.exception("tracker %s could not apply an update", self.holder_id)
                    self._fail(exc)
                    self._reconcile_wanted.set()

    async def _watchdog(self) -> None:
        """Reconcile after a reconnect, and poll over REST while the streams are silent."""
        while True:
            timeout = max(0.05, self.options.silent_reconcile_s - (time.monotonic() - self._last_activity))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._reconcile_wanted.wait()
            wanted = self._reconcile_wanted.is_set()
            if not wanted and time.monotonic() - self._last_activity < self.options.silent_reconcile_s:
                continue
            self._reconcile_wanted.clear()
            try:
                await self.reconcile()
                self._last_activity = time.monotonic()
                self.health.state = "healthy"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                self._fail(exc)
                self._reconcile_wanted.set()
                await asyncio.sleep(self._jitter(self.options.backoff_initial_s * 5))

    # -- the snapshot ------------------------------------------------------------------------------------
    async def _load_known(self) -> None:
        if not self.orders:
            for o in await self.store.orders.list_open(self.user_id, self.exchange):
                self.orders[o.order_id] = o
        if not self.positions:
            for p in await self.store.positions.list(self.user_id, self.exchange):
                self.positions[(p.symbol, p.side.value)] = p

    async def reconcile(self) -> int:
        """Make Redis match the exchange; returns how many corrections it made."""
        open_orders = await self.gateway.fetch_open_orders()
        positions = await self.gateway.fetch_positions()
        corrections = 0
        async with self._lock:
            await self._load_known()
            reported_ids = {o.order_id for o in open_orders}
            before = self.health.updates_applied
            await self._apply_orders_locked(open_orders)
            await self._apply_positions_locked(positions, snapshot=True)
            corrections += self.health.updates_applied - before
        # open orders we know that the exchange no longer lists: fetch their final state
        for order_id, known in list(self.orders.items()):
            if not known.status.is_active or order_id in reported_ids:
                continue
            try:
                final = await self.gateway.fetch_order(known.symbol, order_id=order_id)
            except OrderNotFound:
                final = None  # (any other error is an unknown outcome: raise, retry later, never guess)
            if final is None:
                misses = self._not_found.get(order_id, 0) + 1
                self._not_found[order_id] = misses
                if misses < NOT_FOUND_LIMIT:
                    continue
                final = known.model_copy(
                    update={"status": OrderStatus.CANCELLED, "updated_at": datetime.now(UTC)}
                )
                final = final.model_copy(update={"metadata": {**known.metadata, "lost": True}})
            self._not_found.pop(order_id, None)
            before = self.health.updates_applied
            await self.apply_orders([final])
            corrections += self.health.updates_applied - before
        self.health.corrections += corrections
        if corrections:
            metrics.corrections.labels(exchange=self.exchange).inc(corrections)
        self.health.last_reconcile_at = datetime.now(UTC)
        await self._refresh_symbols()
        return corrections

    # -- applying updates ------------------------------------------------------------------------------
    async def apply_orders(self, orders: list[Order]) -> None:
        async with self._lock:
            await self._apply_orders_locked(orders)

    async def _apply_orders_locked(self, orders: list[Order]) -> None:
        if not orders:
            return
        unknown = [o for o in orders if o.order_id not in self.orders]
        if unknown:
            await self._fetch_unknown(unknown)
        merged: list[tuple[Order, Order | None]] = []
        for incoming in orders:
            known = self.orders.get(incoming.order_id)
            intent = self._intents.get(incoming.client_order_id or "") if known is None else None
            merged.append((merge_order(known, incoming, intent), known))
        results = await self.store.writer.apply_many([self.store.orders.write_for(m) for m, _ in merged])
        for (order, previous), res in zip(merged, results, strict=True):
            if res.code == -1:
                continue
            self.orders[order.order_id] = order
            if res.applied:
                self.health.updates_applied += 1
                for listener in list(self.order_listeners):
                    await _call(listener, order, previous)
        # finished orders need not stay in memory
        for order, _ in merged:
            if order.status.is_terminal and len(self.orders) > 5000:
                self.orders.pop(order.order_id, None)
        self._intents.clear()

    async def _fetch_unknown(self, unknown: list[Order]) -> None:
        """Read stored records and intents of orders not in memory, in one round trip."""
        keys = self.store.keys
        pipe = self.store.redis.pipeline(transaction=False)
        for o in unknown:
            pipe.hgetall(keys.order(self.user_id, self.exchange, o.order_id))
            pipe.hgetall(keys.client_order(self.user_id, self.exchange, o.client_order_id or "-"))
        replies = await pipe.execute()
        self._intents = {}
        for n, o in enumerate(unknown):
            raw, raw_intent = replies[2 * n], replies[2 * n + 1]
            if raw:
                self.orders[o.order_id] = ORDER_CODEC.decode(
                    keys.order(self.user_id, self.exchange, o.order_id), raw
                )
            elif o.client_order_id and raw_intent:
                intent = self.store.intents.parse({k.decode(): v.decode() for k, v in raw_intent.items()})
                if intent is not None:
                    self._intents[o.client_order_id] = intent

    async def apply_positions(self, positions: list[Position]) -> None:
        async with self._lock:
            await self._apply_positions_locked(positions, snapshot=False)

    async def _apply_positions_locked(self, positions: list[Position], snapshot: bool) -> None:
        now = datetime.now(UTC)
        updates: dict[tuple[str, str], Position] = {}
        for incoming in positions:
            key = (incoming.symbol, incoming.side.value)
            known = updates.get(key) or self.positions.get(key)
            if known is None and incoming.size == 0:
                continue
            valued = incoming
            if incoming.current_price is None:
                tick = self.prices.last(self.exchange, incoming.symbol)
                if tick is not None:
                    valued = marked(incoming, tick.last, incoming.updated_at)
            updates[key] = merge_position(known, valued, now)
            other = flipped_side(incoming, self.positions.values(), self.hedged)
            if other is not None and (other.symbol, other.side.value) not in updates:
                updates[(other.symbol, other.side.value)] = close_position(other, now)
        if snapshot:
            for gone in positions_gone(self.positions.values(), positions):
                key = (gone.symbol, gone.side.value)
                if key not in updates:
                    updates[key] = close_position(gone, now)
        await self._write_positions(list(updates.values()))

    async def _write_positions(self, positions: list[Position]) -> None:
        if not positions:
            return
        results = await self.store.writer.apply_many([self.store.positions.write_for(p) for p in positions])
        for p, res in zip(positions, results, strict=True):
            if res.code == -1:
                continue
            self.positions[(p.symbol, p.side.value)] = p
            if res.applied:
                self.health.updates_applied += 1
                for listener in list(self.position_listeners):
                    await _call(listener, p)
        await self._refresh_symbols()

    async def annotate_position(self, position: Position) -> None:
        """Write our own fields (SL/TP prices, grid level, metadata) onto the tracked position."""
        async with self._lock:
            key = (position.symbol, position.side.value)
            known = self.positions.get(key)
            if known is not None:
                position = known.model_copy(
                    update={
                        "stop_loss_price": position.stop_loss_price,
                        "take_profit_price": position.take_profit_price,
                        "grid_level": position.grid_level,
                        "metadata": position.metadata,
                    }
                )
            await self._write_positions([position])

    async def apply_fills(self, fills: list[FillReport]) -> None:
        for f in fills:
            body = {
                **envelope(self.user_id, self.exchange),
                "trade_id": f.trade_id,
                "order_id": f.order_id,
                "client_order_id": f.client_order_id,
                "symbol": f.symbol,
                "side": f.side.value,
                "price": str(f.price),
                "size": str(f.size),
                "fee": str(f.fee),
                "fee_currency": f.fee_currency,
                "liquidity": f.liquidity,
                "position_side": f.position_side.value if f.position_side else None,
                "filled_at": f.timestamp.isoformat(),
            }
            seq = await self.store.writer.emit_once(
                self.user_id,
                "",  # fills go to the user's stream (history), not to the order channel
                "fill.created",
                body,
                self.store.keys.seen_fills(self.user_id, self.exchange),
                f.trade_id,
            )
            if seq:
                self.health.updates_applied += 1
                metrics.observe_since(metrics.fill_to_event, f.timestamp)

    # -- prices and symbols -----------------------------------------------------------------------------
    def symbols_in_play(self) -> set[str]:
        out = {p.symbol for p in self.positions.values() if p.is_open}
        out |= {o.symbol for o in self.orders.values() if o.status.is_active}
        return out

    async def _refresh_symbols(self, extra: set[str] | None = None) -> None:
        wanted = self.symbols_in_play() | (extra or set()) | self._watchlist
        for s in wanted - self._held_symbols:
            await self.prices.hold(self.exchange, s, self.holder_id)
        for s in self._held_symbols - wanted:
            await self.prices.release(self.exchange, s, self.holder_id)
        self._held_symbols = wanted

    async def set_watchlist(self, symbols: set[str]) -> None:
        self._watchlist = set(symbols)
        await self._refresh_symbols()

    def _on_tick(self, tick: PriceTick) -> None:
        if tick.exchange == self.exchange and any(
            p.symbol == tick.symbol and p.is_open for p in self.positions.values()
        ):
            self._dirty_marks.add(tick.symbol)

    async def _mark_loop(self) -> None:
        """Re-value open positions at the latest price, at most once per mark interval."""
        while True:
            await asyncio.sleep(self.options.mark_interval_s)
            if not self._dirty_marks:
                continue
            symbols, self._dirty_marks = self._dirty_marks, set()
            async with self._lock:
                now = datetime.now(UTC)
                updated = []
                for p in self.positions.values():
                    tick = self.prices.last(self.exchange, p.symbol)
                    if (
                        p.symbol in symbols
                        and p.is_open
                        and tick is not None
                        and tick.last != p.current_price
                    ):
                        updated.append(marked(p, tick.last, now))
                with contextlib.suppress(Exception):
                    await self._write_positions(updated)

    def stored_position(self, symbol: str, side: str) -> Position | None:
        return self.positions.get((symbol, side))

    def mark_price(self, symbol: str) -> Decimal | None:
        tick = self.prices.last(self.exchange, symbol)
        return tick.last if tick else None


async def _call(fn: Callable[..., Any], *args: Any) -> None:
    try:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        log.exception("tracker listener failed")


__all__ = ["POSITION_CODEC", "TrackerHealth", "TrackerOptions", "UserTracker"]
