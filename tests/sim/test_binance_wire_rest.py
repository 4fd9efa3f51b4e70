"""The real ccxt.pro.binanceusdm client against the Binance wire front over REST: markets, orders, positions,
balances, leverage, position mode and the errors ccxt must map to its exception classes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest

from position_order_service.sim.engine import PositionMode, PosSide
from position_order_service.sim.server import SimServer
from tests.sim.binance_fixtures import BTC, ETH, KEY, ccxt_client, client, sim

__all__ = ["client", "sim"]


async def test_load_markets_exposes_binance_filters(client: Any) -> None:
    market = client.market(BTC)
    assert market["id"] == "BTCUSDT"
    assert market["swap"] and market["linear"] and market["settle"] == "USDT"
    assert market["contractSize"] == 1
    assert market["precision"]["price"] == 0.1
    assert market["precision"]["amount"] == 0.001
    assert market["limits"]["amount"] == {"min": 0.001, "max": 1000.0}
    assert market["limits"]["market"] == {"min": 0.001, "max": 120.0}
    assert market["limits"]["cost"]["min"] == 100.0
    assert "TRAILING_STOP_MARKET" in market["info"]["orderTypes"]
    assert set(client.symbols) >= {BTC, ETH, "SOL/USDT:USDT"}


async def test_market_order_fills_and_shows_in_position_balance_and_trades(client: Any) -> None:
    order = await client.create_order(BTC, "market", "buy", 0.01)
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert order["average"] == 60000.1  # taker buy at the ask (last + 1 tick)
    assert order["clientOrderId"].startswith("x-cvBPrNm9")

    fetched = await client.fetch_order(order["id"], BTC)
    assert fetched["status"] == "closed"
    assert fetched["amount"] == 0.01
    assert fetched["cost"] == pytest.approx(600.001)

    positions = await client.fetch_positions()
    assert len(positions) == 1
    pos = positions[0]
    assert (pos["symbol"], pos["side"], pos["contracts"], pos["entryPrice"]) == (BTC, "long", 0.01, 60000.1)
    assert pos["hedged"] is False
    assert pos["marginMode"] == "cross"

    balance = await client.fetch_balance()
    fee = 600.001 * 0.0004
    assert balance["USDT"]["used"] == pytest.approx(60.0)  # 600 notional / 10x at the mark
    assert balance["USDT"]["free"] == pytest.approx(100000 - fee - 60.0, abs=1e-6)

    trades = await client.fetch_my_trades(BTC)
    assert [(t["order"], t["side"], t["amount"], t["price"]) for t in trades] == [
        (order["id"], "buy", 0.01, 60000.1)
    ]
    assert trades[0]["fee"] == {"currency": "USDT", "cost": pytest.approx(fee)}
    assert trades[0]["takerOrMaker"] == "taker"


async def test_limit_order_rests_is_listed_fetched_and_cancelled(client: Any) -> None:
    order = await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    assert order["status"] == "open"
    assert order["price"] == 59000
    assert order["timeInForce"] == "GTC"

    open_orders = await client.fetch_open_orders(BTC)
    assert [o["id"] for o in open_orders] == [order["id"]]
    fetched = await client.fetch_order(order["id"], BTC)
    assert fetched["status"] == "open" and fetched["filled"] == 0

    cancelled = await client.cancel_order(order["id"], BTC)
    assert cancelled["status"] == "canceled"
    assert await client.fetch_open_orders(BTC) == []
    assert (await client.fetch_order(order["id"], BTC))["status"] == "canceled"
    filled = await client.create_order(BTC, "market", "buy", 0.01)
    history = await client.fetch_orders(BTC)  # GET allOrders
    assert [(o["id"], o["status"]) for o in history] == [(order["id"], "canceled"), (filled["id"], "closed")]
    assert [o["id"] for o in await client.fetch_closed_orders(BTC)] == [filled["id"]]
    resting = await client.create_order(BTC, "limit", "sell", 0.01, 61000)
    assert (await client.fetch_open_order(resting["id"], BTC))["status"] == "open"  # GET openOrder
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await client.fetch_open_order(filled["id"], BTC)


async def test_post_only_rests_as_gtx_and_is_refused_when_it_would_take(client: Any) -> None:
    resting = await client.create_order(BTC, "limit", "buy", 0.01, 59900, {"postOnly": True})
    assert resting["postOnly"] is True
    assert resting["timeInForce"] == "PO"
    assert resting["info"]["timeInForce"] == "GTX"
    with pytest.raises(ccxt.OrderNotFillable, match="-5022"):  # , a subclass of InvalidOrder
        await client.create_order(BTC, "limit", "buy", 0.01, 60100, {"postOnly": True})
    assert len(await client.fetch_open_orders(BTC)) == 1


async def test_reduce_only_needs_a_position_and_closes_it(client: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # ReduceOnly Order is rejected.
        await client.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    await client.create_order(BTC, "market", "buy", 0.02)
    closing = await client.create_order(BTC, "market", "sell", 0.05, None, {"reduceOnly": True})
    assert closing["reduceOnly"] is True
    assert closing["amount"] == 0.02  # capped at the position
    assert closing["status"] == "closed"
    assert await client.fetch_positions() == []


async def test_set_leverage_changes_margin_and_symbol_config(sim: SimServer, client: Any) -> None:
    reply = await client.set_leverage(25, BTC)
    assert reply == {"leverage": 25, "maxNotionalValue": "1000000000", "symbol": "BTCUSDT"}
    assert sim.ctx.engine.get_leverage(KEY, "BTCUSDT") == 25
    leverage = await client.fetch_leverage(BTC)
    assert (leverage["longLeverage"], leverage["shortLeverage"], leverage["marginMode"]) == (25, 25, "cross")
    await client.create_order(BTC, "market", "buy", 0.05)
    (pos,) = await client.fetch_positions()
    assert pos["initialMargin"] == pytest.approx(0.05 * 60000 / 25)
    with pytest.raises(
        ccxt.BadRequest, match="-4028"
    ):  # Leverage 200 is not valid (ccxt checks 1..125 itself)
        await client.set_leverage(100, "SOL/USDT:USDT")


async def test_set_margin_mode_and_position_mode_errors(sim: SimServer, client: Any) -> None:
    await client.set_margin_mode("isolated", ETH)
    assert sim.ctx.engine.account_by_key(KEY).get_margin_mode("ETHUSDT").value == "isolated"
    with pytest.raises(ccxt.MarginModeAlreadySet, match="-4046"):  # No need to change margin type.
        await client.set_margin_mode("isolated", ETH)
    with pytest.raises(ccxt.OperationRejected, match="-4059"):  # No need to change position side.
        await client.set_position_mode(False)
    await client.create_order(ETH, "market", "buy", 0.1)
    with pytest.raises(ccxt.OperationRejected, match="-4068"):  # position exists
        await client.set_position_mode(True)


async def test_hedged_mode_holds_long_and_short_at_once(sim: SimServer, client: Any) -> None:
    await client.set_position_mode(True)
    assert sim.ctx.engine.account_by_key(KEY).position_mode is PositionMode.LONG_SHORT
    assert (await client.fetch_position_mode())["hedged"] is True

    long_ = await client.create_order(BTC, "market", "buy", 0.02, None, {"hedged": True})
    short = await client.create_order(BTC, "market", "sell", 0.01, None, {"hedged": True})
    assert long_["info"]["positionSide"] == "LONG"
    assert short["info"]["positionSide"] == "SHORT"
    positions = {p["side"]: p for p in await client.fetch_positions()}
    assert set(positions) == {"long", "short"}
    assert positions["long"]["contracts"] == 0.02 and positions["long"]["hedged"] is True
    assert positions["short"]["contracts"] == 0.01 and positions["short"]["hedged"] is True

    # reduce-only in hedge mode: ccxt drops reduceOnly and sends the position side being closed
    await client.create_order(BTC, "market", "sell", 0.02, None, {"hedged": True, "reduceOnly": True})
    positions = await client.fetch_positions()
    assert [(p["side"], p["contracts"]) for p in positions] == [("short", 0.01)]
    assert sim.ctx.engine.position(KEY, "BTCUSDT", PosSide.SHORT).qty == Decimal("0.01")  # type: ignore[union-attr]

    with pytest.raises(ccxt.OperationRejected, match="-4061"):  # positionSide BOTH in hedge mode
        await client.create_order(BTC, "market", "buy", 0.01)


async def test_wrong_secret_and_unknown_key_raise_authentication_error(sim: SimServer) -> None:
    async with ccxt_client(sim, KEY, "not-the-secret") as bad:
        with pytest.raises(
            ccxt.AuthenticationError, match="-1022"
        ):  # Signature for this request is not valid.
            await bad.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await bad.create_order(BTC, "market", "buy", 0.01)
    async with ccxt_client(sim, "no-such-key", "whatever") as unknown:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):  # , HTTP 401
            await unknown.fetch_positions()
    assert sim.ctx.engine.open_orders(KEY) == []
    assert sim.ctx.engine.positions(KEY) == []


async def test_order_errors_map_to_ccxt_classes(sim: SimServer, client: Any) -> None:
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):  # Margin is insufficient.
        await client.create_order(BTC, "market", "buy", 100)
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # notional below MIN_NOTIONAL (60 USDT < 100)
        await client.create_order(BTC, "market", "buy", 0.001)
    with pytest.raises(
        ccxt.BadRequest, match="-4005"
    ):  # above MARKET_LOT_SIZE.maxQty: ccxt maps it to BadRequest
        await client.create_order(BTC, "market", "buy", 121)
    filled = await client.create_order(BTC, "market", "buy", 0.01)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):  # Unknown order sent.
        await client.cancel_order(filled["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):  # Order does not exist.
        await client.fetch_order("123", BTC)
    assert len(sim.ctx.engine.order_history(KEY)) == 1


async def test_fetch_ticker_and_price_endpoints(sim: SimServer, client: Any) -> None:
    sim.ctx.engine.set_price("BTCUSDT", Decimal("61000"))
    ticker = await client.fetch_ticker(BTC)
    assert (ticker["last"], ticker["open"], ticker["high"], ticker["low"]) == (61000, 60000, 61000, 60000)
    assert ticker["percentage"] == pytest.approx(1.667)
    mark = await client.fetch_mark_price(BTC) if client.has.get("fetchMarkPrice") else None
    if mark is not None:
        assert mark["markPrice"] == 61000
    server_time = await client.fetch_time()
    assert server_time > 1_600_000_000_000


async def test_create_orders_batch_and_cancel_orders(sim: SimServer, client: Any) -> None:
    placed = await client.create_orders(
        [
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 59000},
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 58000},
            {
                "symbol": BTC,
                "type": "limit",
                "side": "buy",
                "amount": 0.001,
                "price": 58000,
            },  # refused alone
        ]
    )
    rejected = [o for o in placed if o["status"] == "rejected"]
    opened = [o for o in placed if o["status"] == "open"]
    assert len(opened) == 2 and sorted(o["price"] for o in opened) == [58000, 59000]
    assert [o["info"]["code"] for o in rejected] == [-4164]  # notional 58 < MIN_NOTIONAL 100
    assert len(sim.ctx.engine.open_orders(KEY)) == 2
    cancelled = await client.cancel_orders([o["id"] for o in opened], BTC)
    assert [o["status"] for o in cancelled] == ["canceled", "canceled"]
    assert sim.ctx.engine.open_orders(KEY) == []


async def test_edit_order_amends_price_and_size(sim: SimServer, client: Any) -> None:
    order = await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    edited = await client.edit_order(order["id"], BTC, "limit", "buy", 0.02, 59100)
    assert (edited["id"], edited["amount"], edited["price"], edited["status"]) == (
        order["id"],
        0.02,
        59100,
        "open",
    )
    (live,) = sim.ctx.engine.open_orders(KEY)
    assert (live.sz, live.px) == (Decimal("0.02"), Decimal("59100"))
    with pytest.raises(ccxt.OperationRejected, match="-5027"):  # No need to modify the order.
        await client.edit_order(order["id"], BTC, "limit", "buy", 0.02, 59100)
    filled = await client.edit_order(order["id"], BTC, "limit", "buy", 0.02, 60100)  # crosses: takes at once
    assert filled["status"] == "closed"


async def test_dropped_reply_leaves_an_order_found_by_client_id(sim: SimServer, client: Any) -> None:
    from tests.sim.binance_fixtures import sim_post

    await sim_post(sim, "/sim/faults", {"drop_order_responses": 1})
    with pytest.raises(ccxt.NetworkError):
        await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "intent-42"})
    found = await client.fetch_order(None, BTC, {"clientOrderId": "intent-42"})
    assert (found["clientOrderId"], found["status"], found["price"]) == ("intent-42", "open", 59000)
