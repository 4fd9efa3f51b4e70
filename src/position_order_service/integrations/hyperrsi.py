"""HYPERRSI adapter: the RSI bot's position calls (service README 5, migration guide phase 2) on the shared
order and position managers. OKX only, as the bot trades.

- open_position: one market entry, a stop-loss algo order and one to three take-profit algo orders sized to
  the filled position (ratios sum to 1; rounding remainder to the last). A second entry on an open side is
  refused unless is_DCA or is_hedge; such an add lets the exchange re-average the entry and REPLACES the
  protection for the new total size: the old orders are cancelled before the new ones are live, so two
  stop-losses never stand at once (both could fire: the position closed twice over). If the new protection
  cannot be placed, the add is unwound and the old protection put back. A DCA without a position is refused
  before anything is sent.
- A per-user/symbol cooldown (seconds; constructor default, per-user override in Redis) refuses fresh entries
  while it runs; it starts at every fresh entry and every close. DCA and hedge entries are not held back.
- The stop-loss follows the position down: after a take-profit fills (or any partial close) it is replaced by
  one sized to what is left (the old one cancelled first); once flat, the remaining protection is cancelled
  (`sync_protection`, run by the adapter's bus subscription to order changes in the running service).
Floats are accepted (the bot passes floats) and read through str() into Decimal.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from redis.asyncio import Redis

from ..domain.enums import OrderSide, OrderType, PositionSide, PositionStatus
from ..domain.market import MarketInfo
from ..domain.messages import OrderChanged
from ..domain.models import Order, Position
from ..domain.symbols import InvalidSymbol, native_symbol
from ..exchanges.base import ExchangeGateway, GatewayError
from ..services.commands import CommandError, Conflict, NotFound
from ..services.orders import OrderCommand
from ..store.codec import enc_decimal
from .context import CommandServices

log = logging.getLogger(__name__)

EXCHANGE = "okx"
STRATEGY = "hyperrsi"
MAX_TAKE_PROFITS = 3
SL_TYPES = frozenset({OrderType.STOP_LOSS, OrderType.STOP_MARKET, OrderType.STOP_LIMIT})
TP_TYPES = frozenset({OrderType.TAKE_PROFIT})

NumberLike = Decimal | float | int | str
TakeProfitInput = NumberLike | Sequence[NumberLike] | Sequence[tuple[NumberLike, NumberLike]] | None


# -- input conversion ----------------------------------------------------------------------------------
def to_decimal(value: object, field_name: str, *, positive: bool = True) -> Decimal:
    """A number from the bot (float, int, str or Decimal) as a Decimal, read through str(); never binary."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise CommandError(f"{field_name} must be a number, got {value!r}", field_name)
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise CommandError(f"{field_name} must be a number, got {value!r}", field_name) from None
    if not d.is_finite():
        raise CommandError(f"{field_name} must be a finite number", field_name)
    if positive and d <= 0:
        raise CommandError(f"{field_name} must be positive, got {value!r}", field_name)
    return d


def optional_price(value: object, field_name: str) -> Decimal | None:
    """None and 0 mean "no price" (the bot passes 0.0 for an unset stop)."""
    if value is None:
        return None
    d = to_decimal(value, field_name, positive=False)
    if d == 0:
        return None
    if d < 0:
        raise CommandError(f"{field_name} must be positive, got {value!r}", field_name)
    return d


def to_leverage(value: object) -> int | None:
    if value is None:
        return None
    d = to_decimal(value, "leverage")
    if d != d.to_integral_value() or not 1 <= d <= 125:
        raise CommandError(f"leverage must be a whole number from 1 to 125, got {value!r}", "leverage")
    return int(d)


def to_side(direction: object) -> PositionSide:
    try:
        return PositionSide(str(direction).strip().lower())
    except ValueError:
        raise CommandError(f"direction must be 'long' or 'short', got {direction!r}", "direction") from None


def take_profit_levels(
    take_profit: TakeProfitInput, tp_ratios: Sequence[NumberLike] | None = None
) -> list[tuple[Decimal, Decimal]]:
    """One price, or up to three: [(price, ratio), ...] or [price, ...] with `tp_ratios` (equal parts when
    no ratios are given). Ratios are positive and sum to exactly 1."""
    if take_profit is None:
        return []
    if not isinstance(take_profit, Sequence) or isinstance(take_profit, str):
        price = optional_price(take_profit, "take_profit")
        return [] if price is None else [(price, Decimal(1))]
    items = list(take_profit)
    if not items:
        return []
    if len(items) > MAX_TAKE_PROFITS:
        raise CommandError(
            f"give one to {MAX_TAKE_PROFITS} take-profit levels, got {len(items)}", "take_profit"
        )
    pairs = [isinstance(x, Sequence) and not isinstance(x, str) for x in items]
    ratio_field = "take_profit"
    if all(pairs):
        if tp_ratios is not None:
            raise CommandError("give ratios either in the (price, ratio) pairs or in tp_ratios", "tp_ratios")
        raw: list[Any] = list(items)
        if any(len(x) != 2 for x in raw):
            raise CommandError("take-profit levels must be (price, ratio) pairs", "take_profit")
        prices = [to_decimal(p, "take_profit") for p, _ in raw]
        ratios = [to_decimal(r, "take_profit") for _, r in raw]
    elif not any(pairs):
        prices = [to_decimal(p, "take_profit") for p in items]
        if tp_ratios is None:
            share = Decimal(1) / len(prices)
            ratios = [share] * (len(prices) - 1)
            ratios.append(Decimal(1) - sum(ratios, Decimal(0)))
        else:
            ratio_field = "tp_ratios"
            if len(tp_ratios) != len(prices):
                raise CommandError(
                    f"{len(tp_ratios)} ratios for {len(prices)} take-profit prices", "tp_ratios"
                )
            ratios = [to_decimal(r, "tp_ratios") for r in tp_ratios]
    else:
        raise CommandError("mix of prices and (price, ratio) pairs", "take_profit")
    total = sum(ratios, Decimal(0))
    if total != 1:
        raise CommandError(f"take-profit size ratios must sum to 1 (they sum to {total})", ratio_field)
    return list(zip(prices, ratios, strict=True))


def split_sizes(total: Decimal, ratios: Sequence[Decimal], market: MarketInfo) -> list[Decimal]:
    """Sizes of the take-profit orders: rounded down to the lot, the remainder on the last."""
    sizes = [market.round_size(total * r) for r in ratios[:-1]]
    sizes.append(total - sum(sizes, Decimal(0)))
    return sizes


def protects(o: Order) -> PositionSide | None:
    """The position side a reduce-only protective order closes (None: not a closing order)."""
    if o.position_side is not None:
        return o.position_side if o.side is o.position_side.exit_order_side else None
    if o.reduce_only:
        return PositionSide.LONG if o.side is OrderSide.SELL else PositionSide.SHORT
    return None


@dataclass
class HyperrsiEntry:
    """What one open_position call did (the legacy API answers from it)."""

    position: Position
    entry_order: Order
    stop_loss_order: Order | None = None
    take_profit_orders: list[Order] = field(default_factory=list)
    added: bool = False  # a DCA/hedge add to an open position
    replaced_order_ids: list[str] = field(default_factory=list)


class HYPERRSIAdapter:
    def __init__(
        self,
        redis_client: Redis,
        services: CommandServices | None = None,
        *,
        cooldown_s: float = 0.0,
        listen: bool = True,
    ) -> None:
        """`services` None: build standalone ones from `redis_client` and Settings() (inside a bot)."""
        self._owns_services = services is None
        self.services = services or CommandServices.from_settings(redis_client)
        self.store = self.services.store
        self.cooldowns = self.store.cooldowns
        self.cooldown_s = cooldown_s
        # a lock per (user, symbol) while a call for it runs: held only by the calls using it (bounded memory)
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._listening = False
        self._busy = 0
        if listen:
            self.services.bus.subscribe("hyperrsi", self._on_order, OrderChanged)
            self._listening = True

    @property
    def enabled(self) -> bool:
        """USE_SHARED_MANAGER of this process: a bot takes its legacy path when it is off."""
        return self.services.settings.use_shared_manager

    async def close(self) -> None:
        if self._listening:
            self.services.bus.unsubscribe("hyperrsi")
            self._listening = False
        if self._owns_services:
            await self.services.close()

    async def wait_idle(self) -> None:
        """Wait for protection syncs started by order updates."""
        await self.services.bus.idle()

    def _lock(self, user_id: str, symbol: str) -> asyncio.Lock:
        lock = self._locks.get((user_id, symbol))
        if lock is None:
            lock = self._locks[(user_id, symbol)] = asyncio.Lock()
        return lock

    @staticmethod
    def _symbol(symbol: str) -> str:
        try:
            return native_symbol(EXCHANGE, symbol)
        except InvalidSymbol as exc:
            raise CommandError(str(exc), "symbol") from None

    async def _gateway(self, user_id: str) -> ExchangeGateway:
        return await self.services.gateways.for_user(user_id, EXCHANGE)

    async def _hedged(self, user_id: str, gateway: ExchangeGateway) -> bool:
        hedged = self.services.accounts.hedged(user_id, EXCHANGE)
        return hedged if hedged is not None else await gateway.fetch_position_mode()

    @staticmethod
    def _market(gateway: ExchangeGateway, symbol: str) -> MarketInfo:
        try:
            return gateway.market(symbol)
        except (KeyError, ValueError, GatewayError) as exc:
            raise CommandError(f"unknown symbol {symbol!r} on {EXCHANGE}: {exc}", "symbol") from None

    # -- cooldown -------------------------------------------------------------------------------------------
    async def set_cooldown(self, user_id: str | int, seconds: float) -> None:
        """The user's entry cooldown in seconds (0 = none), kept in Redis for every adapter instance."""
        if seconds < 0:
            raise CommandError("cooldown must not be negative", "cooldown_s")
        await self.cooldowns.set_seconds(str(user_id), seconds)

    async def cooldown_for(self, user_id: str) -> float:
        raw = await self.cooldowns.seconds(user_id)
        if raw is None:
            return self.cooldown_s
        try:
            return max(0.0, float(raw))
        except ValueError:
            return self.cooldown_s

    async def cooldown_left(self, user_id: str | int, symbol: str) -> float:
        """Seconds until a fresh entry on the symbol is allowed again (0 = now)."""
        return await self.cooldowns.left_ms(str(user_id), self._symbol(symbol)) / 1000

    async def _claim_cooldown(self, user_id: str, symbol: str) -> bool:
        seconds = await self.cooldown_for(user_id)
        if seconds <= 0:
            return False
        if not await self.cooldowns.claim(user_id, symbol, max(1, int(seconds * 1000))):
            left = await self.cooldowns.left_ms(user_id, symbol) / 1000
            raise Conflict(
                f"entry cooldown on {symbol} for user {user_id}: {left:.1f} s left "
                "(DCA and hedge entries are not held back)",
                "symbol",
            )
        return True

    async def _start_cooldown(self, user_id: str, symbol: str) -> None:
        seconds = await self.cooldown_for(user_id)
        if seconds > 0:
            await self.cooldowns.start(user_id, symbol, max(1, int(seconds * 1000)))

    # -- open -------------------------------------------------------------------------------------------
    async def open_position(
        self,
        user_id: str | int,
        symbol: str,
        direction: str,
        size: NumberLike,
        leverage: NumberLike | None = None,
        stop_loss: NumberLike | None = None,
        take_profit: TakeProfitInput = None,
        is_DCA: bool = False,
        is_hedge: bool = False,
        *,
        tp_ratios: Sequence[NumberLike] | None = None,
        hedge_tp_price: NumberLike | None = None,
        hedge_sl_price: NumberLike | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Position:
        """The seed's call; returns the position as it stands after the entry and its protection."""
        entry = await self.open_position_detailed(
            user_id, symbol, direction, size, leverage, stop_loss, take_profit, is_DCA, is_hedge,
            tp_ratios=tp_ratios, hedge_tp_price=hedge_tp_price, hedge_sl_price=hedge_sl_price,
            metadata=metadata, idempotency_key=idempotency_key,
        )  # fmt: skip
        return entry.position

    async def open_position_detailed(
        self,
        user_id: str | int,
        symbol: str,
        direction: str,
        size: NumberLike,
        leverage: NumberLike | None = None,
        stop_loss: NumberLike | None = None,
        take_profit: TakeProfitInput = None,
        is_DCA: bool = False,
        is_hedge: bool = False,
        *,
        tp_ratios: Sequence[NumberLike] | None = None,
        hedge_tp_price: NumberLike | None = None,
        hedge_sl_price: NumberLike | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> HyperrsiEntry:
        uid = str(user_id)
        side = to_side(direction)
        sym = self._symbol(symbol)
        qty = to_decimal(size, "size")
        lev = to_leverage(leverage)
        sl = optional_price(stop_loss, "stop_loss")
        tps = take_profit_levels(take_profit, tp_ratios)
        hedge_sl = optional_price(hedge_sl_price, "hedge_sl_price")
        hedge_tp = optional_price(hedge_tp_price, "hedge_tp_price")
        if is_hedge:  # a hedge entry protected by the hedge prices when no own prices are given
            sl = sl if sl is not None else hedge_sl
            tps = tps or ([(hedge_tp, Decimal(1))] if hedge_tp is not None else [])
        meta: dict[str, Any] = {**(metadata or {}), "strategy": STRATEGY, "is_hedge": bool(is_hedge)}
        meta["is_DCA"] = bool(is_DCA)
        if hedge_tp is not None:
            meta["hedge_tp_price"] = enc_decimal(hedge_tp)
        if hedge_sl is not None:
            meta["hedge_sl_price"] = enc_decimal(hedge_sl)

        async with self._lock(uid, sym):
            gateway = await self._gateway(uid)
            market = self._market(gateway, sym)
            hedged = await self._hedged(uid, gateway)
            live = {p.side: p for p in await gateway.fetch_positions([sym]) if p.size > 0}
            current, other = live.get(side), live.get(side.opposite)
            if current is not None and not (is_DCA or is_hedge):
                raise Conflict(
                    f"a {side.value} position of {current.size} is already open on {sym} for user {uid}; "
                    "pass is_DCA=True to add to it",
                    "direction",
                )
            if current is None and is_DCA:
                raise NotFound(
                    f"DCA needs an open {side.value} position on {sym} for user {uid}; none is open", "is_DCA"
                )
            if other is not None and not hedged:
                raise Conflict(
                    f"a {other.side.value} position is open on {sym} and the account is in one-way mode: "
                    f"a {side.value} entry would reduce it. Close it first or switch to hedge mode",
                    "direction",
                )
            if sl is not None:
                sl = market.stop_price(sl, side)
            tps = [(market.round_price(p), r) for p, r in tps]
            await self._check_prices(gateway, sym, side, sl, [p for p, _ in tps])
            if current is not None:
                return await self._add(
                    uid, sym, side, qty, lev, sl, tps, meta, hedged, gateway, market, current, idempotency_key
                )
            claimed = False if is_hedge else await self._claim_cooldown(uid, sym)
            if tps:
                meta["tp_prices"] = [enc_decimal(p) for p, _ in tps]
                meta["tp_ratios"] = [enc_decimal(r) for _, r in tps]
            try:
                result = await self.services.positions.open_position(
                    uid, EXCHANGE, sym, side, qty, leverage=lev, stop_loss=sl,
                    take_profit=tps or None, metadata=meta, idempotency_key=idempotency_key,
                )  # fmt: skip
            except BaseException:
                if claimed:
                    await self.cooldowns.clear(uid, sym)
                raise
            position = await self._refresh(
                uid,
                sym,
                side,
                fields={
                    "stop_loss_price": sl if result.stop_loss_order is not None else None,
                    "take_profit_price": tps[0][0] if result.take_profit_orders else None,
                },
                meta={
                    **result.position.metadata,
                    "last_filled_price": _s(result.entry_order.avg_fill_price),
                },
            )
            return HyperrsiEntry(
                position, result.entry_order, result.stop_loss_order, result.take_profit_orders
            )

    async def _check_prices(
        self,
        gateway: ExchangeGateway,
        symbol: str,
        side: PositionSide,
        sl: Decimal | None,
        tps: list[Decimal],
    ) -> None:
        """Refuse protection on the wrong side of the price before anything is sent."""
        if sl is None and not tps:
            return
        try:
            price = (await gateway.fetch_ticker(symbol)).last
        except GatewayError:
            return  # the exchange will judge; a refused protection unwinds the entry
        long = side is PositionSide.LONG
        if sl is not None and (sl >= price if long else sl <= price):
            where = "below" if long else "above"
            raise CommandError(
                f"stop_loss {sl} must be {where} the price {price} for a {side.value}", "stop_loss"
            )
        for tp in tps:
            if tp <= price if long else tp >= price:
                where = "above" if long else "below"
                raise CommandError(
                    f"take_profit {tp} must be {where} the price {price} for a {side.value}", "take_profit"
                )

    async def _add(
        self,
        uid: str,
        sym: str,
        side: PositionSide,
        qty: Decimal,
        lev: int | None,
        sl: Decimal | None,
        tps: list[tuple[Decimal, Decimal]],
        meta: dict[str, Any],
        hedged: bool,
        gateway: ExchangeGateway,
        market: MarketInfo,
        current: Position,
        idempotency_key: str | None,
    ) -> HyperrsiEntry:
        """DCA (or a hedge add): enter more, then protect the whole new size and drop the old protection."""
        old = await self._protection(gateway, sym, side)
        old_sls = [o for o in old if o.order_type in SL_TYPES]
        old_tps = [o for o in old if o.order_type in TP_TYPES]
        if sl is None and old_sls:
            sl = old_sls[0].trigger_price
        if not tps and old_tps:  # keep the open take-profits' prices and their share of the size
            ordered = sorted(old_tps, key=lambda o: o.trigger_price or 0, reverse=side is PositionSide.SHORT)
            total_old = sum((o.quantity for o in ordered), Decimal(0))
            ratios = [o.quantity / total_old for o in ordered[:-1]]
            ratios.append(Decimal(1) - sum(ratios, Decimal(0)))
            tps = [(o.trigger_price or Decimal(0), r) for o, r in zip(ordered, ratios, strict=True)]
        if lev is not None and lev != current.leverage:
            await gateway.set_leverage(sym, lev, side if hedged else None)
        entry = await self.services.orders.place(
            OrderCommand(
                user_id=uid,
                exchange=EXCHANGE,
                symbol=sym,
                side=side.entry_order_side,
                order_type=OrderType.MARKET,
                quantity=qty,
                position_side=side if hedged else None,
                metadata={**meta, "purpose": "dca"},
                idempotency_key=idempotency_key,
            )
        )
        entry = await self.services.positions.wait_filled(uid, EXCHANGE, entry)
        if entry.filled_qty <= 0:
            raise CommandError(f"the DCA order {entry.order_id} did not fill ({entry.status.value})", "size")
        total = sum((p.size for p in await gateway.fetch_positions([sym]) if p.side is side), Decimal(0))
        # the old protection goes first: a new stop-loss beside the old one could fire with it
        for o in old:
            await self._cancel_quietly(uid, sym, o)
        placed: list[Order] = []
        new_sl: Order | None = None
        new_tps: list[Order] = []
        try:
            if sl is not None:
                new_sl = await self._protect(uid, sym, side, OrderType.STOP_LOSS, sl, total, hedged)
                placed.append(new_sl)
            if tps:
                for (price, _), part in zip(
                    tps, split_sizes(total, [r for _, r in tps], market), strict=True
                ):
                    if part > 0:
                        o = await self._protect(uid, sym, side, OrderType.TAKE_PROFIT, price, part, hedged)
                        placed.append(o)
                        new_tps.append(o)
        except (GatewayError, CommandError) as exc:
            for o in placed:
                await self._cancel_quietly(uid, sym, o)
            await self.services.orders.place(
                OrderCommand(
                    user_id=uid,
                    exchange=EXCHANGE,
                    symbol=sym,
                    side=side.exit_order_side,
                    order_type=OrderType.MARKET,
                    quantity=entry.filled_qty,
                    reduce_only=True,
                    position_side=side if hedged else None,
                    metadata={"purpose": "unwind", "strategy": STRATEGY},
                )
            )
            await self._restore(uid, sym, side, old, hedged)
            raise CommandError(
                f"the new protection could not be placed ({exc}); the added {entry.filled_qty} was closed "
                "again and the previous protection put back",
                "stop_loss",
            ) from exc
        stored = await self.store.positions.get(uid, EXCHANGE, sym, side.value)
        prior = stored.metadata if stored is not None and stored.is_open else current.metadata
        update_meta: dict[str, Any] = {
            **{k: v for k, v in meta.items() if k not in ("is_hedge", "is_DCA")},
            "is_DCA": True,
            "is_hedge": bool(prior.get("is_hedge")) or bool(meta.get("is_hedge")),
            "dca_count": int(prior.get("dca_count") or 0) + 1,
            "entry_order_id": entry.order_id,
            "last_filled_price": _s(entry.avg_fill_price),
            "sl_order_id": new_sl.order_id if new_sl else None,
            "tp_order_ids": [o.order_id for o in new_tps],
            "tp_prices": [enc_decimal(p) for p, _ in tps],
            "tp_ratios": [enc_decimal(r) for _, r in tps],
        }
        position = await self._refresh(
            uid,
            sym,
            side,
            fields={
                "stop_loss_price": sl if new_sl else None,
                "take_profit_price": tps[0][0] if new_tps else None,
            },
            meta=update_meta,
        )
        return HyperrsiEntry(position, entry, new_sl, new_tps, True, [o.order_id for o in old])

    async def _restore(self, uid: str, sym: str, side: PositionSide, old: list[Order], hedged: bool) -> None:
        """Put cancelled protection back as it was (same triggers and sizes): best effort, each logged."""
        for o in old:
            if o.trigger_price is None:
                continue
            kind = OrderType.STOP_LOSS if o.order_type in SL_TYPES else OrderType.TAKE_PROFIT
            try:
                await self._protect(uid, sym, side, kind, o.trigger_price, o.quantity, hedged)
            except (GatewayError, CommandError) as exc:
                log.error("could not restore the %s at %s on %s: %s", kind.value, o.trigger_price, sym, exc,
                          extra={"user_id": uid})  # fmt: skip

    async def _protect(
        self,
        uid: str,
        sym: str,
        side: PositionSide,
        kind: OrderType,
        price: Decimal,
        qty: Decimal,
        hedged: bool,
    ) -> Order:
        return await self.services.positions.protect(
            uid, EXCHANGE, sym, side, kind, price, qty, hedged, metadata={"strategy": STRATEGY}
        )

    async def _protection(self, gateway: ExchangeGateway, sym: str, side: PositionSide) -> list[Order]:
        """Open stop-loss and take-profit orders closing `side`, as the exchange lists them (the truth)."""
        return [
            o
            for o in await gateway.fetch_open_orders(sym)
            if o.order_type in SL_TYPES | TP_TYPES and o.status.is_active and protects(o) is side
        ]

    async def _cancel_quietly(self, uid: str, sym: str, o: Order) -> None:
        try:
            await self.services.orders.cancel_order(uid, EXCHANGE, o.order_id, sym, o.order_type.value)
        except (CommandError, GatewayError) as exc:
            log.info("order %s already gone: %s", o.order_id, exc, extra={"user_id": uid})

    # -- keeping the stop-loss sized to the position ------------------------------------------------------
    async def _on_order(self, event: OrderChanged) -> None:
        """Bus subscriber: a take-profit or stop-loss of ours filled -> resize what protects the rest."""
        order, previous = event.order, event.previous
        if order.exchange.value != EXCHANGE or not order.status.is_terminal:
            return
        if order.order_type not in SL_TYPES | TP_TYPES or order.filled_qty <= 0:
            return
        if previous is not None and previous.status is order.status:
            return
        side = protects(order)
        if side is not None:
            await self._sync_if_ours(order.user_id, order.symbol, side)

    async def _sync_if_ours(self, uid: str, sym: str, side: PositionSide) -> None:
        stored = await self.store.positions.get(uid, EXCHANGE, sym, side.value)
        if stored is None or stored.metadata.get("strategy") != STRATEGY:
            return
        try:
            await self.sync_protection(uid, sym, side.value)
        except Exception:
            log.exception("could not resize the protection of %s %s", sym, side.value, extra={"user_id": uid})

    async def sync_protection(self, user_id: str | int, symbol: str, direction: str) -> Order | None:
        """Make the stop-loss match the live size: replace it when the size changed; when the position is
        gone, cancel the protection left. Returns the new stop-loss order, if one was placed."""
        uid, sym, side = str(user_id), self._symbol(symbol), to_side(direction)
        async with self._lock(uid, sym):
            return await self._sync_locked(uid, sym, side)

    async def _sync_locked(self, uid: str, sym: str, side: PositionSide) -> Order | None:
        gateway = await self._gateway(uid)
        size = sum((p.size for p in await gateway.fetch_positions([sym]) if p.side is side), Decimal(0))
        prot = await self._protection(gateway, sym, side)
        if size <= 0:
            for o in prot:
                await self._cancel_quietly(uid, sym, o)
            await self._refresh(uid, sym, side)
            return None
        sls = [o for o in prot if o.order_type in SL_TYPES]
        if not sls or (len(sls) == 1 and sls[0].quantity == size):
            return None
        trigger = sls[0].trigger_price
        assert trigger is not None  # stop orders carry their trigger (model rule)
        hedged = await self._hedged(uid, gateway)
        for o in sls:  # the old stop-loss goes before the new one is live: never two that could both fire
            await self._cancel_quietly(uid, sym, o)
        try:
            new_sl = await self._protect(uid, sym, side, OrderType.STOP_LOSS, trigger, size, hedged)
        except (GatewayError, CommandError):
            await self._restore(uid, sym, side, sls[:1], hedged)
            raise
        tps = [o.order_id for o in prot if o.order_type in TP_TYPES]
        await self._refresh(uid, sym, side, meta={"sl_order_id": new_sl.order_id, "tp_order_ids": tps})
        return new_sl

    # -- close and cancel ---------------------------------------------------------------------------------
    async def close_position(
        self,
        user_id: str | int,
        symbol: str,
        direction: str,
        reason: str | None = None,
        size: NumberLike | None = None,
    ) -> Order:
        """Reduce-only market close of `size` (default: all). A partial close resizes the stop-loss; a full
        close cancels the protection left. Starts the entry cooldown."""
        uid, sym, side = str(user_id), self._symbol(symbol), to_side(direction)
        qty = None if size is None else to_decimal(size, "size")
        async with self._lock(uid, sym):
            order = await self.services.positions.close_position(
                uid, EXCHANGE, sym, side, size=qty, reason=reason, cancel_protection=False
            )
            await self._start_cooldown(uid, sym)
            await self._sync_locked(uid, sym, side)
            if reason:
                await self._refresh(uid, sym, side, meta={"close_reason": reason})
            return order

    async def cancel_order(
        self, user_id: str | int, symbol: str, order_id: str, order_type: str | None = None
    ) -> Order:
        """Cancel a regular or algo (stop/trigger) order; the kind is detected by the OrderManager."""
        return await self.services.orders.cancel_order(
            str(user_id), EXCHANGE, str(order_id), self._symbol(symbol), order_type
        )

    async def get_position(self, user_id: str | int, symbol: str, direction: str) -> Position | None:
        p = await self.store.positions.get(
            str(user_id), EXCHANGE, self._symbol(symbol), to_side(direction).value
        )
        return p if p is not None and p.is_open else None

    # -- the stored position -----------------------------------------------------------------------------
    async def _refresh(
        self,
        uid: str,
        sym: str,
        side: PositionSide,
        *,
        fields: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Position:
        """Fold the exchange's view of the position into the store (through the tracker when one runs),
        with our annotations (SL/TP prices, metadata) on top."""
        gateway = await self._gateway(uid)
        reported = [p for p in await gateway.fetch_positions([sym]) if p.side is side and p.size > 0]
        accounts = self.services.accounts
        # the exchange's own report, to the account (flat: it lists no such position)
        await accounts.record_reports(
            uid, EXCHANGE, positions=reported, flat=[] if reported else [(sym, side.value)]
        )
        current = accounts.position(uid, EXCHANGE, sym, side.value)
        current = current or await self.store.positions.get(uid, EXCHANGE, sym, side.value)
        if current is None:
            return reported[0] if reported else _flat(uid, sym, side, datetime.now(UTC))
        if current.is_open and (fields or meta):
            annotated = await accounts.annotate(uid, EXCHANGE, sym, side.value, dict(fields or {}), meta)
            return annotated or _annotated(current, fields, meta)
        return current


def _annotated(p: Position, fields: dict[str, Any] | None, meta: dict[str, Any] | None) -> Position:
    update: dict[str, Any] = dict(fields or {})
    if meta:
        update["metadata"] = {**p.metadata, **meta}
    return p.model_copy(update=update)


def _flat(uid: str, sym: str, side: PositionSide, now: datetime) -> Position:
    return Position(
        user_id=uid,
        exchange=EXCHANGE,
        symbol=sym,
        side=side,
        size=Decimal(0),
        entry_price=Decimal(0),
        status=PositionStatus.CLOSED,
        closed_at=now,
        updated_at=now,
    )


def _s(d: Decimal | None) -> str | None:
    return None if d is None else enc_decimal(d)


__all__ = ["HYPERRSIAdapter", "HyperrsiEntry", "split_sizes", "take_profit_levels", "to_decimal"]
