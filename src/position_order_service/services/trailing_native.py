"""Native trailing stops: the exchange's own trailing order (OKX move_order_stop, Binance TRAILING_STOP_MARKET).

Intent before action (DESIGN invariant 4, issue 11 item 6): the stop is recorded in state `placing`, with the
client order id its exchange order will carry, before that order is sent. A failure after placement then
leaves no orphan (the record names the order; the account's stream or a lookup finds it and the stop goes
`active`), and the bot's retry meets the recorded stop (409) instead of placing a second one. A stop left
`placing` (an unknown outcome, a crash) is resolved by looking its order up; it fails only when the exchange
has no such order past its visibility lag. A native stop then follows its exchange order's reports.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ..domain.enums import OrderStatus, OrderType
from ..domain.models import Order
from ..domain.trailing import StopMode, StopState, TrailingStop
from ..exchanges.base import ExchangeUnavailable, GatewayError, OrderNotFound
from .commands import CommandError, Conflict, NotFound, OutcomeUnknown
from .orders import OrderCommand

if TYPE_CHECKING:
    from .trailing import TrailingStopEngine

log = logging.getLogger(__name__)
UNANSWERED_GRACE_S = 5.0


class NativeStops:
    def __init__(self, engine: TrailingStopEngine, visibility_lag_s: float) -> None:
        self.engine = engine
        self.visibility_lag_s = visibility_lag_s
        self._by_order: dict[str, str] = {}  # exchange order id -> stop id
        self._by_client: dict[str, str] = {}  # client order id -> stop id
        self._placing: set[str] = set()  # stops this process is placing right now
        self._resolving: set[str] = set()

    def index(self, stop: TrailingStop) -> None:
        if stop.mode is not StopMode.NATIVE:
            return
        if stop.close_order_id:
            self._by_order[stop.close_order_id] = stop.id
        if stop.close_client_order_id:
            self._by_client[stop.close_client_order_id] = stop.id

    def unindex(self, stop: TrailingStop) -> None:
        if stop.close_order_id and self._by_order.get(stop.close_order_id) == stop.id:
            del self._by_order[stop.close_order_id]
        if stop.close_client_order_id and self._by_client.get(stop.close_client_order_id) == stop.id:
            del self._by_client[stop.close_client_order_id]

    # -- creating ---------------------------------------------------------------------------------------
    async def create(self, stop: TrailingStop, expected: int | None) -> TrailingStop:
        engine = self.engine
        live, hedged = await engine.executor.live_size(stop)
        size = stop.size
        if size is None:
            if live <= 0:
                raise CommandError("size is required when there is no open position to protect", "size")
            size = live
        cid = f"tn{stop.id}"[:32]  # letters and digits, as both venues want
        placing = stop.model_copy(
            update={"state": StopState.PLACING, "size": size, "close_client_order_id": cid}
        )
        if not await engine.store.trailing_stops.save(placing, expected, "trailing_stop.created"):
            raise Conflict("the trailing stop changed while being created; try again", "symbol")
        engine._remember(placing)
        self._placing.add(placing.id)
        try:
            order = await engine.orders.place(
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
                    client_order_id=cid,
                    metadata={"purpose": "trailing_stop", "trailing_stop_id": stop.id},
                )
            )
        except OutcomeUnknown:
            raise  # stays `placing`: its order is looked up (resync) and the stop follows what is found
        except (GatewayError, CommandError) as exc:
            reason = exc.reason if isinstance(exc, GatewayError) else exc.message
            current = engine.stops.get(placing.id, placing)
            if current.state is StopState.PLACING:
                await engine.transition(current, "trailing_stop.failed", state=StopState.FAILED, error=reason)
            raise
        finally:
            self._placing.discard(placing.id)
        return await self._placed(placing.id, order) or engine.stops.get(placing.id, placing)

    async def _placed(self, stop_id: str, order: Order) -> TrailingStop | None:
        """Its exchange order exists: the stop is active and follows it (the exchange keeps the extreme)."""
        current = self.engine.stops.get(stop_id)
        if current is None or current.state is not StopState.PLACING:
            return current
        done = await self.engine.transition(
            current, "trailing_stop.updated", state=StopState.ACTIVE, close_order_id=order.order_id
        )
        if done is not None and not order.status.is_active:
            await self.on_order(order)  # it finished before we knew it existed
        return done

    def resolve_later(self, stop: TrailingStop) -> None:
        if stop.id not in self._placing and stop.id not in self._resolving:
            self._resolving.add(stop.id)
            self.engine._job(f"resolve:{stop.id}", lambda: self._resolve(stop.id))

    async def _resolve(self, stop_id: str) -> None:
        """A stop left `placing`: does its exchange order exist?"""
        try:
            stop = self.engine.stops.get(stop_id)
            if stop is None or stop.state is not StopState.PLACING or stop.close_client_order_id is None:
                return
            user, exchange, cid = stop.user_id, stop.exchange.value, stop.close_client_order_id
            found = self.engine.accounts.order_by_client_id(user, exchange, cid)
            answered = True
            if found is None:
                gateway = await self.engine.gateways.for_user(user, exchange)
                try:
                    found = await gateway.fetch_order(stop.symbol, client_order_id=cid)
                except ExchangeUnavailable:
                    answered = False
                except OrderNotFound:
                    found = None
            if found is not None:
                await self._placed(stop_id, found)
                return
            age = time.time() - stop.created_at.timestamp()
            if answered and age > self.visibility_lag_s + UNANSWERED_GRACE_S:
                await self.engine.transition(
                    stop,
                    "trailing_stop.failed",
                    state=StopState.FAILED,
                    error="the exchange has no such order",
                )
        finally:
            self._resolving.discard(stop_id)

    # -- following the exchange order -------------------------------------------------------------------
    async def on_order(self, order: Order) -> None:
        engine = self.engine
        sid = self._by_order.get(order.order_id) or self._by_client.get(order.client_order_id or "")
        stop = engine.stops.get(sid or "")
        if stop is None:
            return
        if stop.state is StopState.PLACING:
            stop = await self._placed(stop.id, order) if order.status.is_active else stop
            if stop is None or (stop.state is StopState.PLACING and order.status.is_active):
                return
        if stop.state is StopState.PLACING:  # finished before it was ever active
            stop = (
                await engine.transition(stop, None, state=StopState.ACTIVE, close_order_id=order.order_id)
                or stop
            )
        if order.status is OrderStatus.FILLED:
            await engine.executor.executed(stop, order)
        elif order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            await engine.transition(
                stop, "trailing_stop.cancelled", state=StopState.CANCELLED, error="exchange order cancelled"
            )
        elif order.status is OrderStatus.REJECTED:
            await engine.transition(
                stop, "trailing_stop.failed", state=StopState.FAILED, error="order rejected"
            )

    async def cancel_order(self, stop: TrailingStop) -> None:
        if stop.close_order_id:
            with contextlib.suppress(NotFound, Conflict, OrderNotFound):
                await self.engine.orders.cancel_order(
                    stop.user_id, stop.exchange.value, stop.close_order_id, stop.symbol, "trailing_stop"
                )
