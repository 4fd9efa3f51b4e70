"""One account's orders and positions as its actor knows them, and the pure rules that fold each message
into a Plan: which records to write, with which event, and what to ask next. Pure: no I/O, no asyncio.

The actor commits a Plan (state + events in Redis) and only then adopts it (`commit`), so the book always
mirrors what is stored. Every message the actor handles carries the inbox's arrival number; a REST snapshot
carries the arrival number at which it *started*. An order or position the snapshot does not list counts as
a miss only if the snapshot started after the last stream update of it, and it is declared gone only when a
second such snapshot agrees (one rule for orders and positions; the first miss asks for a prompt second
snapshot). A gone order is first looked up over REST; a gone position gets a synthetic close whose version is
just after its last exchange version (or the snapshot's exchange time), never our clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cachetools import LRUCache

from .models import Order, Position
from .reconcile import (
    PROVISIONAL,
    Intent,
    adopt_order,
    annotated,
    close_all_size,
    close_position,
    flipped_side,
    gone_close_time,
    is_provisional,
    lost_order,
    marked,
    merge_order_report,
    merge_position_report,
    order_event,
    position_version,
)

PosKey = tuple[str, str]  # (symbol, side)
GONE_AFTER_MISSES = 2
FINISHED_ORDERS_KEPT = 1000


def pos_key(p: Position) -> PosKey:
    return (p.symbol, p.side.value)


@dataclass(slots=True)
class OrderEntry:
    order: Order
    arrival: int = 0  # arrival number of the last stream report or command reply (0: loaded, snapshot)
    misses: int = 0
    looking_up: bool = False


@dataclass(slots=True)
class PositionEntry:
    position: Position
    arrival: int = 0
    misses: int = 0


@dataclass(frozen=True, slots=True)
class OrderWrite:
    order: Order
    previous: Order | None
    event: str | None  # None: a silent write (fees, links, cosmetic changes)
    versioned: bool = True  # False: no exchange version (a provisional record)


@dataclass(frozen=True, slots=True)
class PositionWrite:
    position: Position
    previous: Position | None
    event: str | None
    cause: str = "exchange"  # exchange | snapshot | annotation
    versioned: bool = True  # False: our own fields only (annotations)


@dataclass(frozen=True, slots=True)
class MarkWrite:
    position: Position  # valued at the new mark price; nothing else differs from `previous`
    previous: Position


@dataclass(slots=True)
class Plan:
    orders: list[OrderWrite] = field(default_factory=list)
    positions: list[PositionWrite] = field(default_factory=list)
    marks: list[MarkWrite] = field(default_factory=list)
    order_entries: dict[str, OrderEntry] = field(default_factory=dict)
    position_entries: dict[PosKey, PositionEntry] = field(default_factory=dict)
    lookups: list[Order] = field(default_factory=list)  # orders to look up over REST (declared gone)
    confirm_snapshot: bool = False  # a first miss: ask for the second snapshot soon
    reconciled: bool = False
    hedged: bool | None = None

    @property
    def writes(self) -> int:
        return len(self.orders) + len(self.positions) + len(self.marks)


class AccountBook:
    def __init__(self, user_id: str, exchange: str, finished_kept: int = FINISHED_ORDERS_KEPT) -> None:
        self.user_id = user_id
        self.exchange = exchange
        self.active: dict[str, OrderEntry] = {}
        self.finished: LRUCache[str, OrderEntry] = LRUCache(maxsize=finished_kept)
        self.client_ids: LRUCache[str, str] = LRUCache(maxsize=finished_kept * 4)
        self.positions: dict[PosKey, PositionEntry] = {}
        self.hedged: bool | None = None
        self.reconciled = False
        self.snapshots = 0

    # -- reading --------------------------------------------------------------------------------------------
    def entry(self, order_id: str) -> OrderEntry | None:
        return self.active.get(order_id) or self.finished.get(order_id)

    def order(self, order_id: str) -> Order | None:
        e = self.entry(order_id)
        return e.order if e else None

    def order_by_client_id(self, client_order_id: str) -> Order | None:
        oid = self.client_ids.get(client_order_id)
        return self.order(oid) if oid else None

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [e.order for e in self.active.values() if symbol is None or e.order.symbol == symbol]

    def position(self, symbol: str, side: str) -> Position | None:
        e = self.positions.get((symbol, side))
        return e.position if e is not None and e.position.is_open else None

    def open_positions(self) -> list[Position]:
        return [e.position for e in self.positions.values() if e.position.is_open]

    def symbols_in_play(self) -> set[str]:
        return {p.symbol for p in self.open_positions()} | {e.order.symbol for e in self.active.values()}

    def unknown(self, order_ids: Iterable[str]) -> list[str]:
        """Ids the book does not hold: the actor reads their stored records (and intents) first."""
        return [i for i in dict.fromkeys(order_ids) if self.entry(i) is None]

    # -- loading ----------------------------------------------------------------------------------------
    def load(self, orders: Iterable[Order], positions: Iterable[Position]) -> None:
        """The account's stored state, before any message: what the last run knew."""
        for o in orders:
            self._put_order(OrderEntry(o))
        for p in positions:
            self.positions[pos_key(p)] = PositionEntry(p)

    def remember(self, stored: Iterable[Order]) -> None:
        """Stored records of orders a message is about to mention (finished ones dropped from memory)."""
        for o in stored:
            if self.entry(o.order_id) is None:
                self._put_order(OrderEntry(o))

    def replace_order(self, order: Order) -> None:
        e = self.entry(order.order_id)
        self._put_order(OrderEntry(order, e.arrival if e else 0))

    def replace_position(self, position: Position) -> None:
        e = self.positions.get(pos_key(position))
        self.positions[pos_key(position)] = PositionEntry(position, e.arrival if e else 0)

    def stream_gap(self) -> None:
        """A stream dropped: updates may be lost until the next snapshot; triggers wait for it."""
        self.reconciled = False

    # -- folding ----------------------------------------------------------------------------------------
    def fold_orders(
        self, reports: Sequence[Order], arrival: int, intents: dict[str, Intent], plan: Plan | None = None
    ) -> Plan:
        """Order reports of the stream (arrival > 0) or of REST (arrival 0)."""
        plan = plan or Plan()
        for incoming in reports:
            entry = plan.order_entries.get(incoming.order_id) or self.entry(incoming.order_id)
            if entry is None:
                new = adopt_order(incoming, intents.get(incoming.client_order_id or ""))
                self._write_order(plan, new, None, arrival)
                continue
            merged = merge_order_report(entry.order, incoming)
            seen = OrderEntry(entry.order, max(entry.arrival, arrival))  # reported: not missing
            if merged is None or merged == entry.order:
                plan.order_entries[incoming.order_id] = seen
                continue
            self._write_order(plan, merged, entry.order, seen.arrival)
        self._close_all_sizes(plan)
        return plan

    def _write_order(self, plan: Plan, new: Order, previous: Order | None, arrival: int) -> None:
        versioned = not is_provisional(new)
        plan.orders.append(OrderWrite(new, previous, order_event(previous, new), versioned))
        plan.order_entries[new.order_id] = OrderEntry(new, arrival)

    def _close_all_sizes(self, plan: Plan) -> None:
        """Close-all algos that filled take the size their child order filled (whichever came first). A parent
        written by this plan already is rewritten, not written twice: one change, one event, and never one
        that claims the stand-in size (see reconcile.SIZE_UNKNOWN)."""
        touched = {oid: e.order for oid, e in plan.order_entries.items()}
        for order in list(touched.values()):
            parent_id = order.metadata.get("algo_id")
            if parent_id:  # a child: correct its parent
                pe = plan.order_entries.get(str(parent_id)) or self.entry(str(parent_id))
                fixed = close_all_size(pe.order, order) if pe else None
                if pe is not None and fixed is not None:
                    self._rewrite_order(plan, fixed, pe.order, pe.arrival)
            child_id = order.metadata.get("child_order_id")
            if child_id and order.metadata.get("close_position"):  # a parent: its child may be known
                ce = plan.order_entries.get(str(child_id)) or self.entry(str(child_id))
                current = plan.order_entries[order.order_id].order
                fixed = close_all_size(current, ce.order) if ce else None
                if fixed is not None:
                    self._rewrite_order(plan, fixed, current, plan.order_entries[order.order_id].arrival)

    def _rewrite_order(self, plan: Plan, new: Order, previous: Order, arrival: int) -> None:
        """Write `new` over `previous`; when this plan already writes `previous`, that write becomes `new`."""
        for i in range(len(plan.orders) - 1, -1, -1):
            w = plan.orders[i]
            if w.order.order_id == new.order_id:
                if w.order is not previous:
                    break
                before = w.previous
                versioned = not is_provisional(new)
                plan.orders[i] = OrderWrite(new, before, order_event(before, new), versioned)
                plan.order_entries[new.order_id] = OrderEntry(new, arrival)
                return
        self._write_order(plan, new, previous, arrival)

    def fold_positions(
        self, reports: Sequence[Position], arrival: int, plan: Plan | None = None, hedged: bool | None = None
    ) -> Plan:
        """Position reports of the stream (arrival > 0) or of a snapshot (arrival 0)."""
        plan = plan or Plan()
        hedged = self.hedged if hedged is None else hedged
        for incoming in reports:
            key = pos_key(incoming)
            entry = plan.position_entries.get(key) or self.positions.get(key)
            known = entry.position if entry else None
            res = merge_position_report(known, incoming)
            seen_arrival = max(entry.arrival if entry else 0, arrival)
            if res is None:
                if entry is not None and incoming.size > 0:  # reported: not missing
                    plan.position_entries[key] = PositionEntry(entry.position, seen_arrival)
                continue
            new, event = res
            plan.positions.append(PositionWrite(new, known, event))
            plan.position_entries[key] = PositionEntry(new, seen_arrival)
            self._close_flipped(plan, incoming, seen_arrival, hedged)
        return plan

    def _close_flipped(self, plan: Plan, incoming: Position, arrival: int, hedged: bool | None) -> None:
        if hedged is None:
            return  # the account's mode is not known yet: the snapshot tells
        current = {k: e.position for k, e in self.positions.items()}
        current.update({k: e.position for k, e in plan.position_entries.items()})
        other = flipped_side(incoming, current.values(), hedged)
        if other is None or position_version(incoming) < position_version(other):
            return
        closed = close_position(other, max(incoming.updated_at, other.updated_at))
        plan.positions.append(PositionWrite(closed, other, "position.closed"))
        plan.position_entries[pos_key(other)] = PositionEntry(closed, arrival)

    def fold_snapshot(
        self,
        orders: Sequence[Order],
        positions: Sequence[Position],
        hedged: bool,
        started_at_arrival: int,
        exchange_time: datetime | None,
        intents: dict[str, Intent],
    ) -> Plan:
        plan = Plan(reconciled=True, hedged=hedged)
        self.fold_orders(orders, 0, intents, plan)
        self.fold_positions([p for p in positions if p.size > 0], 0, plan, hedged)
        listed = {o.order_id for o in orders}
        for oid, entry in list(self.active.items()):
            current = plan.order_entries.get(oid, entry)
            if oid in listed or not current.order.status.is_active:
                continue
            missed = self._missed(current.arrival, current.misses, started_at_arrival)
            plan.order_entries[oid] = e = OrderEntry(
                current.order, current.arrival, missed, current.looking_up
            )
            if missed >= GONE_AFTER_MISSES and not e.looking_up:
                e.looking_up = True
                plan.lookups.append(current.order)
            elif missed == 1:
                plan.confirm_snapshot = True
        listed_positions = {pos_key(p) for p in positions if p.size > 0}
        for key, pentry in list(self.positions.items()):
            current_p = plan.position_entries.get(key, pentry)
            if key in listed_positions or not current_p.position.is_open:
                continue
            missed = self._missed(current_p.arrival, current_p.misses, started_at_arrival)
            if missed >= GONE_AFTER_MISSES:
                known = current_p.position
                closed = close_position(known, gone_close_time(known, exchange_time))
                plan.positions.append(PositionWrite(closed, known, "position.closed", cause="snapshot"))
                plan.position_entries[key] = PositionEntry(closed, current_p.arrival)
            else:
                plan.position_entries[key] = PositionEntry(current_p.position, current_p.arrival, missed)
                plan.confirm_snapshot = plan.confirm_snapshot or missed == 1
        return plan

    @staticmethod
    def _missed(arrival: int, misses: int, started_at_arrival: int) -> int:
        """A snapshot that started before the last stream update of a record cannot say it is gone."""
        return misses + 1 if arrival <= started_at_arrival else misses

    def fold_final_state(self, order_id: str, found: Order | None, intents: dict[str, Intent]) -> Plan:
        """The REST lookup of an order two snapshots missed: its final state, or not found at all."""
        entry = self.active.get(order_id)
        if entry is None:
            return Plan()
        if entry.misses < GONE_AFTER_MISSES:  # a stream update revived it meanwhile
            return Plan(order_entries={order_id: OrderEntry(entry.order, entry.arrival, entry.misses)})
        if found is not None:
            plan = self.fold_orders(
                [found], 0, intents
            )  # its final state (or, still live: not gone after all)
            plan.order_entries.setdefault(order_id, OrderEntry(entry.order, entry.arrival))
            return plan
        plan = Plan()
        self._write_order(plan, lost_order(entry.order, entry.order.updated_at), entry.order, entry.arrival)
        return plan

    def fold_reply(self, provisional: Order, intent: Intent | None, arrival: int) -> Plan:
        """A command's reply: it confirms ids and the status the exchange reported, nothing more. Unknown
        order: a provisional record (no exchange version; any report supersedes it). Known: ids linked."""
        plan = Plan()
        entry = self.entry(provisional.order_id)
        if entry is None and provisional.client_order_id:
            oid = self.client_ids.get(provisional.client_order_id)
            entry = self.entry(oid) if oid else None
        if entry is None:
            record = adopt_order(provisional, intent)
            record = record.model_copy(update={"metadata": {**record.metadata, PROVISIONAL: True}})
            self._write_order(plan, record, None, arrival)
            return plan
        known = entry.order
        if provisional.client_order_id and not known.client_order_id:
            linked = known.model_copy(update={"client_order_id": provisional.client_order_id})
            plan.orders.append(OrderWrite(linked, known, None, versioned=not is_provisional(known)))
            plan.order_entries[known.order_id] = OrderEntry(
                linked, entry.arrival, entry.misses, entry.looking_up
            )
        return plan

    def fold_mark(self, symbol: str, price: Decimal) -> Plan:
        plan = Plan()
        for key, entry in self.positions.items():
            p = entry.position
            if p.symbol == symbol and p.is_open and p.current_price != price:
                valued = marked(p, price)
                plan.marks.append(MarkWrite(valued, p))
                plan.position_entries[key] = PositionEntry(valued, entry.arrival, entry.misses)
        return plan

    def fold_annotation(
        self, symbol: str, side: str, fields: dict[str, Any], metadata: dict[str, Any] | None
    ) -> Plan:
        plan = Plan()
        entry = self.positions.get((symbol, side))
        if entry is None or not entry.position.is_open:
            return plan
        new = annotated(entry.position, fields, metadata)
        if new != entry.position:
            plan.positions.append(PositionWrite(new, entry.position, "position.updated", "annotation", False))
            plan.position_entries[(symbol, side)] = PositionEntry(new, entry.arrival, entry.misses)
        return plan

    # -- adopting a committed plan --------------------------------------------------------------------------
    def commit(self, plan: Plan) -> None:
        for e in plan.order_entries.values():
            self._put_order(e)
        self.positions.update(plan.position_entries)
        if plan.hedged is not None:
            self.hedged = plan.hedged
        if plan.reconciled:
            self.reconciled = True
            self.snapshots += 1

    def _put_order(self, e: OrderEntry) -> None:
        oid = e.order.order_id
        if e.order.status.is_active:
            self.finished.pop(oid, None)
            self.active[oid] = e
        else:
            self.active.pop(oid, None)
            self.finished[oid] = e
        if e.order.client_order_id:
            self.client_ids[e.order.client_order_id] = oid
