"""OrderManager and PositionManager over the paper gateway: safety of commands (SPEC 1, 7, 9)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from position_order_service.domain import OrderStatus
from position_order_service.exchanges.base import ExchangeUnavailable, InsufficientFunds
from position_order_service.services.commands import CommandError, Conflict, NotFound
from position_order_service.services.orders import OrderCommand

from .harness import SYMBOL, Harness, eventually

D = Decimal


async def test_market_and_limit_orders_rounded_to_tick_and_lot(h: Harness) -> None:
    h.account("u1")
    h.price("60000")
    await h.track("u1")
    o = await h.orders.create_order("u1", "okx", SYMBOL, "buy", "limit", D("0.01234"), price=D("59000.04"))
    assert o.quantity == D("0.0123") and o.price == D("59000.0")  # lot 0.0001 BTC (0.01 ct), tick 0.1
    assert not o.external
    with pytest.raises(CommandError, match="below the minimum") as err:
        await h.orders.create_order("u1", "okx", SYMBOL, "buy", "market", D("0.00001"))
    assert err.value.field == "quantity"
    with pytest.raises(CommandError, match="price is required"):
        await h.orders.create_order("u1", "okx", SYMBOL, "buy", "limit", D("0.01"))


async def test_stop_trigger_rounds_in_the_safe_direction(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    h.engine.place_order(key, SYMBOL, "buy", "10")
    await h.track("u1")
    o = await h.orders.create_order(
        "u1", "okx", SYMBOL, "sell", "stop_loss", D("0.1"), trigger_price=D("55000.01"), reduce_only=True
    )
    assert o.trigger_price == D("55000.1")  # a long's stop rounds up: it fires no later than asked


async def test_same_idempotency_key_never_creates_two_orders(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")

    def cmd() -> OrderCommand:
        return OrderCommand(
            user_id="u1", exchange="okx", symbol=SYMBOL, side="buy", order_type="market",  # type: ignore[arg-type]
            quantity=D("0.01"), idempotency_key="abc-123",
        )  # fmt: skip

    results = await asyncio.gather(*(h.orders.place(cmd()) for _ in range(5)))
    assert len({r.order_id for r in results}) == 1
    assert len(h.engine.order_history(key, SYMBOL)) == 1
    again = await h.orders.place(cmd())
    assert again.order_id == results[0].order_id


async def test_lost_reply_is_resolved_by_query_not_resend(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    await h.drop_next_order_reply("u1")
    o = await h.orders.create_order("u1", "okx", SYMBOL, "buy", "market", D("0.02"))
    assert o.quantity == D("0.02")
    assert len(h.engine.order_history(key, SYMBOL)) == 1  # exactly one order reached the exchange
    pos = h.engine.position(key, SYMBOL)
    assert pos is not None and pos.qty == D("2")


async def test_exchange_refusal_is_reported_and_leaves_nothing(h: Harness) -> None:
    h.account("u1", usdt="10")
    h.price("60000")
    await h.track("u1")
    with pytest.raises(InsufficientFunds):
        await h.orders.create_order("u1", "okx", SYMBOL, "buy", "market", D("1"))
    assert await h.store.orders.list_open("u1", "okx") == []
    types = [e["event_type"] for e in await h.events("u1")]
    assert "order.failed" in types


async def test_cancel_detects_algo_orders_and_refuses_finished_ones(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    h.engine.place_order(key, SYMBOL, "buy", "10")
    await h.track("u1")
    sl = await h.orders.create_order(
        "u1", "okx", SYMBOL, "sell", "stop_loss", D("0.1"), trigger_price=D("50000"), reduce_only=True
    )
    limit = await h.orders.create_order("u1", "okx", SYMBOL, "sell", "limit", D("0.05"), price=D("70000"))
    cancelled = await h.orders.cancel_order("u1", "okx", sl.order_id)  # no kind given: detected
    assert cancelled.status is OrderStatus.CANCELLED
    await h.orders.cancel_order("u1", "okx", limit.order_id, symbol=SYMBOL)
    assert h.engine.open_algos(key, SYMBOL) == [] and h.engine.open_orders(key, SYMBOL) == []
    with pytest.raises(Conflict, match="already cancelled"):
        await h.orders.cancel_order("u1", "okx", limit.order_id)
    with pytest.raises(NotFound):
        await h.orders.cancel_order("u1", "okx", "999999")
    with pytest.raises(NotFound):
        await h.orders.cancel_order("u1", "okx", "999999", symbol=SYMBOL)


async def test_open_position_places_protection_sized_to_the_fill_and_closes(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    res = await h.positions.open_position(
        "u1", "okx", SYMBOL, "long", D("0.1"), leverage=5, stop_loss=D("55000"),
        take_profit=[(D("62000"), D("0.5")), (D("64000"), D("0.3")), (D("66000"), D("0.2"))],
    )  # fmt: skip
    assert res.entry_order.filled_qty == D("0.1")
    assert res.stop_loss_order is not None and res.stop_loss_order.quantity == D("0.1")
    assert [o.quantity for o in res.take_profit_orders] == [D("0.05"), D("0.03"), D("0.02")]
    assert res.position.size == D("0.1") and res.position.stop_loss_price == D("55000.0")
    assert h.engine.get_leverage(key, SYMBOL) == 5
    close = await h.positions.close_position("u1", "okx", SYMBOL, "long", size=D("0.04"))
    assert close.filled_qty == D("0.04")
    await h.positions.close_position("u1", "okx", SYMBOL, "long")
    await eventually(lambda: _flat(h))
    assert h.engine.open_algos(key, SYMBOL) == []  # protection cancelled after the full close
    with pytest.raises(NotFound):
        await h.positions.close_position("u1", "okx", SYMBOL, "long")


async def _flat(h: Harness) -> bool:
    return await h.store.positions.list("u1", "okx") == []


async def test_take_profit_ratios_must_sum_to_one_and_nothing_is_placed(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    with pytest.raises(CommandError, match="sum to 1"):
        await h.positions.open_position(
            "u1",
            "okx",
            SYMBOL,
            "long",
            D("0.1"),
            take_profit=[(D("62000"), D("0.5")), (D("63000"), D("0.4"))],
        )
    assert h.engine.order_history(key, SYMBOL) == []


async def test_hedge_mode_open_both_sides_and_close_one(h: Harness) -> None:
    key = h.account("u1", position_mode="long_short")
    h.price("60000")
    await h.track("u1")
    await h.positions.open_position("u1", "okx", SYMBOL, "long", D("0.1"))
    await h.positions.open_position("u1", "okx", SYMBOL, "short", D("0.05"))
    await h.positions.close_position("u1", "okx", SYMBOL, "short")
    assert h.engine.position(key, SYMBOL, "long").qty == D("10")  # type: ignore[union-attr]
    short = h.engine.position(key, SYMBOL, "short")
    assert short is None or short.qty == 0


async def test_exchange_unreachable_twice_means_not_placed(h: Harness) -> None:
    h.account("u1")
    h.price("60000")
    await h.track("u1")
    gw = await h.gateways.for_user("u1", "okx")
    real_create = gw.create_order

    async def unreachable(request: object) -> object:
        raise ExchangeUnavailable("timeout")

    gw.create_order = unreachable  # type: ignore[method-assign,assignment]
    with pytest.raises(ExchangeUnavailable, match="not placed"):
        await h.orders.create_order("u1", "okx", SYMBOL, "buy", "market", D("0.01"))
    gw.create_order = real_create  # type: ignore[method-assign]
