"""Conditional cancellation (SPEC section 6): when order A reaches a condition, cancel B, C, ...

Rules are state machines in Redis. The transition active -> triggered is a compare-and-set, so one instance
fires a rule once; the cancels that follow are safe to repeat (an order already gone is recorded as such), so a
rule left `triggered` by a crash is simply finished by the next start.

Nothing is lost (issue 11): a price-reached rule that fired stays `firing` until its trigger is recorded (a
failed write is retried); a cancel that fails for a transient reason (network, timeout, 5xx, rate limit) is
retried with backoff until the order is gone, is known filled, or `cancel_deadline_s` has passed since the
trigger; only then is the rule failed, naming each order's outcome. The engine hears order changes on the bus
and prices from the PriceHub, in its own tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import metrics
from ..aio import Backoff
from ..bus import Bus
from ..domain.market import PriceTick
from ..domain.messages import OrderChanged
from ..domain.rules import Condition, ConditionalRule, RuleState, order_meets, price_meets
from ..domain.symbols import native_symbol
from ..exchanges.base import ExchangeUnavailable, GatewayError
from ..store import Store
from ..store.leases import StaleWrite
from ..supervisor import Supervisor, run_jobs
from .account.ports import AccountView
from .commands import CommandError, Conflict, NotFound, OutcomeUnknown
from .orders import OrderManager
from .prices import PriceHub

log = logging.getLogger(__name__)
TRANSIENT = (ExchangeUnavailable, OutcomeUnknown, TimeoutError, ConnectionError, OSError)


class ConditionalRuleEngine:
    def __init__(
        self,
        store: Store,
        accounts: AccountView,
        orders: OrderManager,
        prices: PriceHub,
        bus: Bus,
        supervisor: Supervisor,
        *,
        resync_interval_s: float = 5.0,
        cancel_deadline_s: float = 120.0,
        instance_id: str = "",
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.orders = orders
        self.prices = prices
        self.bus = bus
        self.supervisor = supervisor.scope("rules")
        self.resync_interval_s = resync_interval_s
        self.cancel_deadline_s = cancel_deadline_s
        self.holder = f"rules:{instance_id or id(self)}"
        self.rules: dict[str, ConditionalRule] = {}
        self.firing: dict[str, str] = {}  # rule id -> what fired it, until the trigger is recorded
        self._by_trigger: dict[tuple[str, str, str], set[str]] = {}
        self._by_symbol: dict[tuple[str, str], set[str]] = {}
        self._executing: set[str] = set()
        self._unlisten: Callable[[], None] | None = None
        # scale-out (issue 14): whether this process evaluates an account's rules (its worker holds the lease);
        # None = every rule (one process)
        self.owns: Callable[[str, str], bool] | None = None

    def mine(self, rule: ConditionalRule) -> bool:
        return self.owns is None or self.owns(rule.user_id, rule.exchange.value)

    async def start(self) -> None:
        self._unlisten = self.prices.listen(self.on_tick)
        self.bus.subscribe("rules-orders", self._on_order_changed, OrderChanged)
        await self.resync()
        self.supervisor.every("resync", self.resync_interval_s, self.resync)

    async def stop(self) -> None:
        if self._unlisten:
            self._unlisten()
        self.bus.unsubscribe("rules-orders")
        await self.supervisor.stop()
        for exchange, symbol in list(self._by_symbol):
            self.prices.release(exchange, symbol, self.holder)

    async def wait_idle(self) -> None:
        while jobs := [j for j in self.supervisor.jobs if not j.kind.endswith("resync")]:
            await run_jobs(jobs)

    def _job(self, name: str, fn: Callable[[], Any]) -> None:
        self.supervisor.spawn(name, fn, kind=name.split(":", 1)[0], restart=False)

    # -- index -----------------------------------------------------------------------------------------
    def _index(self, rule: ConditionalRule) -> None:
        self._unindex(rule.id)
        self.rules[rule.id] = rule
        if rule.condition is Condition.PRICE_REACHED:
            assert rule.symbol is not None
            key = (rule.exchange.value, rule.symbol)
            if key not in self._by_symbol:
                self.prices.hold(key[0], key[1], self.holder)
            self._by_symbol.setdefault(key, set()).add(rule.id)
        else:
            self._by_trigger.setdefault(
                (rule.user_id, rule.exchange.value, rule.trigger_order_id), set()
            ).add(rule.id)

    def _unindex(self, rule_id: str) -> None:
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return
        if rule.condition is Condition.PRICE_REACHED and rule.symbol is not None:
            key = (rule.exchange.value, rule.symbol)
            ids = self._by_symbol.get(key)
            if ids is not None:
                ids.discard(rule_id)
                if not ids:  # no rule watches this price any more: let its feed go
                    del self._by_symbol[key]
                    self.prices.release(key[0], key[1], self.holder)
        else:
            tkey = (rule.user_id, rule.exchange.value, rule.trigger_order_id)
            tids = self._by_trigger.get(tkey)
            if tids is not None:
                tids.discard(rule_id)
                if not tids:
                    del self._by_trigger[tkey]

    async def resync(self) -> None:
        live = {r.id: r for r in await self.store.rules.list_live() if self.mine(r)}
        for rid in list(self.rules):
            if rid not in live and rid not in self.firing:
                self._unindex(rid)
        for rule in live.values():
            if rule.state is RuleState.TRIGGERED:
                if rule.id not in self._executing:  # cut off mid-way: finish it (cancels are idempotent)
                    self.rules[rule.id] = rule
                    self._job(f"execute:{rule.id}", lambda r=rule: self._execute(r))  # type: ignore[misc]
                continue
            if rule.id in self.firing:
                continue
            known = self.rules.get(rule.id)
            if known is not None and known.version >= rule.version:
                continue
            self._index(rule)
            await self._check_stored_trigger(rule)

    # -- reacting -------------------------------------------------------------------------------------
    def _on_order_changed(self, event: OrderChanged) -> None:
        order = event.order
        for rid in list(self._by_trigger.get((order.user_id, order.exchange.value, order.order_id), ())):
            rule = self.rules.get(rid)
            if rule is not None and order_meets(rule.condition, order):
                self._fire_later(rule, f"order {order.order_id} {order.status.value}")

    def on_tick(self, tick: PriceTick) -> None:
        for rid in list(self._by_symbol.get((tick.exchange, tick.symbol), ())):
            rule = self.rules.get(rid)
            if rule is not None and rule.state is RuleState.ACTIVE and price_meets(rule, tick.last):
                self._fire_later(rule, f"price {tick.last}")

    def _fire_later(self, rule: ConditionalRule, because: str) -> None:
        if rule.id in self.firing or rule.state is not RuleState.ACTIVE:
            return
        self.firing[rule.id] = because
        self._job(f"fire:{rule.id}", lambda: self._fire(rule.id))

    async def _check_stored_trigger(self, rule: ConditionalRule) -> None:
        """The trigger order may have reached the condition already (before the rule, or while we were away)."""
        if rule.condition is Condition.PRICE_REACHED:
            return
        order = self.accounts.order(rule.user_id, rule.exchange.value, rule.trigger_order_id)
        order = order or await self.store.orders.get(rule.user_id, rule.exchange.value, rule.trigger_order_id)
        if order is not None and order_meets(rule.condition, order):
            self._fire_later(rule, f"order {order.order_id} {order.status.value}")

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

    async def _fire(self, rule_id: str) -> None:
        """Record the trigger (retried until recorded, or the rule is no longer active), then cancel."""
        backoff = Backoff()
        while rule_id in self.firing:
            current = self.rules.get(rule_id)
            if current is None or current.state is not RuleState.ACTIVE:
                self.firing.pop(rule_id, None)
                return
            try:
                triggered = await self._save(
                    current,
                    "conditional.triggered",
                    state=RuleState.TRIGGERED,
                    triggered_by=self.firing[rule_id],
                )
            except StaleWrite:  # the account moved to another worker: it evaluates the rule there
                self.firing.pop(rule_id, None)
                self._unindex(rule_id)
                return
            except Exception as exc:
                metrics.trigger_retries.labels(kind="rule_trigger").inc()
                log.warning("rule %s fired; trigger not recorded yet (%s): retrying", rule_id, exc)
                await backoff.sleep()
                continue
            self.firing.pop(rule_id, None)
            if triggered is None:  # another instance fired it (or it was deleted): re-read
                fresh = await self.store.rules.get(current.user_id, rule_id)
                if fresh is not None and fresh.state is RuleState.ACTIVE:
                    self._index(fresh)
                return
            if triggered.condition is Condition.PRICE_REACHED:
                self._unindex_symbol_only(triggered)
            await self._execute(triggered)
            return

    def _unindex_symbol_only(self, rule: ConditionalRule) -> None:
        key = (rule.exchange.value, rule.symbol or "")
        ids = self._by_symbol.get(key)
        if ids is not None:
            ids.discard(rule.id)
            if not ids:
                del self._by_symbol[key]
                self.prices.release(key[0], key[1], self.holder)

    async def _execute(self, rule: ConditionalRule) -> None:
        if rule.id in self._executing:
            return
        self._executing.add(rule.id)
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._execute_once(rule)
                    return
                except StaleWrite:  # the account moved: its new worker finishes the rule
                    return
                except Exception as exc:  # Redis away while recording: the cancels are idempotent, redo
                    metrics.trigger_retries.labels(kind="rule_execute").inc()
                    log.warning(
                        "rule %s could not be finished yet: %s", rule.id, exc, extra={"user_id": rule.user_id}
                    )
                    await backoff.sleep()
        finally:
            self._executing.discard(rule.id)

    async def _execute_once(self, rule: ConditionalRule) -> None:
        cancelled, gone = list(rule.cancelled_ids), list(rule.already_closed_ids)
        errors = dict(rule.errors)
        failed: list[str] = []
        done = set(cancelled) | set(gone)
        deadline = rule.updated_at.timestamp() + self.cancel_deadline_s  # from the trigger (state change)
        for oid in rule.cancel_order_ids:
            if oid in done:
                continue
            outcome, reason = await self._cancel(rule, oid, deadline)
            if outcome == "cancelled":
                cancelled.append(oid)
            elif outcome == "gone":
                gone.append(oid)
            else:
                failed.append(oid)
                errors[oid] = reason[:200]
        state = RuleState.FAILED if failed else RuleState.EXECUTED
        event = "conditional.failed" if failed else "conditional.executed"
        await self._save(rule, event, state=state, cancelled_ids=cancelled, already_closed_ids=gone,
                         failed_ids=failed, errors=errors)  # fmt: skip

    async def _cancel(self, rule: ConditionalRule, order_id: str, deadline: float) -> tuple[str, str]:
        """("cancelled" | "gone" | "failed", reason): a transient failure is retried until the deadline."""
        backoff = Backoff()
        while True:
            try:
                await self.orders.cancel_order(rule.user_id, rule.exchange.value, order_id)
                return "cancelled", ""
            except (Conflict, NotFound):
                return "gone", ""  # already filled, cancelled or unknown: nothing left to cancel
            except TRANSIENT as exc:
                reason = exc.reason if isinstance(exc, GatewayError) else str(exc)
                if time.time() >= deadline:
                    return "failed", f"still unreachable after {self.cancel_deadline_s:.0f} s: {reason}"
                metrics.trigger_retries.labels(kind="rule_cancel").inc()
                log.info("rule %s: cancel of %s failed (%s); retrying", rule.id, order_id, reason,
                         extra={"user_id": rule.user_id})  # fmt: skip
                await backoff.sleep()
            except (GatewayError, CommandError) as exc:  # the exchange refused: a final answer
                return "failed", exc.reason if isinstance(exc, GatewayError) else str(exc)

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
            if self.mine(r):  # else the worker holding the account loads it at its next resync
                self._index(r)
            out.append(r)
        for r in out:
            if self.mine(r):
                await self._check_stored_trigger(r)
        return out

    async def delete(self, user_id: str, rule_id: str) -> ConditionalRule:
        rule = await self.store.rules.get(user_id, rule_id)
        if rule is None or rule.state is RuleState.DELETED:
            raise NotFound(f"no conditional rule {rule_id!r} for user {user_id!r}")
        if rule.state is not RuleState.ACTIVE or rule_id in self.firing:
            raise Conflict(
                f"the rule already {rule.state.value if rule_id not in self.firing else 'fired'}", "rule_id"
            )
        deleted = await self._save(rule, "conditional.deleted", state=RuleState.DELETED)
        if deleted is None:
            raise Conflict("the rule changed state (it may have fired)", "rule_id")
        return deleted
