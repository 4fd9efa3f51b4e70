"""HYPERRSI adapter over the paper gateway and a real Redis (migration guide phases 2 and 4)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from position_order_service.domain import Exchange, Order, Position, PositionSide
from position_order_service.integrations.consistency import check_consistency
from position_order_service.integrations.hyperrsi import HYPERRSIAdapter, take_profit_levels
from position_order_service.services.commands import CommandError, Conflict, NotFound
from tests.services.harness import SYMBOL, Harness, eventually

D = Decimal


def test_position_and_order_model_validation() -> None:
    """Phase 4 check 1: the shared models."""
    position = Position(
        user_id="test", exchange=Exchange.OKX, symbol=SYMBOL, side=PositionSide.LONG,
        size=Decimal("0.1"), entry_price=Decimal("45000"),
    )  # fmt: skip
    assert position.notional_value == Decimal("4500")
    assert position.is_open is True
    with pytest.raises(ValueError, match="trigger_price is required"):
        Order(
            user_id="t", exchange="okx", symbol=SYMBOL, side="sell", order_type="stop_loss", quantity=D("0.1")
        )


def test_take_profit_inputs() -> None:
    assert take_profit_levels(46000.0) == [(D("46000.0"), D(1))]
    assert take_profit_levels([(62000, 0.5), (64000, 0.5)]) == [
        (D("62000"), D("0.5")),
        (D("64000"), D("0.5")),
    ]
    levels = take_profit_levels([1, 2, 3])
    assert sum(r for _, r in levels) == 1 and levels[0][1] == levels[1][1]
    with pytest.raises(CommandError) as err:
        take_profit_levels([1, 2], tp_ratios=[0.5, 0.4])
    assert err.value.field == "tp_ratios"
    with pytest.raises(CommandError, match="one to 3"):
        take_profit_levels([1, 2, 3, 4])


async def _legacy(h: Harness, user: str, side: str = "long") -> dict[Any, Any]:
    return dict(await h.store.redis.hgetall(h.store.keys.legacy_hyperrsi_position(user, SYMBOL, side)))


async def _new(h: Harness, user: str, side: str = "long") -> dict[Any, Any]:
    return dict(await h.store.redis.hgetall(h.store.keys.position(user, "okx", SYMBOL, side)))


def _algos(h: Harness, key: str) -> list[tuple[str, Decimal | None, Decimal | None]]:
    """(kind, contracts, trigger) of the live algo orders; BTC-USDT-SWAP contract = 0.01 BTC."""
    out = []
    for a in h.engine.open_algos(key, SYMBOL):
        kind = "sl" if a.sl_trigger_px is not None else "tp"
        out.append((kind, a.sz, a.sl_trigger_px if kind == "sl" else a.tp_trigger_px))
    return sorted(out, key=lambda x: (x[0], x[2] or 0))


async def test_three_take_profits_fill_one_by_one_and_the_stop_shrinks(
    h: Harness, hyperrsi: HYPERRSIAdapter
) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    p = await hyperrsi.open_position(
        user_id="u1", symbol=SYMBOL, direction="long", size=0.1, leverage=5.0, stop_loss=55000.0,
        take_profit=[62000.0, 64000.0, 66000.0], tp_ratios=[0.5, 0.3, 0.2],
    )  # fmt: skip
    assert p.size == D("0.1") and p.leverage == 5 and p.stop_loss_price == D("55000.0")
    assert p.metadata["tp_prices"] == ["62000", "64000", "66000"]  # one spelling per number
    assert _algos(h, key) == [
        ("sl", D("10"), D("55000.0")),
        ("tp", D("5"), D("62000.0")),
        ("tp", D("3"), D("64000.0")),
        ("tp", D("2"), D("66000.0")),
    ]
    # phase 4 check 2: legacy and new keys agree
    legacy, new = await _legacy(h, "u1"), await _new(h, "u1")
    assert legacy[b"size"] == new[b"size"] == b"0.1"
    assert legacy[b"entry_price"] == new[b"entry_price"]
    assert legacy[b"sl_price"] == new[b"stop_loss_price"]

    async def stop_is(contracts: str) -> bool:
        return [a for a in _algos(h, key) if a[0] == "sl"] == [("sl", D(contracts), D("55000.0"))]

    h.price("62000")
    await eventually(lambda: stop_is("5"))
    h.price("64000")
    await eventually(lambda: stop_is("2"))
    await hyperrsi.wait_idle()
    assert (await hyperrsi.get_position("u1", SYMBOL, "long")).size == D("0.02")  # type: ignore[union-attr]
    assert (await _legacy(h, "u1"))[b"size"] == b"0.02"
    h.price("66000")

    async def flat() -> bool:
        return _algos(h, key) == [] and await hyperrsi.get_position("u1", SYMBOL, "long") is None

    await eventually(flat)
    await hyperrsi.wait_idle()
    assert await _legacy(h, "u1") == {}  # the legacy key goes with the position
    assert (await check_consistency(h.store.redis, h.store.keys, "u1")).ok


async def test_dca_twice_reaverages_replaces_protection_then_close(
    h: Harness, hyperrsi: HYPERRSIAdapter
) -> None:
    key = h.account("u2")
    h.price("60000")
    await h.track("u2")
    first = await hyperrsi.open_position_detailed("u2", SYMBOL, "long", 0.1, 10, 55000, 66000)
    h.price("62000")
    second = await hyperrsi.open_position_detailed("u2", SYMBOL, "long", 0.1, None, None, None, is_DCA=True)
    assert second.added and len(second.replaced_order_ids) == 2
    assert second.position.size == D("0.2")
    # protection kept its prices and now covers the whole position
    assert _algos(h, key) == [("sl", D("20"), D("55000.0")), ("tp", D("20"), D("66000.0"))]
    h.price("59000")
    third = await hyperrsi.open_position_detailed("u2", SYMBOL, "long", 0.2, stop_loss=54000, is_DCA=True)
    assert _algos(h, key) == [("sl", D("40"), D("54000.0")), ("tp", D("40"), D("66000.0"))]
    fills = [first.entry_order, second.entry_order, third.entry_order]
    expected = sum((o.filled_qty * o.avg_fill_price for o in fills), D(0)) / D("0.4")  # type: ignore[operator]
    venue = h.engine.position(key, SYMBOL)
    assert venue is not None and venue.avg_px == expected
    p = third.position
    assert p.size == D("0.4") and p.entry_price == expected
    assert p.metadata["dca_count"] == 2 and p.metadata["is_DCA"] is True
    legacy = await _legacy(h, "u2")
    assert legacy[b"is_DCA"] == b"true" and D(legacy[b"entry_price"].decode()) == expected
    assert D(legacy[b"sl_price"].decode()) == D("54000") and legacy[b"size"] == b"0.4"
    assert (await check_consistency(h.store.redis, h.store.keys, "u2")).ok

    await hyperrsi.close_position("u2", SYMBOL, "long", reason="Take profit")
    assert _algos(h, key) == []
    await eventually(lambda: _gone(hyperrsi, "u2"))
    assert await _legacy(h, "u2") == {}
    with pytest.raises(NotFound):
        await hyperrsi.close_position("u2", SYMBOL, "long", reason="again")


async def _gone(adapter: HYPERRSIAdapter, user: str, side: str = "long") -> bool:
    return await adapter.get_position(user, SYMBOL, side) is None


async def test_partial_close_resizes_the_stop(h: Harness, hyperrsi: HYPERRSIAdapter) -> None:
    key = h.account("u3")
    h.price("60000")
    await h.track("u3")
    await hyperrsi.open_position("u3", SYMBOL, "long", 0.1, stop_loss=55000)
    await hyperrsi.close_position("u3", SYMBOL, "long", reason="trim", size=0.04)
    assert _algos(h, key) == [("sl", D("6"), D("55000.0"))]


async def test_hedge_long_and_short_at_once(h: Harness, hyperrsi: HYPERRSIAdapter) -> None:
    key = h.account("u4", position_mode="long_short")
    h.price("60000")
    await h.track("u4")
    await hyperrsi.open_position("u4", SYMBOL, "long", 0.1, 5, stop_loss=55000, take_profit=65000)
    short = await hyperrsi.open_position(
        "u4", SYMBOL, "short", 0.05, 5, is_hedge=True, hedge_sl_price=63000, hedge_tp_price=57000
    )
    assert short.side is PositionSide.SHORT and short.metadata["is_hedge"] is True
    assert short.stop_loss_price == D("63000.0")
    assert h.engine.position(key, SYMBOL, "long").qty == D("10")  # type: ignore[union-attr]
    assert h.engine.position(key, SYMBOL, "short").qty == D("5")  # type: ignore[union-attr]
    by_side = sorted((a.pos_side.value, a.sz) for a in h.engine.open_algos(key, SYMBOL))
    assert by_side == [("long", D("10")), ("long", D("10")), ("short", D("5")), ("short", D("5"))]
    assert (await _legacy(h, "u4", "short"))[b"is_hedge"] == b"true"
    assert (await _legacy(h, "u4", "long"))[b"size"] == b"0.1"
    await hyperrsi.close_position("u4", SYMBOL, "short", reason="hedge done")
    assert sorted(a.pos_side.value for a in h.engine.open_algos(key, SYMBOL)) == ["long", "long"]
    await eventually(lambda: _gone(hyperrsi, "u4", "short"))
    assert (await hyperrsi.get_position("u4", SYMBOL, "long")).size == D("0.1")  # type: ignore[union-attr]


async def test_one_way_account_refuses_the_opposite_side(h: Harness, hyperrsi: HYPERRSIAdapter) -> None:
    key = h.account("u5")
    h.price("60000")
    await h.track("u5")
    await hyperrsi.open_position("u5", SYMBOL, "long", 0.1)
    with pytest.raises(Conflict, match="one-way mode"):
        await hyperrsi.open_position("u5", SYMBOL, "short", 0.1, is_hedge=True)
    assert len(h.engine.order_history(key, SYMBOL)) == 1


async def test_duplicate_entry_and_cooldown_are_refused(h: Harness, hyperrsi: HYPERRSIAdapter) -> None:
    key = h.account("u6")
    h.price("60000")
    await h.track("u6")
    await hyperrsi.set_cooldown("u6", 30)
    await hyperrsi.open_position("u6", SYMBOL, "long", 0.1)
    with pytest.raises(Conflict, match="already open") as err:
        await hyperrsi.open_position("u6", SYMBOL, "long", 0.1)
    assert err.value.field == "direction"
    await hyperrsi.close_position("u6", SYMBOL, "long", reason="signal")
    assert 25 < await hyperrsi.cooldown_left("u6", SYMBOL) <= 30
    with pytest.raises(Conflict, match="cooldown"):
        await hyperrsi.open_position("u6", SYMBOL, "long", 0.1)
    assert len(h.engine.order_history(key, SYMBOL)) == 2  # the entry and the close, nothing more
    await hyperrsi.set_cooldown("u6", 0)
    await h.store.redis.delete(h.store.keys.hyperrsi_cooldown("u6", SYMBOL))
    assert (await hyperrsi.open_position("u6", SYMBOL, "long", 0.1)).size == D("0.1")


async def test_bad_input_places_nothing(h: Harness, hyperrsi: HYPERRSIAdapter) -> None:
    key = h.account("u7")
    h.price("60000")
    await h.track("u7")
    with pytest.raises(CommandError, match="sum to 1") as err:
        await hyperrsi.open_position(
            "u7", SYMBOL, "long", 0.1, take_profit=[62000, 63000], tp_ratios=[0.5, 0.4]
        )
    assert err.value.field == "tp_ratios"
    with pytest.raises(CommandError, match="sum to 1"):
        await hyperrsi.open_position("u7", SYMBOL, "long", 0.1, take_profit=[(62000, 0.7), (63000, 0.4)])
    with pytest.raises(NotFound, match="DCA needs an open long position") as err:
        await hyperrsi.open_position("u7", SYMBOL, "long", 0.1, is_DCA=True)
    assert err.value.field == "is_DCA"
    with pytest.raises(CommandError, match="must be below the price") as err:
        await hyperrsi.open_position("u7", SYMBOL, "long", 0.1, stop_loss=61000)
    assert err.value.field == "stop_loss"
    for bad, field in (
        ({"direction": "up"}, "direction"),
        ({"leverage": 10.5}, "leverage"),
        ({"size": -1}, "size"),
    ):
        args = {"user_id": "u7", "symbol": SYMBOL, "direction": "long", "size": 0.1, **bad}
        with pytest.raises(CommandError) as err:
            await hyperrsi.open_position(**args)  # type: ignore[arg-type]
        assert err.value.field == field
    assert h.engine.order_history(key, SYMBOL) == [] and h.engine.open_orders(key, SYMBOL) == []
    assert h.engine.open_algos(key, SYMBOL) == []
    assert await h.store.positions.list("u7", "okx") == []


async def test_cancel_detects_algo_orders(h: Harness, hyperrsi: HYPERRSIAdapter) -> None:
    key = h.account("u8")
    h.price("60000")
    await h.track("u8")
    entry = await hyperrsi.open_position_detailed(
        "u8", SYMBOL, "long", 0.1, stop_loss=55000, take_profit=65000
    )
    assert entry.stop_loss_order is not None
    cancelled = await hyperrsi.cancel_order("u8", SYMBOL, entry.stop_loss_order.order_id, "stop_loss")
    assert cancelled.status.value == "cancelled"
    tp = entry.take_profit_orders[0]
    await hyperrsi.cancel_order("u8", SYMBOL, tp.order_id)  # kind not given: detected
    assert h.engine.open_algos(key, SYMBOL) == []


async def test_without_a_tracker_the_store_follows_the_exchange(
    h: Harness, hyperrsi: HYPERRSIAdapter
) -> None:
    """Inside a bot process no tracker runs: the adapter folds the exchange's answers into the store."""
    key = h.account("u9")
    h.price("60000")
    await hyperrsi.open_position("u9", SYMBOL, "short", 0.1, stop_loss=65000, take_profit=55000)
    h.price("58000")
    p = await hyperrsi.open_position("u9", SYMBOL, "short", 0.1, is_DCA=True)
    venue = h.engine.position(key, SYMBOL)
    assert venue is not None and p.size == D("0.2") and p.entry_price == venue.avg_px
    assert (await h.store.positions.get("u9", "okx", SYMBOL, "short")).size == D("0.2")  # type: ignore[union-attr]
    assert (await _legacy(h, "u9", "short"))[b"size"] == b"0.2"
    assert _algos(h, key) == [("sl", D("20"), D("65000.0")), ("tp", D("20"), D("55000.0"))]
    await hyperrsi.close_position("u9", SYMBOL, "short", reason="done")
    assert await h.store.positions.list("u9", "okx") == []
    assert await _legacy(h, "u9", "short") == {} and _algos(h, key) == []
