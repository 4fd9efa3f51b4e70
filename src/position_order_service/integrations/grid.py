"""GRID adapter: the grid bot's level bookkeeping (levels 0..20) and order-placement checks (service README 5,
migration guide phase 3) on the shared store and OrderManager.

Level records live in the new schema (store/grid.py) and, while DUAL_SCHEMA_WRITE is on, in the bot's legacy
`{exchange}:user:{user_id}:symbol:{symbol}:active_grid:{level}` hash, written in the same atomic step.
Grid levels travel on orders (`grid_level`), so `is_price_placed` answers from the open orders alone.
Exchange differences (OKX contracts, Binance quantities) are the gateways' business: nothing here branches on
the exchange.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from ..domain.enums import Exchange, OrderType, PositionSide
from ..domain.models import Order
from ..domain.reconcile import merge_order_report
from ..domain.symbols import InvalidSymbol, native_symbol
from ..services.commands import CommandError, Conflict, NotFound
from ..services.orders import OrderCommand
from ..store.grid import MAX_LEVEL, MIN_LEVEL, GridLevelRecord, GridRepository
from .context import CommandServices
from .hyperrsi import NumberLike, to_decimal, to_side

PRICE_TOLERANCE = Decimal("0.0003")  # relative: |order price - price| / price < 0.0003 (the bot's rule)
LEVELS = range(MIN_LEVEL, MAX_LEVEL + 1)


def check_level(level: object) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise CommandError(
            f"level must be an integer from {MIN_LEVEL} to {MAX_LEVEL}, got {level!r}", "level"
        )
    return level


def check_exchange(exchange: object) -> str:
    try:
        return Exchange(str(exchange)).value
    except ValueError:
        raise CommandError(f"unknown exchange {exchange!r}", "exchange") from None


class GRIDAdapter:
    def __init__(self, redis_client: Redis, services: CommandServices | None = None) -> None:
        """`services` None: build standalone ones from `redis_client` and Settings() (inside a bot)."""
        self._owns_services = services is None
        self.services = services or CommandServices.from_settings(redis_client)
        store = self.services.store
        self.grid = GridRepository(
            store.redis, store.keys, store.writer, dual_write=store.positions.dual_write
        )

    async def close(self) -> None:
        if self._owns_services:
            await self.services.close()

    @staticmethod
    def _args(user_id: str | int, exchange: str, symbol: str, level: object) -> tuple[str, str, str, int]:
        lv = check_level(level)
        ex = check_exchange(exchange)
        try:
            sym = native_symbol(ex, symbol)
        except InvalidSymbol as exc:
            raise CommandError(str(exc), "symbol") from None
        return str(user_id), ex, sym, lv

    # -- level records --------------------------------------------------------------------------------------
    async def initialize_grid_position(
        self,
        user_id: str | int,
        exchange: str,
        symbol: str,
        level: int,
        price: NumberLike,
        qty: NumberLike,
        order_id: str | int | None = None,
        *,
        side: str = "long",
        grid_count: int | None = None,
        pnl: NumberLike | None = None,
        execution_time: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> GridLevelRecord:
        """Record the level as holding `qty` bought (or sold) at `price` by `order_id`; replaces what the
        level held. Writes nothing when an argument is wrong."""
        uid, ex, sym, lv = self._args(user_id, exchange, symbol, level)
        entry = to_decimal(price, "price")
        size = to_decimal(qty, "qty", positive=False)
        if size < 0:
            raise CommandError("qty must not be negative", "qty")
        if grid_count is not None and (isinstance(grid_count, bool) or grid_count < 0):
            raise CommandError("grid_count must be a non-negative integer", "grid_count")
        known = await self.grid.get(uid, ex, sym, lv)
        now = datetime.now(UTC)
        record = GridLevelRecord(
            user_id=uid,
            exchange=ex,
            symbol=sym,
            level=lv,
            side=to_side(side),
            entry_price=entry,
            position_size=size,
            grid_count=grid_count if grid_count is not None else (known.grid_count if known else 0),
            order_id=None if order_id is None else str(order_id),
            pnl=None if pnl is None else to_decimal(pnl, "pnl", positive=False),
            execution_time=execution_time or now,
            metadata=dict(metadata or {}),
            created_at=known.created_at if known is not None and known.is_open else now,
            updated_at=max(now, known.updated_at) if known is not None else now,
        )
        await self.grid.save(record)
        return record

    async def get_grid_position(
        self, user_id: str | int, exchange: str, symbol: str, level: int, *, include_closed: bool = False
    ) -> GridLevelRecord | None:
        """The level's record while it is open (or recently closed, with include_closed); else None."""
        uid, ex, sym, lv = self._args(user_id, exchange, symbol, level)
        record = await self.grid.get(uid, ex, sym, lv)
        if record is None or (not record.is_open and not include_closed):
            return None
        return record

    async def get_all_grid_positions(
        self, user_id: str | int, exchange: str, symbol: str
    ) -> dict[int, GridLevelRecord]:
        """The open levels of the symbol (0..20), by level."""
        uid, ex, sym, _ = self._args(user_id, exchange, symbol, MIN_LEVEL)
        return {r.level: r for r in await self.grid.list_open(uid, ex, sym)}

    async def close_grid_position(
        self,
        user_id: str | int,
        exchange: str,
        symbol: str,
        level: int,
        *,
        close_on_exchange: bool = False,
        pnl: NumberLike | None = None,
    ) -> GridLevelRecord:
        """Mark the level closed (its legacy key goes too). With close_on_exchange, first send a reduce-only
        market order for the level's size (the bot's own take-profit order normally did that already)."""
        uid, ex, sym, lv = self._args(user_id, exchange, symbol, level)
        record = await self.grid.get(uid, ex, sym, lv)
        if record is None or not record.is_open:
            raise NotFound(f"grid level {lv} of {sym} on {ex} for user {uid} is not open", "level")
        if close_on_exchange and record.position_size > 0:
            gateway = await self.services.gateways.for_user(uid, ex)
            hedged = await gateway.fetch_position_mode()
            order = await self.services.orders.place(
                OrderCommand(
                    user_id=uid,
                    exchange=ex,
                    symbol=sym,
                    side=record.side.exit_order_side,
                    order_type=OrderType.MARKET,
                    quantity=record.position_size,
                    reduce_only=True,
                    position_side=record.side if hedged else None,
                    grid_level=lv,
                    metadata={"purpose": "grid_close", "strategy": "grid"},
                )
            )
            order = await self.services.positions.wait_filled(uid, ex, order)
            record = record.model_copy(
                update={"metadata": {**record.metadata, "close_order_id": order.order_id}}
            )
        if pnl is not None:
            record = record.model_copy(update={"pnl": to_decimal(pnl, "pnl", positive=False)})
        closed = self.grid.closed(record)
        await self.grid.save(closed)
        return closed

    # -- orders ---------------------------------------------------------------------------------------------
    async def open_orders(self, user_id: str | int, exchange: str, symbol: str) -> list[Order]:
        """Active orders of the symbol: the account's own view once it has reconciled; otherwise the exchange
        is asked, and our own annotations (grid level, metadata) are kept from the store."""
        uid, ex, sym, _ = self._args(user_id, exchange, symbol, MIN_LEVEL)
        accounts = self.services.accounts
        if accounts.reconciled(uid, ex):
            return [o for o in accounts.open_orders(uid, ex, sym) if o.status.is_active]
        stored = await self.services.store.orders.list_open(uid, ex, sym)
        gateway = await self.services.gateways.for_user(uid, ex)
        known = {o.order_id: o for o in stored}
        live = await gateway.fetch_open_orders(sym)
        out = []
        for o in live:
            k = known.get(o.order_id)
            merged = (merge_order_report(k, o) or k) if k is not None else o
            if merged.status.is_active:
                out.append(merged)
        return out

    async def is_price_placed(
        self,
        exchange: str,
        user_id: str | int,
        symbol: str,
        price: NumberLike,
        grid_level: int | None = None,
        grid_num: int | None = None,
    ) -> bool:
        """True if an open order of the symbol has a price within a relative 0.0003 of `price` (strictly
        less), or an open order already carries `grid_level`. `grid_num` (the legacy placed-index size)
        is accepted and not needed: the level travels on the orders."""
        p = to_decimal(price, "price")
        if grid_level is not None:
            check_level(grid_level)
        for order in await self.open_orders(user_id, exchange, symbol):
            if order.price is not None and abs(order.price - p) / p < PRICE_TOLERANCE:
                return True
            if grid_level is not None and order.grid_level == grid_level:
                return True
        return False

    async def place_grid_order(
        self,
        user_id: str | int,
        exchange: str,
        symbol: str,
        level: int,
        side: str,
        price: NumberLike,
        qty: NumberLike,
        *,
        reduce_only: bool = False,
        position_side: str | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        """A limit order for one level, carrying its grid level. Refused (409) when an order is already
        placed at that price (within the tolerance) or for that level."""
        uid, ex, sym, lv = self._args(user_id, exchange, symbol, level)
        px = to_decimal(price, "price")
        amount = to_decimal(qty, "qty")
        if await self.is_price_placed(ex, uid, sym, px, lv):
            raise Conflict(f"an order is already placed for grid level {lv} or near {px} on {sym}", "price")
        return await self.services.orders.place(
            OrderCommand(
                user_id=uid,
                exchange=ex,
                symbol=sym,
                side=side,  # type: ignore[arg-type]  # OrderCommand accepts the string values
                order_type=OrderType.LIMIT,
                quantity=amount,
                price=px,
                reduce_only=reduce_only,
                position_side=None if position_side is None else PositionSide(position_side),
                client_order_id=client_order_id,
                grid_level=lv,
                metadata={"purpose": "grid", "strategy": "grid"},
            )
        )

    async def grid_orders(self, user_id: str | int, exchange: str, symbol: str) -> dict[int, list[Order]]:
        """Open orders by grid level (orders without a level are left out)."""
        out: dict[int, list[Order]] = {}
        for o in await self.open_orders(user_id, exchange, symbol):
            if o.grid_level is not None and o.status.is_active:
                out.setdefault(o.grid_level, []).append(o)
        return out


__all__ = ["LEVELS", "PRICE_TOLERANCE", "GRIDAdapter", "check_level"]
