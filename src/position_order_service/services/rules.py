"""Conditional cancellation (SPEC section 6): when order A reaches a condition, cancel B, C, ...

Rules are state machines in Redis. The transition active -> triggered is a compare-and-set, so one instance
fires a rule once; the cancels that follow are safe to repeat (an order already gone is recorded as such), so a
rule left `triggered` by a crash is simply finished by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..aio import cancel_all, cancel_requested
from ..domain.market import PriceTick
from ..domain.models import Order
from ..domain.rules import Condition, ConditionalRule, RuleState, order_meets, price_meets
from ..domain.symbols import native_symbol
from ..exchanges.base import GatewayError
from ..store import Store
from .commands import CommandError, Conflict, NotFound
from .orders import OrderManager
from .prices import PriceHub
from .tracking import TrackingService

log = logging.getLogger(__name__)


class ConditionalRuleEngine:
    def __init__(
        self,
        store: Store,
        tracking: TrackingService,
        orders: OrderManager,
        prices: PriceHub,
        *,
        resync_interval_s: float = 5.0,
        instance_id: str = "",
    ) -> None:
        self.store = store
        self.tracking = tracking
        self.orders = orders
        self.prices = prices
        self.resync_interval_s = resync_interval_s
        self.holder = f"rules:{instance_id or id(self)}"
        self.rules: dict[str, ConditionalRule] = {}
        self._by_trigger: dict[tuple[str, str, str], set[str]] = {}
        self._by_symbol: dict[tuple[str, str], set[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executing: set[str] = set()
        self._loop: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unlisten = self.prices.listen(self.on_tick)
        self.tracking.order_listeners.append(self.on_order)
        await self.resync()
        self._loop = asyncio.create_task(self._resync_loop(), name="rules-resync")

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        with contextlib.suppress(ValueError):
            self.tracking.order_listeners.remove(self.on_order)
        await cancel_all([self._loop, *self._tasks])
        for exchange, symbol in list(self._by_symbol):
            await self.prices.release(exchange, symbol, self.holder)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval_s)
            try:
                await self.resync()
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise
                log.exception("rule resync failed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- index -----------------------------------------------------------------------------------------
    async def _index(self, rule: ConditionalRule) -> None:
        self._unindex(rule.id)
        self.rules[rule.id] = rule
        if rule.condition is Condition.PRICE_REACHED:
            assert rule.symbol is not None
            key = (rule.exchange.value, rule.symbol)
            if key not in self._by_symbol:
                await self.prices.hold(key[0], key[1], self.holder)
            self._by_symbol.setdefault(key, set()).add(rule.id)
        else:
            self._by_trigger.setdefault(
                (rule.user_id, rule.exchange.value, rule.trigger_order_id), set()
            ).add(rule.id)

    def _unindex(self, rule_id: str) -> None:
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return
        for trigger_key, ids in list(self._by_trigger.items()):
            ids.discard(rule_id)
            if not ids:
                del self._by_trigger[trigger_key]
        for symbol_key, ids in list(self._by_symbol.items()):
            ids.discard(rule_id)
            if not ids:
                del self._by_symbol[symbol_key]

    async def resync(self) -> None:
        live = {r.id: r for r in await self.store.rules.list_live()}
        for rid in list(self.rules):
            if rid not in live:
                self._unindex(rid)
        for rule in live.values():
            if rule.state is RuleState.TRIGGERED:
                if rule.id not in self._executing:  # cut off mid-way: finish it (cancels are idempotent)
                    self.rules[rule.id] = rule
                    self._spawn(self._execute(rule))
                continue
            known = self.rules.get(rule.id)
            if known is not None and known.version >= rule.version:
                continue
            else:
                await self._index(rule)
                await self._check_stored_trigger(rule)

    # -- reacting -------------------------------------------------------------------------------------
    async def on_order(self, order: Order, previous: Order | None) -> None:
        ids = self._by_trigger.get((order.user_id, order.exchange.value, order.order_id), set())
        for rid in list(ids):
            rule = self.rules.get(rid)
            if rule is not None and order_meets(rule.condition, order):
                self._spawn(self._fire(rule, f"order {order.order_id} {order.status.value}"))

    def on_tick(self, tick: PriceTick) -> None:
        for rid in list(self._by_symbol.get((tick.exchange, tick.symbol), ())):
            rule = self.rules.get(rid)
            if rule is not None and rule.state is RuleState.ACTIVE and price_meets(rule, tick.last):
                self._unindex(rid)  # fire once from here; the CAS makes it once across instances
                self.rules[rid] = rule
                self._spawn(self._fire(rule, f"price {tick.last}"))

    async def _check_stored_trigger(self, rule: ConditionalRule) -> None:
        """The trigger order may have reached the condition already (before the rule, or while we were away)."""
        if rule.condition is Condition.PRICE_REACHED:
            return
        order = await self.store.orders.get(rule.user_id, rule.exchange.value, rule.trigger_order_id)
        if order is not None and order_meets(rule.condition, order):
            self._spawn(self._fire(rule, f"order {order.order_id} {order.status.value}"))

    async def _save(self, rule: ConditionalRule, event: str | None, **changes: Any) -> ConditionalRule | None:
        new = rule.model_copy(
            update={**changes, "version": rule.version + 1, "updated_at": datetime.now(UTC)}
        )
        new = ConditionalRule.model_validate(new.model_dump())
        if await self.store.rules.save(new, rule.version, event):
            if new.state.is_final:
                self._unindex(new.id)
            else:
                self.rules[new.id] = new
            return new
        return None

    async def _fire(self, rule: ConditionalRule, because: str) -> None:
        current = self.rules.get(rule.id, rule)
        if current.state is not RuleState.ACTIVE:
            return
        triggered = await self._save(
            current, "conditional.triggered", state=RuleState.TRIGGERED, triggered_by=because
        )
        if triggered is None:
            return  # another instance fired it
        await self._execute(triggered)

    async def _execute(self, rule: ConditionalRule) -> None:
        if rule.id in self._executing:
            return
        self._executing.add(rule.id)
        try:
            await self._execute_once(rule)
        except Exception:
            log.exception("rule %s could not be finished yet", rule.id, extra={"user_id": rule.user_id})
        finally:
            self._executing.discard(rule.id)

    async def _execute_once(self, rule: ConditionalRule) -> None:
        cancelled, gone, failed = (
            list(rule.cancelled_ids),
            list(rule.already_closed_ids),
            list(rule.failed_ids),
        )
        errors = dict(rule.errors)
        done = set(cancelled) | set(gone)
        for oid in rule.cancel_order_ids:
            if oid in done:
                continue
            try:
                await self.orders.cancel_order(rule.user_id, rule.exchange.value, oid)
                cancelled.append(oid)
            except (Conflict, NotFound):
                gone.append(oid)  # already filled, cancelled or unknown: nothing left to cancel
            except (GatewayError, CommandError, Exception) as exc:
                reason = exc.reason if isinstance(exc, GatewayError) else str(exc)
                failed.append(oid)
                errors[oid] = reason[:200]
        failed = [f for f in failed if f not in cancelled and f not in gone]
        state = RuleState.FAILED if failed else RuleState.EXECUTED
        event = "conditional.failed" if failed else "conditional.executed"
        await self._save(
            rule,
            event,
            state=state,
            cancelled_ids=cancelled,
            already_closed_ids=gone,
            failed_ids=failed,
            errors=errors,
        )

    # -- commands -----------------------------------------------------------------------------------------
    async def create(self, rule: ConditionalRule, oco: bool = False) -> list[ConditionalRule]:
        """Create a rule (and, for an OCO, its mirror: each order cancels the other when it fills)."""
        if rule.symbol is not None:
            rule = rule.model_copy(update={"symbol": native_symbol(rule.exchange.value, rule.symbol)})
        rules = [rule]
        if oco:
            if len(rule.cancel_order_ids) != 1 or rule.condition is Condition.PRICE_REACHED:
                raise CommandError(
                    "an OCO pairs exactly two orders with an order condition", "cancel_order_ids"
                )
            mirror = rule.model_copy(
                update={
                    "id": f"{rule.id}-oco",
                    "trigger_order_id": rule.cancel_order_ids[0],
                    "cancel_order_ids": [rule.trigger_order_id],
                    "pair_rule_id": rule.id,
                }
            )
            rules = [rule.model_copy(update={"pair_rule_id": mirror.id}), mirror]
        out = []
        for draft in rules:
            r = draft.model_copy(update={"version": 1})
            if not await self.store.rules.save(r, None, "conditional.created"):
                raise Conflict(f"a rule with id {r.id} exists", "rule_id")
            await self._index(r)
            out.append(r)
        for r in out:
            await self._check_stored_trigger(r)
        return out

    async def delete(self, user_id: str, rule_id: str) -> ConditionalRule:
        rule = await self.store.rules.get(user_id, rule_id)
        if rule is None or rule.state is RuleState.DELETED:
            raise NotFound(f"no conditional rule {rule_id!r} for user {user_id!r}")
        if rule.state is not RuleState.ACTIVE:
            raise Conflict(f"the rule already {rule.state.value}", "rule_id")
        deleted = await self._save(rule, "conditional.deleted", state=RuleState.DELETED)
        if deleted is None:
            raise Conflict("the rule changed state (it may have fired)", "rule_id")
        return deleted
