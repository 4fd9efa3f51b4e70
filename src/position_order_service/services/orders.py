"""OrderManager: places and cancels orders safely (migration guide's OrderManager; SPEC sections 1, 7, 9).

Intent before action (DESIGN invariant 4): the client order id is chosen and recorded before the order is sent.
The same idempotency key never creates two orders. A timeout or a dropped connection is an unknown outcome,
resolved by asking (the account's stream shows new orders at once; the exchange's order lookup may lag), never
by sending again: an order is declared not placed only when the exchange says it has no such order at least
`visibility_lag_s` after the send. The exchange's answers go back to the account's actor (AccountRecorder):
a reply confirms ids and the reported status, and is never stored as the exchange's report.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tenacity import wait_exponential_jitter

from .. import metrics
from ..aio import Backoff
from ..domain.enums import OrderSide, OrderStatus, OrderType, PositionSide, TimeInForce
from ..domain.events import envelope
from ..domain.market import BelowMinimum, OrderRequest
from ..domain.models import Order
from ..domain.reconcile import Intent
from ..domain.symbols import InvalidSymbol, native_symbol
from ..exchanges.base import ExchangeGateway, ExchangeUnavailable, GatewayError, OrderNotFound
from ..store import Store
from .account.ports import Accounts
from .commands import CommandError, Conflict, NotFound, OutcomeUnknown
from .gateways import GatewayProvider

log = logging.getLogger(__name__)

CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # what OKX and Binance both accept
IN_FLIGHT_WAIT_S = 10.0
UNANSWERED_GRACE_S = 2.0  # an exchange that does not answer is asked for twice its visibility lag, plus this
CANCEL_CONFIRM_S = 1.0  # the account's stream normally confirms a cancel within this; else ask over REST


def new_client_order_id() -> str:
    return "pos" + uuid.uuid4().hex[:29]


def client_order_id_for_key(user_id: str, idempotency_key: str) -> str:
    """The same idempotency key always maps to the same client order id (so the exchange dedupes too)."""
    return "idk" + hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()[:29]


@dataclass
class OrderCommand:
    user_id: str
    exchange: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    post_only: bool = False
    position_side: PositionSide | None = None
    client_order_id: str | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    grid_level: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        # accept the enums' string values too (adapters and scripts pass "buy", "market", ...)
        self.side = OrderSide(self.side)
        self.order_type = OrderType(self.order_type)
        self.time_in_force = TimeInForce(self.time_in_force)
        if self.position_side is not None:
            self.position_side = PositionSide(self.position_side)


class OrderManager:
    def __init__(
        self, store: Store, gateways: GatewayProvider, accounts: Accounts, *, visibility_lag_s: float = 5.0
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.accounts = accounts
        self.visibility_lag_s = visibility_lag_s

    # -- creation --------------------------------------------------------------------------------------
    async def create_order(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: OrderSide | str,
        order_type: OrderType | str,
        quantity: Decimal,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        reduce_only: bool = False,
        post_only: bool = False,
        position_side: PositionSide | str | None = None,
        client_order_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Order:
        """The migration guide's signature; see OrderCommand for the optional extras."""
        cmd = OrderCommand(
            user_id=user_id,
            exchange=exchange,
            symbol=symbol,
            side=OrderSide(side),
            order_type=OrderType(order_type),
            quantity=quantity,
            price=price,
            trigger_price=trigger_price,
            reduce_only=reduce_only,
            post_only=post_only,
            position_side=PositionSide(position_side) if position_side else None,
            client_order_id=client_order_id,
            metadata=dict(metadata or {}),
            **extra,
        )
        return await self.place(cmd)

    async def place(
        self,
        cmd: OrderCommand,
        *,
        intent_recorded: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> Order:
        """Place an order: its intent is recorded first (DESIGN invariant 4), unless the caller recorded it in
        the same atomic step as its own decision (`intent_recorded`: a trailing stop's trigger, whose script
        writes the intent of its close order, fixed client order id included). `before_send` is called just
        before the order leaves (latency measurement)."""
        async with metrics.timed(metrics.order_manager_latency, operation="create_order"):
            return await self._place(cmd, intent_recorded, before_send)

    @staticmethod
    def intent_of(cmd: OrderCommand, symbol: str, client_order_id: str) -> tuple[Intent, dict[str, str]]:
        """The intent record of a command (and its request summary: native symbol, side), as `place` writes
        it."""
        intent = Intent(
            client_order_id=client_order_id,
            order_type=cmd.order_type.value,
            grid_level=cmd.grid_level,
            metadata=cmd.metadata,
        )
        return intent, {"symbol": symbol, "side": cmd.side.value}

    async def _place(
        self, cmd: OrderCommand, intent_recorded: bool, before_send: Callable[[], None] | None
    ) -> Order:
        gateway = await self.gateways.for_user(cmd.user_id, cmd.exchange)
        request = self._prepare(cmd, gateway)
        intent, summary = self.intent_of(cmd, request.symbol, request.client_order_id)
        if not intent_recorded:
            created = await self.store.intents.create(cmd.user_id, cmd.exchange, intent, request=summary)
            if not created:
                return await self._existing(cmd, request, gateway)
        if before_send is not None:
            before_send()
        sent_at = time.monotonic()
        try:
            reply = await gateway.create_order(request)
        except ExchangeUnavailable:
            return await self._resolve_unknown(cmd, request, gateway, sent_at)
        except GatewayError as exc:
            await self.store.intents.set_state(
                cmd.user_id, cmd.exchange, request.client_order_id, state="rejected"
            )
            await self._emit_failed(cmd, request, exc.reason)
            raise
        await self.store.intents.set_state(
            cmd.user_id, cmd.exchange, request.client_order_id, state="sent", order_id=reply.order_id
        )
        return await self.accounts.record_reply(cmd.user_id, cmd.exchange, reply, intent)

    def _prepare(self, cmd: OrderCommand, gateway: ExchangeGateway) -> OrderRequest:
        try:
            symbol = native_symbol(cmd.exchange, cmd.symbol)
            market = gateway.market(symbol)
        except (InvalidSymbol, KeyError, ValueError):
            raise CommandError(f"unknown symbol {cmd.symbol!r} on {cmd.exchange}", "symbol") from None
        if cmd.client_order_id is not None and not CLIENT_ORDER_ID.fullmatch(cmd.client_order_id):
            raise CommandError("client_order_id must be 1 to 32 letters and digits", "client_order_id")
        cid = cmd.client_order_id or (
            client_order_id_for_key(cmd.user_id, cmd.idempotency_key)
            if cmd.idempotency_key
            else new_client_order_id()
        )
        t = cmd.order_type
        if t.needs_price and cmd.price is None:
            raise CommandError(f"price is required for a {t.value} order", "price")
        if t.needs_trigger_price and cmd.trigger_price is None:
            raise CommandError(f"trigger_price is required for a {t.value} order", "trigger_price")
        if t is OrderType.TRAILING_STOP and cmd.callback_rate is None:
            raise CommandError("callback_rate is required for a trailing_stop order", "callback_rate")
        price = market.round_price(cmd.price) if cmd.price is not None else None
        if price is not None and price <= 0:
            raise CommandError(f"price {cmd.price} rounds to zero at tick {market.tick_size}", "price")
        trigger = None
        if cmd.trigger_price is not None:
            # a stop protecting a long (a sell) rounds up, one protecting a short rounds down: never later
            protects = PositionSide.LONG if cmd.side is OrderSide.SELL else PositionSide.SHORT
            trigger = (
                market.stop_price(cmd.trigger_price, protects)
                if t in (OrderType.STOP_LOSS, OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
                else market.round_price(cmd.trigger_price)
            )
        try:
            ref_price = price or trigger or cmd.activation_price
            quantity = market.checked_size(cmd.quantity, ref_price)
        except BelowMinimum as exc:
            raise CommandError(str(exc), "quantity") from None
        request = OrderRequest(
            symbol=symbol,
            side=cmd.side,
            order_type=t,
            quantity=quantity,
            client_order_id=cid,
            price=price,
            trigger_price=trigger,
            callback_rate=cmd.callback_rate,
            activation_price=market.round_price(cmd.activation_price) if cmd.activation_price else None,
            reduce_only=cmd.reduce_only,
            post_only=cmd.post_only,
            time_in_force=TimeInForce.POST_ONLY if cmd.post_only else cmd.time_in_force,
            position_side=cmd.position_side,
        )
        return request

    async def _resolve_unknown(
        self, cmd: OrderCommand, request: OrderRequest, gateway: ExchangeGateway, sent_at: float
    ) -> Order:
        """The reply was lost: the order may or may not exist. Never send it again. It is found on the
        account's stream (which shows new orders at once) or by the exchange's lookup; it is declared not
        placed only when the exchange says it has no such order `visibility_lag_s` or more after the send."""
        cid = request.client_order_id
        backoff = Backoff(wait_exponential_jitter(multiplier=0.1, max=1.0, jitter=0.1))
        deadline = sent_at + 2 * self.visibility_lag_s + UNANSWERED_GRACE_S
        while True:
            seen = self.accounts.order_by_client_id(cmd.user_id, cmd.exchange, cid)
            if seen is not None:
                return await self._resolved(cmd, seen)
            answered = True
            try:
                found = await gateway.fetch_order(request.symbol, client_order_id=cid)
            except ExchangeUnavailable:
                answered, found = False, None
            except OrderNotFound:
                found = None
            if found is not None:
                await self.accounts.record_reports(cmd.user_id, cmd.exchange, orders=[found])
                return await self._resolved(
                    cmd, self.accounts.order(cmd.user_id, cmd.exchange, found.order_id) or found
                )
            elapsed = time.monotonic() - sent_at
            if answered and elapsed >= self.visibility_lag_s:
                await self.store.intents.set_state(cmd.user_id, cmd.exchange, cid, state="not_placed")
                await self._emit_failed(cmd, request, "the exchange did not receive the order")
                raise ExchangeUnavailable(
                    "the exchange did not answer; the order was not placed (safe to retry)"
                )
            if time.monotonic() > deadline:
                raise OutcomeUnknown(
                    f"the exchange did not answer and could not be asked; order {cid} may exist: the service "
                    "will adopt it if it does. Do not resend; query it by client_order_id"
                )
            await backoff.sleep()

    async def _resolved(self, cmd: OrderCommand, order: Order) -> Order:
        log.info("resolved a lost reply: order %s exists", order.order_id,
                 extra={"user_id": cmd.user_id, "client_order_id": order.client_order_id})  # fmt: skip
        await self.store.intents.set_state(
            cmd.user_id, cmd.exchange, order.client_order_id or "", state="sent", order_id=order.order_id
        )
        return order

    async def _existing(self, cmd: OrderCommand, request: OrderRequest, gateway: ExchangeGateway) -> Order:
        """A request with the same key was seen: return its order, waiting while it is in flight."""
        deadline = asyncio.get_running_loop().time() + IN_FLIGHT_WAIT_S
        while True:
            raw = await self.store.intents.get_raw(cmd.user_id, cmd.exchange, request.client_order_id)
            state = raw.get("state")
            if state == "sent" and raw.get("order_id"):
                order = self.accounts.order(cmd.user_id, cmd.exchange, raw["order_id"])
                order = order or await self.store.orders.get(cmd.user_id, cmd.exchange, raw["order_id"])
                if order is not None:
                    return order
            if state in ("rejected", "not_placed"):
                raise Conflict(
                    f"a request with this idempotency key / client_order_id was already refused ({state})",
                    "client_order_id",
                )
            if asyncio.get_running_loop().time() > deadline:
                # still pending: its sender may have died mid-flight. Ask the exchange, never resend.
                found = await gateway.fetch_order(request.symbol, client_order_id=request.client_order_id)
                if found is not None:
                    await self.store.intents.set_state(
                        cmd.user_id,
                        cmd.exchange,
                        request.client_order_id,
                        state="sent",
                        order_id=found.order_id,
                    )
                    return await self.record_report(cmd.user_id, cmd.exchange, found)
                raise Conflict("a request with this idempotency key is still in flight", "client_order_id")
            await asyncio.sleep(0.05)

    async def record_report(self, user_id: str, exchange: str, order: Order) -> Order:
        """The exchange's own report of an order, read over REST: to the account; its view comes back."""
        await self.accounts.record_reports(user_id, exchange, orders=[order])
        return self.accounts.order(user_id, exchange, order.order_id) or (
            await self.store.orders.get(user_id, exchange, order.order_id) or order
        )

    async def _emit_failed(self, cmd: OrderCommand, request: OrderRequest, reason: str) -> None:
        await self.store.orders.emit_failed(
            cmd.user_id,
            cmd.exchange,
            {
                **envelope(cmd.user_id, cmd.exchange, {"reason": reason}),
                "order_id": None,
                "client_order_id": request.client_order_id,
                "symbol": request.symbol,
                "side": request.side.value,
                "order_type": request.order_type.value,
                "quantity": str(request.quantity),
                "price": str(request.price) if request.price is not None else None,
                "filled_qty": "0",
                "avg_fill_price": None,
                "status": "rejected",
            },
        )

    # -- cancellation ----------------------------------------------------------------------------------
    async def cancel_order(
        self,
        user_id: str,
        exchange: str,
        order_id: str,
        symbol: str | None = None,
        order_type: str | None = None,
    ) -> Order:
        """Cancel a regular or algo order; the kind is looked up (or tried both ways), the caller need not know."""
        known = await self.store.orders.get(user_id, exchange, order_id)
        if known is None:  # perhaps the caller's own client order id
            intent = await self.store.intents.get_raw(user_id, exchange, order_id)
            if intent.get("order_id"):
                order_id = intent["order_id"]
                known = await self.store.orders.get(user_id, exchange, order_id)
        if symbol is None and known is None:
            raise NotFound(
                f"order {order_id!r} of user {user_id!r} on {exchange} is not known; give its symbol"
            )
        try:
            sym = native_symbol(exchange, symbol) if symbol else known.symbol  # type: ignore[union-attr]
        except InvalidSymbol as exc:
            raise CommandError(str(exc), "symbol") from None
        if known is not None and known.symbol != sym:
            raise CommandError(f"order {order_id} is on {known.symbol}, not {sym}", "symbol")
        if known is not None and known.status.is_terminal:
            raise Conflict(f"order {order_id} is already {known.status.value}", "order_id")
        is_algo: bool | None = None
        if known is not None:
            is_algo = known.order_type.is_algo
        elif order_type:
            try:
                is_algo = OrderType(order_type).is_algo
            except ValueError:
                is_algo = None
        gateway = await self.gateways.for_user(user_id, exchange)
        try:
            reply = await gateway.cancel_order(sym, order_id, is_algo=is_algo)
        except OrderNotFound:
            final = await gateway.fetch_order(sym, order_id=order_id)
            if final is not None and final.status.is_terminal:
                await self.record_report(user_id, exchange, final)
                raise Conflict(f"order {order_id} is already {final.status.value}", "order_id") from None
            raise NotFound(f"order {order_id} does not exist on {exchange}") from None
        if reply is not None:
            self.accounts.record_cancel(user_id, exchange, reply)
        return await self._cancel_confirmed(user_id, exchange, sym, order_id, gateway, reply or known)

    async def _cancel_confirmed(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        order_id: str,
        gateway: ExchangeGateway,
        fallback: Order | None,
    ) -> Order:
        """The exchange accepted the cancel; its own report records it: the account's stream within a moment,
        else a REST read of the order."""
        if self.accounts.tracked(user_id, exchange):
            deadline = time.monotonic() + CANCEL_CONFIRM_S
            while time.monotonic() < deadline:
                view = self.accounts.order(user_id, exchange, order_id)
                if view is not None and view.status.is_terminal:
                    return view
                await asyncio.sleep(0.02)
        final = await gateway.fetch_order(symbol, order_id=order_id)
        if final is not None:
            return await self.record_report(user_id, exchange, final)
        if fallback is not None:
            return fallback
        raise NotFound(f"order {order_id} does not exist on {exchange}")

    # -- queries ---------------------------------------------------------------------------------------
    async def get_order(self, user_id: str, exchange: str, order_id: str) -> Order:
        order = await self.store.orders.get(user_id, exchange, order_id)
        if order is None:
            raise NotFound(f"order {order_id!r} of user {user_id!r} on {exchange} not found")
        return order

    async def get_orders(
        self,
        user_id: str,
        exchange: str,
        symbol: str | None = None,
        status: OrderStatus | str | None = None,
        limit: int = 1000,
    ) -> list[Order]:
        wanted = OrderStatus(status) if status else None
        sym = native_symbol(exchange, symbol) if symbol else None
        orders: list[Order] = []
        if wanted is None or wanted.is_active:
            orders += await self.store.orders.list_open(user_id, exchange, sym)
        if wanted is None or wanted.is_terminal:
            closed = await self.store.orders.list_closed(user_id, exchange, limit)
            orders += [o for o in closed if sym is None or o.symbol == sym]
        if wanted is not None:
            orders = [o for o in orders if o.status is wanted]
        return orders
