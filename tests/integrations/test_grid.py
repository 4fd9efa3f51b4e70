"""GRID adapter over the paper gateway and a real Redis (migration guide phase 3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from position_order_service.integrations.consistency import check_consistency
from position_order_service.integrations.grid import GRIDAdapter
from position_order_service.services.commands import CommandError, Conflict, NotFound
from tests.services.harness import SYMBOL, Harness, eventually

D = Decimal


async def test_a_21_level_grid_is_placed_filled_and_closed_level_by_level(
    h: Harness, grid: GRIDAdapter
) -> None:
    key = h.account("g1")
    h.price("60000")
    await h.track("g1")
    prices = {level: D(59900 - 100 * level) for level in range(21)}
    orders = {}
    for level, price in prices.items():
        orders[level] = await grid.place_grid_order("g1", "okx", SYMBOL, level, "buy", price, 0.01)
        assert orders[level].grid_level == level
    assert len(h.engine.open_orders(key, SYMBOL)) == 21
    by_level = await grid.grid_orders("g1", "okx", SYMBOL)
    assert sorted(by_level) == list(range(21))
    with pytest.raises(Conflict):
        await grid.place_grid_order("g1", "okx", SYMBOL, 3, "buy", prices[3], 0.01)  # already placed

    h.price("57000")  # every level fills
    assert h.engine.open_orders(key, SYMBOL) == []
    for level, price in prices.items():
        filled = await h.positions.wait_filled("g1", "okx", orders[level])
        assert filled.avg_fill_price == price
        await grid.initialize_grid_position("g1", "okx", SYMBOL, level, float(price), 0.01, filled.order_id)
    levels = await grid.get_all_grid_positions("g1", "okx", SYMBOL)
    assert sorted(levels) == list(range(21))
    five = await grid.get_grid_position("g1", "okx", SYMBOL, 5)
    assert five is not None and five.entry_price == D("59400") and five.position_size == D("0.01")
    legacy = await h.store.redis.hgetall(h.store.keys.legacy_grid_level("okx", "g1", SYMBOL, 5))
    assert legacy[b"entry_price"] == b"59400" and legacy[b"position_size"] == b"0.01"
    assert legacy[b"order_id"] == orders[5].order_id.encode()
    report = await check_consistency(h.store.redis, h.store.keys, "g1")
    assert report.ok and report.grid_levels == 21

    venue = h.engine.position(key, SYMBOL)
    assert venue is not None and venue.qty == D("21")  # contracts of 0.01 BTC
    for level in range(21):
        closed = await grid.close_grid_position("g1", "okx", SYMBOL, level, close_on_exchange=True)
        assert not closed.is_open and closed.position_size == 0
        assert await grid.get_grid_position("g1", "okx", SYMBOL, level) is None
        assert not await h.store.redis.exists(h.store.keys.legacy_grid_level("okx", "g1", SYMBOL, level))
        left = h.engine.position(key, SYMBOL)
        assert left is not None and left.qty == D(20 - level)
    assert await grid.get_all_grid_positions("g1", "okx", SYMBOL) == {}
    with pytest.raises(NotFound):
        await grid.close_grid_position("g1", "okx", SYMBOL, 0)
    await eventually(lambda: _flat(h, "g1"))
    assert (await check_consistency(h.store.redis, h.store.keys, "g1")).ok


async def _flat(h: Harness, user: str) -> bool:
    return await h.store.positions.list(user, "okx") == []


async def test_is_price_placed_within_the_tolerance_only(h: Harness, grid: GRIDAdapter) -> None:
    h.account("g2")
    h.price("61000")
    await h.track("g2")
    await grid.place_grid_order("g2", "okx", SYMBOL, 7, "buy", 60000, 0.01)
    assert await grid.is_price_placed("okx", "g2", SYMBOL, 60000.0, None, 20)
    assert await grid.is_price_placed("okx", "g2", SYMBOL, 60018, None, 20)  # 18/60018 = 0.000299...
    assert not await grid.is_price_placed("okx", "g2", SYMBOL, 60018.01, None, 20)  # 0.00030007
    assert await grid.is_price_placed("okx", "g2", SYMBOL, 59982.01, None, 20)  # 17.99/59982.01
    assert not await grid.is_price_placed("okx", "g2", SYMBOL, 59981, None, 20)  # 19/59981
    assert await grid.is_price_placed("okx", "g2", SYMBOL, 50000, 7, 20)  # the level already has an order
    assert not await grid.is_price_placed("okx", "g2", SYMBOL, 50000, 8, 20)
    assert not await grid.is_price_placed("okx", "g2", "ETH-USDT-SWAP", 60000, 7, 20)


async def test_is_price_placed_without_a_tracker_asks_the_exchange(h: Harness, grid: GRIDAdapter) -> None:
    key = h.account("g3")
    h.price("61000")
    order = await grid.place_grid_order("g3", "okx", SYMBOL, 2, "buy", 60000, 0.01)
    assert await grid.is_price_placed("okx", "g3", SYMBOL, 50000, 2, 20)  # level kept from our store
    h.engine.cancel_order(key, order_id=order.order_id)  # gone behind the bot's back
    assert not await grid.is_price_placed("okx", "g3", SYMBOL, 60000, 2, 20)


async def test_a_level_outside_0_to_20_is_refused_and_nothing_is_written(
    h: Harness, grid: GRIDAdapter
) -> None:
    key = h.account("g4")
    h.price("60000")
    await h.track("g4")
    for bad in (21, -1, True, "5"):
        with pytest.raises(CommandError, match="level must be an integer from 0 to 20") as err:
            await grid.initialize_grid_position("g4", "okx", SYMBOL, bad, 45000.0, 0.05, "x")  # type: ignore[arg-type]
        assert err.value.field == "level"
    with pytest.raises(CommandError) as err:
        await grid.place_grid_order("g4", "okx", SYMBOL, 21, "buy", 59000, 0.01)
    assert err.value.field == "level"
    with pytest.raises(CommandError) as err:
        await grid.get_grid_position("g4", "okx", SYMBOL, 99)
    with pytest.raises(CommandError) as err:
        await grid.initialize_grid_position("g4", "kraken", SYMBOL, 1, 45000.0, 0.05, "x")
    assert err.value.field == "exchange"
    assert h.engine.open_orders(key, SYMBOL) == [] and h.engine.order_history(key, SYMBOL) == []
    keys = [k async for k in h.store.redis.scan_iter(match=f"{h.store.keys.prefix}*grid*")]
    assert keys == []


async def test_seed_example_records_a_level(h: Harness, grid: GRIDAdapter) -> None:
    """The service README's calls, as written (user id an int, floats)."""
    record = await grid.initialize_grid_position(
        user_id=123,
        exchange="okx",
        symbol="BTC-USDT-SWAP",
        level=5,
        price=45000.0,
        qty=0.05,
        order_id="grid_order_5",
    )
    assert record.entry_price == D("45000.0") and record.position_size == D("0.05")
    again = await grid.initialize_grid_position(
        123, "okx", "BTC/USDT:USDT", 5, 45100, 0.05, "grid_order_5b", grid_count=2
    )
    assert again.created_at == record.created_at and again.grid_count == 2
    got = await grid.get_grid_position(user_id=123, exchange="okx", symbol="BTC-USDT-SWAP", level=5)
    assert got is not None and got.entry_price == D("45100") and got.order_id == "grid_order_5b"
    assert list(await grid.get_all_grid_positions(user_id=123, exchange="okx", symbol="BTC-USDT-SWAP")) == [5]
    closed = await grid.close_grid_position(user_id=123, exchange="okx", symbol="BTC-USDT-SWAP", level=5)
    assert closed.status.value == "closed"
    kept = await grid.get_grid_position(123, "okx", SYMBOL, 5, include_closed=True)
    assert kept is not None and kept.closed_at is not None
    assert 0 < await h.store.redis.ttl(h.store.keys.grid_level("123", "okx", SYMBOL, 5))
