"""Executing a fired trailing stop: its close order, exactly once, whatever fails on the way.

The close order's client id is fixed when the trigger is recorded, so a retry (or an engine restarted after a
crash, or another instance whose lease ran out) first asks whether that order exists (the account's view, then
the exchange) and sends it only if it does not. Transient failures (network, Redis) are retried with backoff
until the order is placed or the exchange refuses it. The order is sized from the account's view of the
position once the account has reconciled (never from a state that may predate a reconnect), else from the
exchange's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from .. import metrics
from ..aio import Backoff
from ..domain.enums import OrderType
from ..domain.models import Order
from ..domain.symbols import native_symbol
from ..domain.trailing import StopMode, StopState, TrailingStop
from ..exchanges.base import ExchangeUnavailable, GatewayError
from ..store.intents import IntentRepository
from ..store.leases import StaleWrite
from .commands import CommandError, OutcomeUnknown
from .orders import OrderCommand, OrderManager

if TYPE_CHECKING:
    from .trailing import TrailingStopEngine

log = logging.getLogger(__name__)

RECONCILED_WAIT_S = 5.0  # a fired stop waits this long for its account's snapshot, then asks the exchange
FILL_WAIT_S = 2.0  # an executed stop records what its close order filled: the account shows it within this
TRANSIENT = (ExchangeUnavailable, OutcomeUnknown, TimeoutError, ConnectionError, OSError)


class StopExecutor:
    def __init__(self, engine: TrailingStopEngine) -> None:
        self.engine = engine
        self._running: set[str] = set()

    def executing(self, stop_id: str) -> bool:
        return stop_id in self._running

    async def live_size(self, stop: TrailingStop) -> tuple[Decimal, bool]:
        """The live position size (the order is capped at it) and whether the account is in hedge mode: from
        the account once it has reconciled, else from the exchange."""
        user, exchange = stop.user_id, stop.exchange.value
        accounts = self.engine.accounts
        if accounts.reconciled(user, exchange) or await accounts.wait_reconciled(
            user, exchange, RECONCILED_WAIT_S
        ):
            p = self.engine.accounts.position(user, exchange, stop.symbol, stop.side.value)
            return (p.size if p is not None else Decimal(0)), bool(
                self.engine.accounts.hedged(user, exchange)
            )
        gateway = await self.engine.gateways.for_user(user, exchange)
        hedged = await gateway.fetch_position_mode()
        for p in await gateway.fetch_positions([stop.symbol]):
            if p.side is stop.side and p.size > 0:
                return p.size, hedged
        return Decimal(0), hedged

    def close_command(self, stop: TrailingStop, qty: Decimal, hedged: bool) -> OrderCommand:
        """The reduce-only market order that closes a fired stop's position (its intent is written with the
        trigger: `intent_fields`)."""
        assert stop.close_client_order_id is not None
        return OrderCommand(
            user_id=stop.user_id,
            exchange=stop.exchange.value,
            symbol=stop.symbol,
            side=stop.side.exit_order_side,
            order_type=OrderType.MARKET,
            quantity=qty,
            reduce_only=True,
            position_side=stop.side if hedged else None,
            client_order_id=stop.close_client_order_id,
            metadata={"purpose": "trailing_stop", "trailing_stop_id": stop.id},
        )

    def intent_fields(self, stop: TrailingStop) -> dict[str, str]:
        """The intent record of the stop's close order, as OrderManager.place would write it (the trigger
        script writes it with the trigger, in the same atomic step)."""
        assert stop.close_client_order_id is not None
        cmd = self.close_command(stop, Decimal(1), False)
        intent, summary = OrderManager.intent_of(
            cmd, native_symbol(stop.exchange.value, stop.symbol), stop.close_client_order_id
        )
        return IntentRepository.fields(intent, summary)

    async def execute(
        self, stop: TrailingStop, seen: float | None = None, intent_recorded: bool = False
    ) -> None:
        """Send the close order of a triggered stop, exactly once; transient failures are retried.

        `seen` (the tick's time) and `intent_recorded` are given by the instance that just recorded the trigger
        (with its close order's intent, in one script): it sends at once. Without them (a retry, a restart,
        another instance) it first asks whether the order left already."""
        if stop.id in self._running:
            return
        self._running.add(stop.id)
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._execute_once(stop, seen, intent_recorded)
                    return
                except TRANSIENT as exc:
                    metrics.trigger_retries.labels(kind="stop_execute").inc()
                    log.warning("trailing stop %s: close order not placed yet (%s): retrying", stop.id, exc,
                                extra={"user_id": stop.user_id})  # fmt: skip
                except StaleWrite:  # the account moved: its new worker finishes it, asking first
                    return
                except Exception as exc:  # e.g. Redis away: the stop stays `triggered`; try again
                    metrics.trigger_retries.labels(kind="stop_execute").inc()
                    log.warning("trailing stop %s could not be executed yet: %s", stop.id, exc,
                                extra={"user_id": stop.user_id})  # fmt: skip
                seen, intent_recorded = (
                    None,
                    False,
                )  # from now on, ask whether the order left before sending it
                await backoff.sleep()
                with contextlib.suppress(Exception):
                    fresh = await self.engine.store.trailing_stops.get(*stop.key_parts())
                    if fresh is None or fresh.id != stop.id or fresh.state is not StopState.TRIGGERED:
                        return
                    stop = fresh
        finally:
            self._running.discard(stop.id)

    async def _execute_once(self, stop: TrailingStop, seen: float | None, intent_recorded: bool) -> None:
        assert stop.close_client_order_id is not None
        now_ms = int(time.time() * 1000)
        # the worker holding the account's lease takes a trigger over at once: the previous one cannot write
        # any more (fencing), and the fixed client id is asked about before any send
        leased = self.engine.owns is not None and self.engine.owns(stop.user_id, stop.exchange.value)
        if stop.owner != self.engine.instance_id and (stop.lease_until_ms or 0) > now_ms and not leased:
            return  # its owner is (still) on it
        if stop.owner != self.engine.instance_id:
            taken = await self.engine.transition(
                stop, None, owner=self.engine.instance_id, lease_until_ms=now_ms + self.engine.lease_ms
            )
            if taken is None:
                return
            stop = taken
        user, exchange = stop.user_id, stop.exchange.value
        cid = stop.close_client_order_id
        assert cid is not None
        if seen is None:
            # a trigger recorded earlier (a crash, another instance, a retry): the order may have left already
            existing = self.engine.accounts.order_by_client_id(user, exchange, cid)
            if existing is None:
                gateway = await self.engine.gateways.for_user(user, exchange)
                existing = await gateway.fetch_order(stop.symbol, client_order_id=cid)
            if existing is not None:  # sent before: do not send again
                await self.executed(stop, existing)
                return
            await self.engine.store.intents.delete(
                user, exchange, cid
            )  # a stale intent of a send that never left
        # else: this process won the trigger just now, and the client id is new: nothing can exist yet
        size, hedged = await self.live_size(stop)
        qty = size if stop.size is None else min(stop.size, size)
        if qty <= 0:
            await self.engine.transition(
                stop, "trailing_stop.failed", state=StopState.FAILED, error="no open position"
            )
            return

        def before_send() -> None:
            if seen is not None:
                elapsed = time.perf_counter() - seen
                self.engine.tick_to_send_s.append(elapsed)
                if len(self.engine.tick_to_send_s) > 10_000:
                    del self.engine.tick_to_send_s[:5_000]
                metrics.tick_to_trigger.observe(elapsed)
            if self.engine.on_sent is not None:
                self.engine.on_sent(stop)

        try:
            order = await self.engine.orders.place(
                self.close_command(stop, qty, hedged),
                intent_recorded=intent_recorded and seen is not None,
                before_send=before_send,
            )
        except TRANSIENT:
            raise
        except (GatewayError, CommandError) as exc:  # the exchange refused: a final answer
            reason = exc.reason if isinstance(exc, GatewayError) else exc.message
            await self.engine.transition(stop, "trailing_stop.failed", state=StopState.FAILED, error=reason)
            return
        await self.executed(stop, order)

    async def executed(self, stop: TrailingStop, order: Order) -> None:
        """The close order is placed: recorded with what it filled (the account shows a market order's fill
        within moments; a lookup stands in when it does not)."""
        order = await self._filled(stop, order)
        await self.engine.transition(
            stop,
            "trailing_stop.executed",
            state=StopState.EXECUTED,
            close_order_id=order.order_id,
            filled_size=order.filled_qty,
            owner=None,
            lease_until_ms=None,
        )

    async def _filled(self, stop: TrailingStop, order: Order) -> Order:
        if order.status.is_terminal or stop.mode is StopMode.NATIVE:
            return order
        user, exchange = stop.user_id, stop.exchange.value
        deadline = time.monotonic() + FILL_WAIT_S
        while time.monotonic() < deadline:
            view = self.engine.accounts.order(user, exchange, order.order_id)
            if view is not None and view.status.is_terminal:
                return view
            if not self.engine.accounts.tracked(user, exchange):
                break
            await asyncio.sleep(0.02)
        with contextlib.suppress(GatewayError):
            gateway = await self.engine.gateways.for_user(user, exchange)
            found = await gateway.fetch_order(stop.symbol, order_id=order.order_id)
            if found is not None:
                return await self.engine.orders.record_report(user, exchange, found)
        return order
