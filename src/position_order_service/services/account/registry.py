"""The running account actors: one per (user, exchange), started and stopped without a restart.

The registry is also the port the rest of the service uses instead of actor internals:
- AccountView (what services and adapters read: a position, the account's mode, whether it has reconciled,
  its open orders), answered from the actors' committed state;
- the way commands hand the exchange's answers back: as messages to the actor (a reply, a REST report, our
  annotations), awaiting the actor's view after its commit. With no actor for the account (a bot process, an
  untracked user) the same pure rules fold the answer into the stored record directly.
It routes mark prices to the accounts that hold positions in a symbol, at most once per mark interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ...bus import Bus
from ...domain.account_book import AccountBook
from ...domain.market import PriceTick
from ...domain.models import Order, Position
from ...domain.reconcile import Intent, close_position, gone_close_time
from ...store import Store
from ...supervisor import Supervisor
from ..gateways import GatewayProvider
from ..prices import PriceHub
from .actor import AccountActor, AccountOptions
from .messages import Annotate, CommandOutcome, RestReport, SetWatchlist

log = logging.getLogger(__name__)
REPLY_WAIT_S = 30.0  # an actor answers a command's message within its turn; a stuck Redis may hold it


class AccountRegistry:
    def __init__(
        self,
        store: Store,
        gateways: GatewayProvider,
        prices: PriceHub,
        bus: Bus,
        supervisor: Supervisor,
        options: AccountOptions | None = None,
        *,
        mark_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.prices = prices
        self.bus = bus
        self.supervisor = supervisor
        self.options = options or AccountOptions()
        self.mark_interval_s = mark_interval_s
        self.actors: dict[tuple[str, str], AccountActor] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()
        self._held: dict[tuple[str, str], set[str]] = {}  # account -> symbols whose prices it holds
        self._marked: dict[tuple[str, str], set[AccountActor]] = {}  # (exchange, symbol) -> accounts
        self._dirty: dict[tuple[str, str], Decimal] = {}
        self._unlisten: Any = None
        self._mark_job: Any = None

    def start_marks(self) -> None:
        """Route prices to positions as marks (a tick only notes the price; the job posts them)."""
        self._unlisten = self.prices.listen(self._on_tick)
        self._mark_job = self.supervisor.every("marks", self.mark_interval_s, self._post_marks)

    # -- actors -----------------------------------------------------------------------------------------
    def get(self, user_id: str, exchange: str) -> AccountActor | None:
        return self.actors.get((user_id, exchange))

    async def start(self, user_id: str, exchange: str) -> AccountActor | None:
        async with self._lock:
            key = (user_id, exchange)
            if key in self.actors:
                return self.actors[key]
            try:
                gateway = await self.gateways.for_user(user_id, exchange)
            except Exception as exc:  # e.g. no credentials: the account shows as unhealthy, others go on
                self.failures[key] = str(exc)
                log.warning("cannot track %s on %s: %s", user_id, exchange, exc, extra={"user_id": user_id})
                return None
            self.failures.pop(key, None)
            scope = self.supervisor.scope(f"account:{user_id}:{exchange}", kind="account")
            actor = AccountActor(
                user_id, exchange, gateway, self.store, self.bus, scope, self.options, self._symbols
            )
            self.actors[key] = actor
            actor.start()
            log.info("tracking %s on %s", user_id, exchange, extra={"user_id": user_id, "exchange": exchange})
            return actor

    async def stop(self, user_id: str, exchange: str) -> None:
        async with self._lock:  # forget it at once; the slow part (closing sockets) runs outside the lock
            key = (user_id, exchange)
            self.failures.pop(key, None)
            actor = self.actors.pop(key, None)
            gateway = self.gateways.detach(user_id, exchange)  # a restart right after gets a fresh one
        if actor is not None:
            await actor.stop()
        if gateway is not None:
            with contextlib.suppress(Exception):
                await gateway.close()

    async def stop_all(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        if self._mark_job is not None:
            await self._mark_job.stop()
        await asyncio.gather(*(self.stop(u, e) for u, e in list(self.actors)), return_exceptions=True)

    def tracked_accounts(self) -> set[tuple[str, str]]:
        return set(self.actors)

    def health(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"user_id": u, "exchange": e, **a.health.as_dict()} for (u, e), a in sorted(self.actors.items())
        ]
        out += [
            {"user_id": u, "exchange": e, "state": "error", "healthy": False, "last_error": reason}
            for (u, e), reason in sorted(self.failures.items())
        ]
        return out

    def set_watchlist(self, user_id: str, exchange: str, symbols: Iterable[str]) -> None:
        actor = self.get(user_id, exchange)
        if actor is not None:
            actor.inbox.post(SetWatchlist(frozenset(symbols)))

    # -- AccountView --------------------------------------------------------------------------------------
    def tracked(self, user_id: str, exchange: str) -> bool:
        return (user_id, exchange) in self.actors

    def reconciled(self, user_id: str, exchange: str) -> bool:
        actor = self.get(user_id, exchange)
        return actor is not None and actor.book.reconciled

    def hedged(self, user_id: str, exchange: str) -> bool | None:
        actor = self.get(user_id, exchange)
        return actor.book.hedged if actor is not None and actor.book.reconciled else None

    def position(self, user_id: str, exchange: str, symbol: str, side: str) -> Position | None:
        actor = self.get(user_id, exchange)
        return actor.book.position(symbol, side) if actor is not None else None

    def open_orders(self, user_id: str, exchange: str, symbol: str | None = None) -> list[Order]:
        actor = self.get(user_id, exchange)
        return actor.book.open_orders(symbol) if actor is not None else []

    def order(self, user_id: str, exchange: str, order_id: str) -> Order | None:
        actor = self.get(user_id, exchange)
        return actor.book.order(order_id) if actor is not None else None

    def order_by_client_id(self, user_id: str, exchange: str, client_order_id: str) -> Order | None:
        actor = self.get(user_id, exchange)
        return actor.book.order_by_client_id(client_order_id) if actor is not None else None

    async def wait_reconciled(self, user_id: str, exchange: str, within_s: float) -> bool:
        actor = self.get(user_id, exchange)
        return actor is not None and await actor.wait_reconciled(within_s)

    # -- the way back from commands -----------------------------------------------------------------------
    async def record_reply(self, user_id: str, exchange: str, reply: Order, intent: Intent | None) -> Order:
        """The exchange's answer to a create command: ids and reported status, never a report. Returns the
        account's view of the order afterwards."""
        actor = self.get(user_id, exchange)
        if actor is None:
            return await self._direct_reply(reply, intent)
        fut: asyncio.Future[Order | None] = asyncio.get_running_loop().create_future()
        actor.inbox.post(CommandOutcome("created", reply, reply.client_order_id, intent, fut))
        async with asyncio.timeout(REPLY_WAIT_S):
            view = await fut
        return view or reply

    def record_cancel(self, user_id: str, exchange: str, order: Order) -> None:
        actor = self.get(user_id, exchange)
        if actor is not None:
            actor.inbox.post(CommandOutcome("cancelled", order, order.client_order_id))

    async def record_reports(
        self,
        user_id: str,
        exchange: str,
        orders: list[Order] | None = None,
        positions: list[Position] | None = None,
        flat: list[tuple[str, str]] | None = None,
    ) -> None:
        """The exchange's own view of some orders/positions read over REST by a command. `flat`: (symbol,
        side) slots the exchange listed no position for: an account's actor leaves those to its stream and
        snapshots; without one, an open stored position there is closed just after its last version."""
        actor = self.get(user_id, exchange)
        if actor is None:
            await self._direct_reports(orders or [], positions or [])
            for symbol, side in flat or []:
                await self._direct_flat(user_id, exchange, symbol, side)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        actor.inbox.post(RestReport(list(orders or []), list(positions or []), fut))
        async with asyncio.timeout(REPLY_WAIT_S):
            await fut

    async def annotate(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: str,
        fields: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> Position | None:
        """Our own fields on the open position (SL/TP prices, grid level, metadata)."""
        actor = self.get(user_id, exchange)
        if actor is None:
            return await self._direct_annotation(user_id, exchange, symbol, side, fields, metadata)
        fut: asyncio.Future[Position | None] = asyncio.get_running_loop().create_future()
        actor.inbox.post(Annotate(symbol, side, fields, metadata, fut))
        async with asyncio.timeout(REPLY_WAIT_S):
            return await fut

    # -- no actor for the account: the same rules, folded into the stored record ----------------------------
    async def _direct_book(self, user_id: str, exchange: str, orders: Iterable[Order]) -> AccountBook:
        book = AccountBook(user_id, exchange)
        ids = [o.order_id for o in orders]
        stored, _ = await self.store.orders.known_and_intents(user_id, exchange, ids, [])
        book.remember(stored)
        return book

    async def _direct_writes(self, book: AccountBook, plan: Any) -> None:
        writes = [
            self.store.orders.write_for(w.order, event=w.event, versioned=w.versioned) for w in plan.orders
        ]
        writes += [
            self.store.positions.write_for(w.position, event=w.event, versioned=w.versioned)
            for w in plan.positions
        ]
        await self.store.writer.apply_many(writes)
        book.commit(plan)

    async def _direct_reply(self, reply: Order, intent: Intent | None) -> Order:
        book = await self._direct_book(reply.user_id, reply.exchange.value, [reply])
        await self._direct_writes(book, book.fold_reply(reply, intent, 1))
        return book.order(reply.order_id) or reply

    async def _direct_reports(self, orders: list[Order], positions: list[Position]) -> None:
        for o in orders:
            book = await self._direct_book(o.user_id, o.exchange.value, [o])
            await self._direct_writes(book, book.fold_orders([o], 0, {}))
        for p in positions:
            book = AccountBook(p.user_id, p.exchange.value)
            stored = await self.store.positions.get(p.user_id, p.exchange.value, p.symbol, p.side.value)
            if stored is not None:
                book.load([], [stored])
            await self._direct_writes(book, book.fold_positions([p], 0))

    async def _direct_flat(self, user_id: str, exchange: str, symbol: str, side: str) -> None:
        stored = await self.store.positions.get(user_id, exchange, symbol, side)
        if stored is None or not stored.is_open:
            return
        closed = close_position(stored, gone_close_time(stored, None))  # no stream here: the read is the news
        await self.store.writer.apply(
            self.store.positions.write_for(closed, {"cause": "snapshot"}, event="position.closed")
        )

    async def _direct_annotation(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: str,
        fields: dict[str, Any],
        meta: dict[str, Any] | None,
    ) -> Position | None:
        stored = await self.store.positions.get(user_id, exchange, symbol, side)
        if stored is None or not stored.is_open:
            return None
        book = AccountBook(user_id, exchange)
        book.load([], [stored])
        await self._direct_writes(book, book.fold_annotation(symbol, side, fields, meta))
        return book.position(symbol, side)

    # -- prices -------------------------------------------------------------------------------------------
    def _symbols(self, actor: AccountActor, in_play: set[str], with_positions: set[str]) -> None:
        """An actor's symbols changed: hold their prices; route marks to it for the ones it holds positions in."""
        holder = f"{actor.user_id}:{actor.exchange}"
        held = self._held.get(actor.key, set())
        for s in in_play - held:
            self.prices.hold(actor.exchange, s, holder)
        for s in held - in_play:
            self.prices.release(actor.exchange, s, holder)
        self._held[actor.key] = set(in_play)
        if not in_play:
            self._held.pop(actor.key, None)
        for key, actors in list(self._marked.items()):
            if key[1] not in with_positions:
                actors.discard(actor)
                if not actors:
                    del self._marked[key]
        for s in with_positions:
            self._marked.setdefault((actor.exchange, s), set()).add(actor)

    def _on_tick(self, tick: PriceTick) -> None:
        key = (tick.exchange, tick.symbol)
        if key in self._marked:
            self._dirty[key] = tick.mark if tick.mark is not None else tick.last

    async def _post_marks(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for (exchange, symbol), price in dirty.items():
            for actor in self._marked.get((exchange, symbol), ()):
                actor.inbox.post_mark(symbol, price)
