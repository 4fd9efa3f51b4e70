"""Algo (conditional) orders through ccxt: stop-loss / take-profit / trailing stops on /fapi/v1/algoOrder,
triggered by price moves, cancelled, listed, and pushed as ALGO_UPDATE."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from position_order_service.sim.engine import AlgoState, AlgoType
from position_order_service.sim.server import SimServer
from tests.sim.binance_fixtures import BTC, KEY, client, sim, sim_post, user_stream_ready, watch_until

__all__ = ["client", "sim"]


async def _long(client: Any, amount: float = 0.01) -> None:
    await client.create_order(BTC, "market", "buy", amount)


async def test_stop_loss_is_an_algo_order_that_fires_on_a_fall(sim: SimServer, client: Any) -> None:
    await _long(client)
    sl = await client.create_order(
        BTC, "market", "sell", 0.01, None, {"stopLossPrice": 59000, "reduceOnly": True}
    )
    assert sl["status"] == "open"
    assert sl["triggerPrice"] == 59000
    assert sl["info"]["orderType"] == "STOP_MARKET"
    assert sl["info"]["algoType"] == "CONDITIONAL"
    assert sl["reduceOnly"] is True
    (algo,) = sim.ctx.engine.open_algos(KEY)
    assert algo.algo_id == sl["id"] and algo.sl_trigger_px == Decimal("59000") and algo.tp_trigger_px is None

    listed = await client.fetch_open_orders(BTC, params={"trigger": True})
    assert [o["id"] for o in listed] == [sl["id"]]
    assert await client.fetch_open_orders(BTC) == []  # algo orders are not in openOrders

    await sim_post(sim, "/sim/prices", {"symbol": "BTCUSDT", "price": "59500"})
    assert (await client.fetch_order(sl["id"], BTC, {"trigger": True}))["status"] == "open"
    await sim_post(sim, "/sim/prices", {"symbol": "BTCUSDT", "price": "58990"})
    fired = await client.fetch_order(sl["id"], BTC, {"trigger": True})
    assert fired["status"] == "closed"
    assert fired["info"]["algoStatus"] == "FINISHED"
    assert fired["info"]["actualOrderId"]
    assert await client.fetch_positions() == []
    child = await client.fetch_order(fired["info"]["actualOrderId"], BTC)
    assert child["status"] == "closed" and child["side"] == "sell" and child["filled"] == 0.01


async def test_take_profit_fires_on_a_rise_and_is_pushed_as_algo_update(sim: SimServer, client: Any) -> None:
    await _long(client)
    tp = await client.create_order(
        BTC, "market", "sell", 0.01, None, {"takeProfitPrice": 61000, "reduceOnly": True}
    )
    assert tp["info"]["orderType"] == "TAKE_PROFIT_MARKET"
    assert tp["takeProfitPrice"] == 61000

    watching = asyncio.create_task(
        watch_until(client.watch_orders, lambda o: o["id"] == tp["id"] and o["status"] == "closed")
    )
    await user_stream_ready(sim)
    sim.ctx.engine.set_price("BTCUSDT", Decimal("61000"))
    fired = await watching  # ALGO_UPDATE TRIGGERED (or FINISHED when the fill came in the same read)
    assert fired["info"]["X"] in ("TRIGGERED", "FINISHED")
    assert fired["info"]["o"] == "TAKE_PROFIT_MARKET"
    assert fired["triggerPrice"] == 61000
    child = await client.fetch_order(fired["info"]["ai"], BTC)
    assert (child["status"], child["side"], child["filled"]) == ("closed", "sell", 0.01)
    assert await client.fetch_positions() == []


async def test_limit_stop_and_close_position_variants(sim: SimServer, client: Any) -> None:
    await _long(client, 0.02)
    stop_limit = await client.create_order(
        BTC, "limit", "sell", 0.01, 58900, {"stopLossPrice": 59000, "reduceOnly": True}
    )
    assert stop_limit["info"]["orderType"] == "STOP"
    assert stop_limit["price"] == 58900
    close_all = await client.create_order(
        BTC, "market", "sell", 0.02, None, {"stopLossPrice": 58000, "closePosition": True}
    )
    assert close_all["info"]["closePosition"] is True
    algos = {a.algo_id: a for a in sim.ctx.engine.open_algos(KEY)}
    assert algos[close_all["id"]].close_position and algos[close_all["id"]].sz is None
    assert algos[stop_limit["id"]].sl_ord_px == Decimal("58900")

    sim.ctx.engine.set_price("BTCUSDT", Decimal("57900"))  # both fire: the limit stop fills first
    await asyncio.sleep(0)
    assert sim.ctx.engine.positions(KEY) == []
    assert sim.ctx.engine.open_algos(KEY) == []


async def test_trailing_percent_becomes_callback_rate_percent_and_trails(sim: SimServer, client: Any) -> None:
    await _long(client)
    trail = await client.create_order(
        BTC,
        "market",
        "sell",
        0.01,
        None,
        {"trailingPercent": 1.5, "trailingTriggerPrice": 61000, "reduceOnly": True},
    )
    assert trail["info"]["orderType"] == "TRAILING_STOP_MARKET"
    assert trail["info"]["callbackRate"] == "1.5"
    assert trail["info"]["activatePrice"] == "61000"
    (algo,) = sim.ctx.engine.open_algos(KEY)
    assert algo.algo_type is AlgoType.MOVE_ORDER_STOP
    assert algo.callback_ratio == Decimal("0.015")  # percent on the wire, fraction in the engine
    assert algo.active_px == Decimal("61000")

    engine = sim.ctx.engine
    for price in ("60500", "61000", "62000", "61100"):  # activates at 61000, peak 62000, stop 61070
        engine.set_price("BTCUSDT", Decimal(price))
        assert engine.open_algos(KEY), price
    engine.set_price("BTCUSDT", Decimal("61070"))
    assert engine.open_algos(KEY) == []
    assert engine.positions(KEY) == []
    done = await client.fetch_order(trail["id"], BTC, {"trigger": True})
    assert done["status"] == "closed"


async def test_trailing_callback_rate_range_is_enforced(sim: SimServer, client: Any) -> None:
    await _long(client)
    with pytest.raises(ccxt.BadRequest, match="-1130"):  # callbackRate outside 0.1..10
        await client.create_order(
            BTC, "market", "sell", 0.01, None, {"trailingPercent": 12, "reduceOnly": True}
        )
    assert sim.ctx.engine.open_algos(KEY) == []


async def test_cancel_algo_and_cancel_again(sim: SimServer, client: Any) -> None:
    await _long(client)
    sl = await client.create_order(
        BTC, "market", "sell", 0.01, None, {"stopLossPrice": 59000, "reduceOnly": True}
    )
    cancelled = await client.cancel_order(sl["id"], BTC, {"trigger": True})
    assert cancelled["id"] == sl["id"]
    assert sim.ctx.engine.get_algo(KEY, algo_id=sl["id"]).state is AlgoState.CANCELED
    assert (await client.fetch_order(sl["id"], BTC, {"trigger": True}))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await client.cancel_order(sl["id"], BTC, {"trigger": True})
    assert await client.fetch_open_orders(BTC, params={"trigger": True}) == []
    history = await client.fetch_orders(BTC, params={"trigger": True})  # GET allAlgoOrders
    assert [(o["id"], o["status"]) for o in history] == [(sl["id"], "canceled")]


async def test_stop_that_would_trigger_at_once_is_refused(sim: SimServer, client: Any) -> None:
    await _long(client)
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):  # Order would immediately trigger.
        await client.create_order(
            BTC, "market", "sell", 0.01, None, {"stopLossPrice": 60500, "reduceOnly": True}
        )
    assert sim.ctx.engine.open_algos(KEY) == []


async def test_mark_price_working_type(sim: SimServer, client: Any) -> None:
    await _long(client)
    sl = await client.create_order(
        BTC,
        "market",
        "sell",
        0.01,
        None,
        {"stopLossPrice": 59000, "reduceOnly": True, "workingType": "MARK_PRICE"},
    )
    assert sl["info"]["workingType"] == "MARK_PRICE"
    sim.ctx.engine.set_price("BTCUSDT", Decimal("58000"), mark=Decimal("59500"))  # last falls, mark does not
    assert sim.ctx.engine.open_algos(KEY)
    sim.ctx.engine.set_price("BTCUSDT", Decimal("58000"), mark=Decimal("58900"))
    assert sim.ctx.engine.open_algos(KEY) == []
