"""The OKX wire front against the REAL ccxt.pro.okx client over loopback (REST + WebSocket)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import ccxt
import pytest

from position_order_service.exchanges.ccxt_factory import make_client
from position_order_service.sim.server import SimServer

try:
    from .okx_fixtures import (
        BTC,
        BTC_ID,
        ETH,
        KEY,
        PASS,
        Collector,
        client,
        client_b,
        http,
        okx_server,
        sim_post,
        wait_subscribed,
    )
except ImportError:  # tests/sim is not a package: pytest put its directory on sys.path
    from okx_fixtures import (  # type: ignore[no-redef]
        BTC,
        BTC_ID,
        ETH,
        KEY,
        PASS,
        Collector,
        client,
        client_b,
        http,
        okx_server,
        sim_post,
        wait_subscribed,
    )

__all__ = ["client", "client_b", "http", "okx_server"]  # fixtures used by name


def _open_pos(positions: list[dict[str, Any]], symbol: str = BTC) -> list[dict[str, Any]]:
    return [p for p in positions if p["symbol"] == symbol and p["contracts"]]


# ------------------------------------------------------------------ markets and market data


async def test_load_markets_contract_sizes(client: Any) -> None:
    btc, eth = client.markets[BTC], client.markets[ETH]
    assert btc["id"] == BTC_ID and btc["swap"] and btc["linear"] and btc["contract"]
    assert btc["contractSize"] == 0.01 and eth["contractSize"] == 0.1
    assert btc["precision"] == {"amount": 0.01, "price": 0.1}
    assert btc["limits"]["amount"]["min"] == 0.01
    assert btc["limits"]["leverage"]["max"] == 100
    assert btc["settle"] == "USDT" and btc["active"]


async def test_fetch_ticker_tickers_time_and_book(client: Any) -> None:
    t = await client.fetch_ticker(BTC)
    assert (t["last"], t["bid"], t["ask"]) == (60000, 59999.9, 60000.1)
    tickers = await client.fetch_tickers([BTC, ETH])
    assert tickers[ETH]["last"] == 3000
    assert abs(await client.fetch_time() - client.milliseconds()) < 5000
    book = await client.fetch_order_book(BTC)
    assert book["bids"][0][0] == 59999.9 and book["asks"][0][0] == 60000.1
    mark = await client.fetch_mark_price(BTC)
    assert mark["markPrice"] == 60000


async def test_watch_ticker_follows_prices(
    client: Any, okx_server: SimServer, http: aiohttp.ClientSession
) -> None:
    first = await asyncio.wait_for(client.watch_ticker(BTC), 5)  # OKX pushes the current ticker at once
    assert first["last"] == 60000
    watch = Collector(lambda: client.watch_ticker(BTC))
    await sim_post(http, okx_server, "/sim/prices", {"symbol": BTC_ID, "price": "60123.4"})
    t = await watch.wait_for(lambda t: t["last"] == 60123.4)
    assert t["bid"] == 60123.3 and t["ask"] == 60123.5 and t["high"] == 60123.4
    await watch.stop()


# ------------------------------------------------------------------ orders


async def test_market_order_pushes_live_and_filled(client: Any, okx_server: SimServer) -> None:
    watch = Collector(lambda: client.watch_orders(BTC))
    await wait_subscribed(okx_server, "orders")
    created = await client.create_order(BTC, "market", "buy", 2)
    assert created["id"] and created["status"] is None  # OKX replies with ids only
    filled = await watch.wait_for(lambda o: o["id"] == created["id"] and o["status"] == "closed")
    assert filled["filled"] == 2 and filled["average"] == 60000.1
    assert filled["fee"]["cost"] > 0 and filled["fee"]["currency"] == "USDT"
    got = await client.fetch_order(created["id"], BTC)
    assert (got["status"], got["filled"], got["amount"], got["side"]) == ("closed", 2, 2, "buy")
    assert got["clientOrderId"] == created["clientOrderId"]
    assert got["info"]["tradeId"] and got["info"]["fillSz"] == "2"
    await watch.stop()


async def test_limit_order_rests_then_fills_when_price_moves(
    client: Any, okx_server: SimServer, http: aiohttp.ClientSession
) -> None:
    watch = Collector(lambda: client.watch_orders())
    await wait_subscribed(okx_server, "orders")
    order = await client.create_order(BTC, "limit", "buy", 1, 59500)
    live = await watch.wait_for(lambda o: o["id"] == order["id"])
    assert live["status"] == "open" and live["price"] == 59500
    open_orders = await client.fetch_open_orders(BTC)
    assert [o["id"] for o in open_orders] == [order["id"]]
    await sim_post(http, okx_server, "/sim/prices", {"symbol": BTC_ID, "price": "59400"})
    filled = await watch.wait_for(lambda o: o["id"] == order["id"] and o["status"] == "closed")
    assert filled["average"] == 59500  # a resting limit fills at its own price
    assert await client.fetch_open_orders(BTC) == []
    closed = await client.fetch_closed_orders(BTC)
    assert order["id"] in [o["id"] for o in closed]
    await watch.stop()


async def test_post_only_rests_and_crossing_post_only_is_rejected(client: Any) -> None:
    order = await client.create_order(BTC, "limit", "buy", 1, 59000, {"postOnly": True})
    got = await client.fetch_order(order["id"], BTC)
    assert got["postOnly"] is True and got["status"] == "open" and got["info"]["ordType"] == "post_only"
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order(BTC, "limit", "buy", 1, 61000, {"postOnly": True})


async def test_reduce_only(client: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder):  # nothing to reduce
        await client.create_order(BTC, "market", "sell", 1, None, {"reduceOnly": True})
    await client.create_order(BTC, "market", "buy", 3)
    closing = await client.create_order(BTC, "market", "sell", 1, None, {"reduceOnly": True})
    got = await client.fetch_order(closing["id"], BTC)
    assert got["reduceOnly"] is True and got["status"] == "closed"
    [pos] = _open_pos(await client.fetch_positions([BTC]))
    assert (pos["side"], pos["contracts"]) == ("long", 2)


async def test_close_position_and_canceled_history(client: Any) -> None:
    await client.create_order(BTC, "market", "sell", 2)
    resting = await client.create_order(BTC, "limit", "sell", 1, 65000)
    await client.cancel_order(resting["id"], BTC)
    await client.close_position(BTC)
    assert _open_pos(await client.fetch_positions([BTC])) == []
    canceled = await client.fetch_canceled_orders(BTC)
    assert [o["id"] for o in canceled] == [resting["id"]]
    with pytest.raises(ccxt.ExchangeError):  # nothing left to close
        await client.close_position(BTC)


async def test_cancel_and_errors_map_to_ccxt_exceptions(client: Any) -> None:
    resting = await client.create_order(BTC, "limit", "sell", 1, 65000)
    canceled = await client.cancel_order(resting["id"], BTC)
    assert canceled["id"] == resting["id"]
    assert (await client.fetch_order(resting["id"], BTC))["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):  # already canceled
        await client.cancel_order(resting["id"], BTC)
    filled = await client.create_order(BTC, "market", "buy", 1)
    with pytest.raises(ccxt.OrderNotFound):  # already filled
        await client.cancel_order(filled["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("123456789", BTC)
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order(BTC, "market", "buy", 4000)  # 40 BTC at 10x needs 240k USDT margin
    with pytest.raises(ccxt.InvalidOrder):  # not a multiple of lotSz 0.01 (raw sz overrides ccxt's rounding)
        await client.create_order(BTC, "limit", "buy", 1, 50000, {"sz": "0.015"})
    with pytest.raises(ccxt.InvalidOrder):  # above maxMktSz 5000
        await client.create_order(BTC, "market", "buy", 6000)


async def test_edit_order_amends_price(client: Any) -> None:
    order = await client.create_order(BTC, "limit", "buy", 1, 59000)
    await client.edit_order(order["id"], BTC, "limit", "buy", 2, 59100)
    got = await client.fetch_order(order["id"], BTC)
    assert (got["price"], got["amount"], got["status"]) == (59100, 2, "open")


async def test_orders_are_scoped_to_the_account(client: Any, client_b: Any, okx_server: SimServer) -> None:
    watch_a = Collector(lambda: client.watch_orders())
    watch_b = Collector(lambda: client_b.watch_orders())
    await wait_subscribed(okx_server, "orders", 2)
    a = await client.create_order(BTC, "market", "buy", 1)
    await watch_a.wait_for(lambda o: o["id"] == a["id"] and o["status"] == "closed")
    b = await client_b.create_order(ETH, "market", "sell", 1)
    await watch_b.wait_for(lambda o: o["id"] == b["id"] and o["status"] == "closed")
    assert {o["id"] for o in watch_b.items} == {b["id"]}
    assert b["id"] not in {o["id"] for o in watch_a.items}
    assert client_b.fetch_positions is not None
    assert _open_pos(await client_b.fetch_positions(), BTC) == []
    await watch_a.stop()
    await watch_b.stop()


async def test_inst_id_subscription_filters_pushes(client: Any, okx_server: SimServer) -> None:
    eth_only = Collector(lambda: client.watch_orders(ETH))
    await wait_subscribed(okx_server, "orders")
    await client.create_order(BTC, "market", "buy", 1)
    eth = await client.create_order(ETH, "market", "buy", 1)
    await eth_only.wait_for(lambda o: o["id"] == eth["id"] and o["status"] == "closed")
    assert {o["symbol"] for o in eth_only.items} == {ETH}
    await eth_only.stop()


# ------------------------------------------------------------------ positions, trades, balance


async def test_watch_positions_snapshot_then_updates(client: Any, okx_server: SimServer) -> None:
    snapshot = await asyncio.wait_for(client.watch_positions(), 5)
    assert snapshot == []  # OKX pushes a (here empty) snapshot on subscribe
    watch = Collector(lambda: client.watch_positions())
    await client.create_order(BTC, "market", "buy", 2)
    pos = await watch.wait_for(lambda p: p["symbol"] == BTC and p["contracts"] == 2)
    assert pos["side"] == "long" and pos["entryPrice"] == 60000.1 and pos["contractSize"] == 0.01
    assert pos["leverage"] == 10 and pos["marginMode"] == "cross"
    await client.create_order(BTC, "market", "sell", 2, None, {"reduceOnly": True})
    flat = await watch.wait_for(lambda p: p["symbol"] == BTC and p["contracts"] == 0)
    assert flat["info"]["pos"] == "0"
    await watch.stop()


async def test_watch_my_trades_and_fetch_my_trades(client: Any, okx_server: SimServer) -> None:
    watch = Collector(lambda: client.watch_my_trades())
    await wait_subscribed(okx_server, "orders")
    order = await client.create_order(ETH, "market", "sell", 3)
    trade = await watch.wait_for(lambda t: t["order"] == order["id"])
    assert (trade["side"], trade["amount"], trade["price"]) == ("sell", 3, 2999.99)
    assert trade["takerOrMaker"] == "taker" and trade["symbol"] == ETH
    assert trade["fee"]["cost"] < 0 and trade["fee"]["currency"] == "USDT"  # OKX fillFee: negative = paid
    fills = await client.fetch_my_trades(ETH)
    assert [t["id"] for t in fills] == [trade["id"]]
    assert fills[0]["fee"]["cost"] > 0  # REST `fee` is negated by ccxt
    await watch.stop()


async def test_balance_rest_and_ws(client: Any, okx_server: SimServer) -> None:
    bal = await client.fetch_balance()
    assert bal["USDT"]["total"] == 100000 and bal["USDT"]["free"] == 100000
    first = await asyncio.wait_for(client.watch_balance(), 5)
    assert first["USDT"]["total"] == 100000
    watch = Collector(lambda: client.watch_balance())
    await client.create_order(BTC, "market", "buy", 1)
    after = await watch.wait_for(lambda b: b["USDT"]["free"] < 99990)
    assert after["USDT"]["total"] < 100000  # fee paid
    await watch.stop()


# ------------------------------------------------------------------ algo orders


async def test_stop_loss_take_profit_oco_triggers(
    client: Any, okx_server: SimServer, http: aiohttp.ClientSession
) -> None:
    await client.create_order(BTC, "market", "buy", 1)
    algos = Collector(lambda: client.watch_orders(None, None, None, {"trigger": True}))
    orders = Collector(lambda: client.watch_orders())
    await wait_subscribed(okx_server, "orders-algo")
    await wait_subscribed(okx_server, "orders")
    sltp = await client.create_order(
        BTC, "market", "sell", 1, None, {"stopLossPrice": 59000, "takeProfitPrice": 62000, "reduceOnly": True}
    )
    live = await algos.wait_for(lambda o: o["id"] == sltp["id"])
    assert live["status"] == "open" and live["stopLossPrice"] == 59000 and live["takeProfitPrice"] == 62000
    pending = await client.fetch_open_orders(BTC, None, None, {"trigger": True, "ordType": "conditional"})
    assert [o["id"] for o in pending] == [sltp["id"]]
    assert pending[0]["info"]["ordType"] == "oco" and pending[0]["info"]["slOrdPx"] == "-1"
    await sim_post(http, okx_server, "/sim/prices", {"symbol": BTC_ID, "price": "58950"})
    fired = await algos.wait_for(lambda o: o["id"] == sltp["id"] and o["status"] == "closed")
    assert fired["info"]["state"] == "effective" and fired["info"]["actualSide"] == "sl"
    child_id = fired["info"]["ordId"]
    await orders.wait_for(lambda o: o["info"]["ordId"] == child_id and o["status"] == "closed")
    assert _open_pos(await client.fetch_positions([BTC])) == []
    got = await client.fetch_order(sltp["id"], BTC, {"trigger": True})
    assert got["status"] == "closed"
    await algos.stop()
    await orders.stop()


async def test_trigger_order_cancel_and_fire(
    client: Any, okx_server: SimServer, http: aiohttp.ClientSession
) -> None:
    first = await client.create_order(BTC, "market", "buy", 1, None, {"triggerPrice": 61000})
    pending = await client.fetch_open_orders(BTC, None, None, {"trigger": True})
    assert [o["id"] for o in pending] == [first["id"]]
    assert pending[0]["triggerPrice"] == 61000 and pending[0]["info"]["ordPx"] == "-1"
    await client.cancel_order(first["id"], BTC, {"trigger": True})
    assert await client.fetch_open_orders(BTC, None, None, {"trigger": True}) == []
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order(first["id"], BTC, {"trigger": True})
    second = await client.create_order(BTC, "market", "buy", 1, None, {"triggerPrice": 61000})
    await sim_post(http, okx_server, "/sim/prices", {"symbol": BTC_ID, "price": "61000"})
    history = await client.fetch_closed_orders(BTC, None, None, {"trigger": True})
    assert [o["id"] for o in history] == [second["id"]]
    [pos] = _open_pos(await client.fetch_positions([BTC]))
    assert (pos["side"], pos["contracts"]) == ("long", 1)


async def test_trailing_stop_callback_ratio_and_fire(
    client: Any, okx_server: SimServer, http: aiohttp.ClientSession
) -> None:
    await client.create_order(BTC, "market", "buy", 2)
    params = {"trailingPercent": 1, "activePx": "60500", "reduceOnly": True}
    spare = await client.create_order(BTC, "market", "sell", 1, None, params)
    trail = await client.create_order(BTC, "market", "sell", 1, None, params)
    pending = await client.fetch_open_orders(BTC, None, None, {"trailing": True})
    assert {o["id"] for o in pending} == {spare["id"], trail["id"]}
    info = pending[0]["info"]
    assert (info["ordType"], info["callbackRatio"], info["activePx"]) == ("move_order_stop", "0.01", "60500")
    await client.cancel_order(spare["id"], BTC, {"trailing": True})
    for px in ("60600", "61000", "60500"):  # activate, new high (stop 60390), not yet
        await sim_post(http, okx_server, "/sim/prices", {"symbol": BTC_ID, "price": px})
    [live] = await client.fetch_open_orders(BTC, None, None, {"trailing": True})
    assert live["triggerPrice"] == 60390  # moveTriggerPx = 61000 * (1 - 0.01)
    await sim_post(http, okx_server, "/sim/prices", {"symbol": BTC_ID, "price": "60380"})
    assert await client.fetch_open_orders(BTC, None, None, {"trailing": True}) == []
    [pos] = _open_pos(await client.fetch_positions([BTC]))
    assert pos["contracts"] == 1


async def test_attached_stop_loss_becomes_an_algo_after_fill(client: Any) -> None:
    await client.create_order(BTC, "market", "buy", 1, None, {"stopLoss": {"triggerPrice": 58000}})
    [algo] = await client.fetch_open_orders(BTC, None, None, {"trigger": True, "ordType": "conditional"})
    assert algo["stopLossPrice"] == 58000 and algo["side"] == "sell" and algo["reduceOnly"] is True


# ------------------------------------------------------------------ account settings


async def test_set_leverage(client: Any) -> None:
    await client.set_leverage(20, BTC)
    lev = await client.fetch_leverage(BTC)
    assert lev["longLeverage"] == 20 and lev["shortLeverage"] == 20
    await client.create_order(BTC, "market", "buy", 1)
    [pos] = _open_pos(await client.fetch_positions([BTC]))
    assert pos["leverage"] == 20
    with pytest.raises(ccxt.ExchangeError):
        await client.set_leverage(120, BTC)  # BTC max is 100


async def test_hedge_mode_long_and_short_at_once(okx_server: SimServer, client: Any) -> None:
    await client.set_position_mode(True)
    assert (await client.fetch_position_mode())["hedged"] is True
    hedged = make_client("okx", okx_server.url, KEY, client.secret, PASS, hedged=True)
    try:
        await hedged.load_markets()
        await hedged.create_order(BTC, "market", "buy", 2)
        await hedged.create_order(BTC, "market", "sell", 1)
        positions = _open_pos(await hedged.fetch_positions([BTC]))
        assert sorted((p["side"], p["contracts"], p["hedged"]) for p in positions) == [
            ("long", 2, True),
            ("short", 1, True),
        ]
        await hedged.create_order(BTC, "market", "sell", 2, None, {"reduceOnly": True})  # closes the long
        positions = _open_pos(await hedged.fetch_positions([BTC]))
        assert [(p["side"], p["contracts"]) for p in positions] == [("short", 1)]
        with pytest.raises(ccxt.ExchangeError):  # OKX refuses a mode change with open positions
            await hedged.set_position_mode(False)
    finally:
        await hedged.close()


# ------------------------------------------------------------------ auth and connectivity


async def test_wrong_secret_rest_and_ws(okx_server: SimServer, client: Any) -> None:
    bad = make_client("okx", okx_server.url, KEY, "not-the-secret", PASS)
    bad.markets = client.markets
    bad.markets_by_id = client.markets_by_id
    bad.symbols = client.symbols
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await bad.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError):
            await bad.create_order(BTC, "market", "buy", 1)
        with pytest.raises(ccxt.AuthenticationError):
            await asyncio.wait_for(bad.watch_orders(), 5)
    finally:
        await bad.close()
    assert okx_server.ctx.engine.open_orders(KEY) == [] and okx_server.ctx.engine.positions(KEY) == []


async def test_reconnect_after_disconnect(
    client: Any, okx_server: SimServer, http: aiohttp.ClientSession
) -> None:
    pending = asyncio.ensure_future(client.watch_orders())
    await wait_subscribed(okx_server, "orders")
    dropped = await sim_post(http, okx_server, "/sim/disconnect", {})
    assert dropped["dropped"] >= 1
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending, 5)
    watch = Collector(lambda: client.watch_orders())
    await wait_subscribed(okx_server, "orders")
    order = await client.create_order(BTC, "market", "buy", 1)
    await watch.wait_for(lambda o: o["id"] == order["id"] and o["status"] == "closed")
    await watch.stop()


async def test_create_and_cancel_order_over_websocket(client: Any) -> None:
    order = await asyncio.wait_for(client.create_order_ws(BTC, "limit", "buy", 1, 58000), 5)
    assert order["id"]
    got = await client.fetch_order(order["id"], BTC)
    assert got["status"] == "open" and got["price"] == 58000
    await asyncio.wait_for(client.cancel_order_ws(order["id"], BTC), 5)
    assert (await client.fetch_order(order["id"], BTC))["status"] == "canceled"


async def test_wire_numbers_are_decimal_strings(client: Any, okx_server: SimServer) -> None:
    order = await client.create_order(ETH, "market", "buy", 0.37)
    raw = (await client.fetch_order(order["id"], ETH))["info"]
    [fill] = okx_server.ctx.engine.fills(KEY)
    assert raw["sz"] == "0.37" and raw["accFillSz"] == "0.37" and raw["avgPx"] == "3000.01"
    assert raw["fee"] == f"-{fill.fee}" and raw["cTime"].isdigit() and raw["reduceOnly"] == "false"
    [pos] = _open_pos(await client.fetch_positions([ETH]), ETH)
    assert pos["info"]["pos"] == "0.37" and pos["info"]["notionalUsd"] == "111"
