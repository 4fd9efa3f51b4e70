"""PositionManager: open, protect and close positions (migration guide's PositionManager; SPEC 1, 7, 9).

open_position sets leverage, enters with a market order, and places TP/SL sized to what actually filled.
If the protection cannot be placed, the entry is unwound (reduce-only close): a command never leaves an
unprotected position behind that the caller asked to protect. In one-way mode an entry on the side opposite
an open position is refused (409): it would net the position away, not open one.
Positions and the account's mode are read from the account (AccountView) once it has reconciled, else from
the exchange; what a command reads over REST goes back to the account as the exchange's report.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .. import metrics
from ..domain.enums import OrderType, PositionSide
from ..domain.models import Order, Position
from ..domain.symbols import InvalidSymbol, native_symbol
from ..exchanges.base import ExchangeGateway, GatewayError
from ..store import Store
from .account.ports import Accounts
from .commands import CommandError, Conflict, NotFound
from .gateways import GatewayProvider
from .orders import OrderCommand, OrderManager

log = logging.getLogger(__name__)
FILL_WAIT_S = 5.0
REST_POLL_S = 0.5  # while waiting for a fill the account's stream usually brings: ask the exchange this often


@dataclass
class OpenResult:
    position: Position
    entry_order: Order
    stop_loss_order: Order | None = None
    take_profit_orders: list[Order] = field(default_factory=list)


class PositionManager:
    def __init__(
        self, store: Store, gateways: GatewayProvider, accounts: Accounts, orders: OrderManager
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.accounts = accounts
        self.orders = orders

    async def _hedged(self, user_id: str, exchange: str, gateway: ExchangeGateway) -> bool:
        hedged = self.accounts.hedged(user_id, exchange)
        return hedged if hedged is not None else await gateway.fetch_position_mode()

    async def wait_filled(
        self, user_id: str, exchange: str, order: Order, within_s: float = FILL_WAIT_S
    ) -> Order:
        """The order once it stops changing (filled, or done with a partial fill): as the account's stream
        reports it, or (every REST_POLL_S, and without a tracked account) as the exchange's lookup does."""
        gateway = await self.gateways.for_user(user_id, exchange)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        tracked = self.accounts.tracked(user_id, exchange)
        asked = loop.time() if tracked else 0.0
        current = order
        while not current.status.is_terminal and loop.time() <= deadline:
            await asyncio.sleep(0.02 if tracked else 0.05)
            view = self.accounts.order(user_id, exchange, order.order_id)
            if view is not None:
                current = view
            if not current.status.is_terminal and loop.time() - asked >= REST_POLL_S:
                asked = loop.time()
                fresh = await gateway.fetch_order(order.symbol, order_id=order.order_id)
                if fresh is not None:
                    current = await self.orders.record_report(user_id, exchange, fresh)
        return current

    async def open_position(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: PositionSide | str,
        size: Decimal,
        leverage: int | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | list[tuple[Decimal, Decimal]] | None = None,
        metadata: dict[str, Any] | None = None,
        grid_level: int | None = None,
        idempotency_key: str | None = None,
    ) -> OpenResult:
        """`take_profit`: one price, or [(price, fraction of the filled size), ...] summing to 1."""
        async with metrics.timed(metrics.position_manager_latency, operation="open_position"):
            return await self._open(
                user_id, exchange, symbol, PositionSide(side), size, leverage, stop_loss, take_profit, metadata,
                grid_level, idempotency_key,
            )  # fmt: skip

    async def _open(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: PositionSide,
        size: Decimal,
        leverage: int | None,
        stop_loss: Decimal | None,
        take_profit: Decimal | list[tuple[Decimal, Decimal]] | None,
        metadata: dict[str, Any] | None,
        grid_level: int | None,
        idempotency_key: str | None,
    ) -> OpenResult:
        sym = self._symbol(exchange, symbol)
        gateway = await self.gateways.for_user(user_id, exchange)
        hedged = await self._hedged(user_id, exchange, gateway)
        market = gateway.market(sym)
        if not hedged:
            await self._refuse_netting(user_id, exchange, gateway, sym, side)
        if stop_loss is not None and stop_loss <= 0:
            raise CommandError("stop_loss must be positive", "stop_loss")
        tps = _tp_levels(take_profit)
        if leverage is not None:
            if not 1 <= leverage <= market.max_leverage:
                raise CommandError(f"leverage must be 1 to {market.max_leverage} on {sym}", "leverage")
            await gateway.set_leverage(sym, leverage, side if hedged else None)
        entry = await self.orders.place(
            OrderCommand(
                user_id=user_id,
                exchange=exchange,
                symbol=sym,
                side=side.entry_order_side,
                order_type=OrderType.MARKET,
                quantity=size,
                position_side=side if hedged else None,
                grid_level=grid_level,
                metadata={**(metadata or {}), "purpose": "entry"},
                idempotency_key=idempotency_key,
            )
        )
        entry = await self.wait_filled(user_id, exchange, entry)
        filled = entry.filled_qty
        result = OpenResult(
            position=await self._position(user_id, exchange, gateway, sym, side), entry_order=entry
        )
        if filled <= 0:
            raise CommandError(
                f"the entry order {entry.order_id} did not fill ({entry.status.value})", "size"
            )
        try:
            if stop_loss is not None:
                result.stop_loss_order = await self.protect(
                    user_id, exchange, sym, side, OrderType.STOP_LOSS, stop_loss, filled, hedged, grid_level
                )
            remaining = filled
            for i, (price, fraction) in enumerate(tps):
                qty = remaining if i == len(tps) - 1 else market.round_size(filled * fraction)
                remaining -= qty
                if qty > 0:
                    result.take_profit_orders.append(
                        await self.protect(
                            user_id,
                            exchange,
                            sym,
                            side,
                            OrderType.TAKE_PROFIT,
                            price,
                            qty,
                            hedged,
                            grid_level,
                        )
                    )
        except (GatewayError, CommandError) as exc:
            await self._unwind(user_id, exchange, sym, side, filled, hedged, result)
            raise CommandError(
                f"protection could not be placed ({exc}); the entry of {filled} was closed again", "stop_loss"
            ) from exc
        position = await self._position(user_id, exchange, gateway, sym, side)
        position = await self._annotate(
            user_id,
            exchange,
            position,
            stop_loss=result.stop_loss_order.trigger_price if result.stop_loss_order else None,
            take_profit=tps[0][0] if tps else None,
            grid_level=grid_level,
            metadata={
                **(metadata or {}),
                "entry_order_id": entry.order_id,
                "sl_order_id": result.stop_loss_order.order_id if result.stop_loss_order else None,
                "tp_order_ids": [o.order_id for o in result.take_profit_orders],
            },
        )
        result.position = position
        return result

    async def _refuse_netting(
        self, user_id: str, exchange: str, gateway: ExchangeGateway, symbol: str, side: PositionSide
    ) -> None:
        """One-way mode: an entry against an open position of the other side would reduce or flip it."""
        other = side.opposite
        if self.accounts.reconciled(user_id, exchange):
            open_other = self.accounts.position(user_id, exchange, symbol, other.value)
        else:
            live = [p for p in await gateway.fetch_positions([symbol]) if p.side is other and p.size > 0]
            open_other = live[0] if live else None
        if open_other is not None:
            raise Conflict(
                f"a {other.value} position of {open_other.size} is open on {symbol} and the account is in one-way "
                f"mode: a {side.value} entry would reduce it. Close it first or switch to hedge mode",
                "side",
            )

    async def protect(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: PositionSide,
        kind: OrderType,
        price: Decimal,
        qty: Decimal,
        hedged: bool,
        grid_level: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Order:
        """A reduce-only stop-loss or take-profit (algo) order for `qty` of the `side` position."""
        return await self.orders.place(
            OrderCommand(
                user_id=user_id,
                exchange=exchange,
                symbol=symbol,
                side=side.exit_order_side,
                order_type=kind,
                quantity=qty,
                trigger_price=price,
                reduce_only=True,
                position_side=side if hedged else None,
                grid_level=grid_level,
                metadata={"purpose": kind.value, **(metadata or {})},
            )
        )

    async def _unwind(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: PositionSide,
        filled: Decimal,
        hedged: bool,
        result: OpenResult,
    ) -> None:
        for o in [result.stop_loss_order, *result.take_profit_orders]:
            if o is not None:
                try:
                    await self.orders.cancel_order(user_id, exchange, o.order_id, symbol)
                except Exception:
                    log.exception("unwind: could not cancel %s", o.order_id, extra={"user_id": user_id})
        await self.orders.place(
            OrderCommand(
                user_id=user_id,
                exchange=exchange,
                symbol=symbol,
                side=side.exit_order_side,
                order_type=OrderType.MARKET,
                quantity=filled,
                reduce_only=True,
                position_side=side if hedged else None,
                metadata={"purpose": "unwind"},
            )
        )

    async def close_position(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: PositionSide | str,
        size: Decimal | None = None,
        reason: str | None = None,
        cancel_protection: bool = True,
    ) -> Order:
        """Reduce-only market order for `size` (default: all), hedge-mode aware."""
        async with metrics.timed(metrics.position_manager_latency, operation="close_position"):
            return await self._close(
                user_id, exchange, symbol, PositionSide(side), size, reason, cancel_protection
            )

    async def _close(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: PositionSide,
        size: Decimal | None,
        reason: str | None,
        cancel_protection: bool,
    ) -> Order:
        sym = self._symbol(exchange, symbol)
        gateway = await self.gateways.for_user(user_id, exchange)
        hedged = await self._hedged(user_id, exchange, gateway)
        live = [p for p in await gateway.fetch_positions([sym]) if p.side is side and p.size > 0]
        if not live:
            raise NotFound(f"no open {side.value} position on {sym} for user {user_id}")
        held = live[0].size
        qty = held if size is None else min(size, held)
        if qty <= 0:
            raise CommandError("size must be positive", "size")
        order = await self.orders.place(
            OrderCommand(
                user_id=user_id,
                exchange=exchange,
                symbol=sym,
                side=side.exit_order_side,
                order_type=OrderType.MARKET,
                quantity=qty,
                reduce_only=True,
                position_side=side if hedged else None,
                metadata={"purpose": "close", "reason": reason} if reason else {"purpose": "close"},
            )
        )
        order = await self.wait_filled(user_id, exchange, order)
        if cancel_protection and qty >= held:
            await self._cancel_protection(user_id, exchange, sym, side)
        return order

    async def _cancel_protection(self, user_id: str, exchange: str, symbol: str, side: PositionSide) -> None:
        """After a full close, cancel the reduce-only algo orders left for that side (they protect nothing)."""
        for o in await self.store.orders.list_open(user_id, exchange, symbol):
            if o.order_type.is_algo and o.reduce_only and o.side is side.exit_order_side:
                try:
                    await self.orders.cancel_order(user_id, exchange, o.order_id, symbol)
                except Exception:
                    log.info("protection %s already gone", o.order_id, extra={"user_id": user_id})

    async def get_positions(self, user_id: str, exchange: str, symbol: str | None = None) -> list[Position]:
        return await self.store.positions.list(
            user_id, exchange, self._symbol(exchange, symbol) if symbol else None
        )

    # -- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _symbol(exchange: str, symbol: str) -> str:
        try:
            return native_symbol(exchange, symbol)
        except InvalidSymbol as exc:
            raise CommandError(str(exc), "symbol") from None

    async def _position(
        self, user_id: str, exchange: str, gateway: ExchangeGateway, symbol: str, side: PositionSide
    ) -> Position:
        reported = [p for p in await gateway.fetch_positions([symbol]) if p.side is side and p.size > 0]
        if reported:  # the exchange's own report, to the account (the stream may not have shown it yet)
            await self.accounts.record_reports(user_id, exchange, positions=reported)
        known = self.accounts.position(user_id, exchange, symbol, side.value)
        if known is not None:
            return known
        stored = await self.store.positions.get(user_id, exchange, symbol, side.value)
        if stored is not None and stored.is_open:
            return stored
        if reported:
            return reported[0]
        return Position(
            user_id=user_id,
            exchange=exchange,
            symbol=symbol,
            side=side,
            size=Decimal(0),
            entry_price=Decimal(0),
            status="closed",
            closed_at=datetime.now(UTC),
        )

    async def _annotate(
        self,
        user_id: str,
        exchange: str,
        position: Position,
        *,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        grid_level: int | None,
        metadata: dict[str, Any],
    ) -> Position:
        """Our own fields on the position (the exchange does not know them)."""
        fields: dict[str, Any] = {}
        if stop_loss is not None:
            fields["stop_loss_price"] = stop_loss
        if take_profit is not None:
            fields["take_profit_price"] = take_profit
        if grid_level is not None:
            fields["grid_level"] = grid_level
        if not position.is_open:
            return position.model_copy(update={**fields, "metadata": {**position.metadata, **metadata}})
        annotated = await self.accounts.annotate(
            user_id, exchange, position.symbol, position.side.value, fields, metadata
        )
        return annotated or position


def _tp_levels(take_profit: Decimal | list[tuple[Decimal, Decimal]] | None) -> list[tuple[Decimal, Decimal]]:
    if take_profit is None:
        return []
    if isinstance(take_profit, Decimal):
        if take_profit <= 0:
            raise CommandError("take_profit must be positive", "take_profit")
        return [(take_profit, Decimal(1))]
    if not 1 <= len(take_profit) <= 3:
        raise CommandError("give one to three take-profit levels", "take_profit")
    total = sum((f for _, f in take_profit), Decimal(0))
    if total != 1:
        raise CommandError(f"take-profit size ratios must sum to 1 (they sum to {total})", "take_profit")
    for price, fraction in take_profit:
        if price <= 0 or fraction <= 0:
            raise CommandError("take-profit prices and ratios must be positive", "take_profit")
    return list(take_profit)
