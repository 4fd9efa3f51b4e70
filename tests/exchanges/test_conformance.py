"""Conformance: the same scenarios against paper(okx), ccxt+SimServer(okx) and ccxt+SimServer(binance).

What a service relies on: sizes in base currency (contracts only on the OKX wire), orders and fills seen on
the streams with exact Decimals and positive fees, algo orders found/cancelled without saying they are algo,
a lost reply resolved by client order id without a second order, hedge-mode positions, errors mapped to the
gateway classes, and a stream that reports a drop once and works again on the next call.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest

from position_order_service.domain.enums import Exchange, OrderSide, OrderStatus, OrderType, PositionSide
from position_order_service.domain.models import Order
from position_order_service.exchanges.base import (
    AuthenticationFailed,
    Credentials,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    StreamDisconnected,
)
from position_order_service.exchanges.factory import gateway_class

from .conftest import CCXT_VARIANTS, Harness, order_req

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def _find(orders: list[Order], order_id: str | None, status: OrderStatus | None = None) -> Order | None:
    for o in reversed(orders):
        if o.exchange_order_id == order_id and (status is None or o.status is status):
            return o
    return None


def _engine_orders(venue: Harness, key: str) -> list[Any]:
    return venue.engine.open_orders(key) + venue.engine.order_history(key)


# ---------------------------------------------------------------- markets


async def test_markets_load_and_convert_contracts(venue: Harness) -> None:
    gw = await venue.gateway()
    markets = await gw.load_markets()
    m = gw.market(venue.symbol)
    assert markets[venue.symbol] == m
    assert gw.market("BTC/USDT:USDT") is m
    assert m.unified == "BTC/USDT:USDT" and (m.base, m.quote, m.settle) == ("BTC", "USDT", "USDT")
    assert m.tick_size == D("0.1")
    if venue.exchange is Exchange.OKX:
        assert m.contract_value == D("0.01")
        assert m.to_contracts(D("0.1")) == 10
        assert (m.lot_size, m.min_size) == (D("0.0001"), D("0.0001"))  # 0.01 contract x ctVal, in BTC
        assert m.max_leverage == 100
    else:
        assert m.contract_value == 1
        assert (m.lot_size, m.min_size, m.min_notional) == (D("0.001"), D("0.001"), D("100"))
    assert m.round_size(D("0.123456")) == (D("0.1234") if venue.exchange is Exchange.OKX else D("0.123"))
    with pytest.raises(KeyError):
        gw.market("NOPE-USDT-SWAP")

    await venue.set_price("60000")
    created = await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    native = venue.engine.get_order(venue.key_of(gw), order_id=created.exchange_order_id)
    assert native.sz == (D(10) if venue.exchange is Exchange.OKX else D("0.1"))  # 0.1 BTC = 10 contracts
    fetched = await gw.fetch_order(venue.symbol, order_id=created.exchange_order_id)
    assert fetched is not None
    assert (fetched.quantity, fetched.filled_qty, fetched.status) == (D("0.1"), D("0.1"), OrderStatus.FILLED)


@pytest.mark.parametrize("venue", CCXT_VARIANTS, indirect=True)
async def test_hundred_users_share_one_market_table(venue: Harness) -> None:
    assert venue.server is not None
    sym = venue.symbol
    gws = [
        gateway_class(venue.exchange)(
            f"u{i}", Credentials(f"k{i}", "s", "p"), venue.server.url, venue.registry
        )
        for i in range(100)
    ]
    try:
        await asyncio.gather(*(g.load_markets() for g in gws))
        assert venue.registry.load_count == 1
        table = venue.registry.get(venue.exchange, venue.server.url)
        assert table is not None
        assert all(g.markets is table for g in gws)
        assert all(g.client.markets is table.ccxt_markets for g in gws)  # ccxt's own table, by reference
        assert all(g.market(sym) is table[sym] for g in gws)
        assert venue.registry.load_count == 1
    finally:
        await asyncio.gather(*(g.close() for g in gws))


# ---------------------------------------------------------------- orders and streams


async def test_market_order_fills_and_streams_in_base_units(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    orders = watchers(gw.watch_orders)
    fills = watchers(gw.watch_fills)
    await venue.settle()
    req = order_req(venue.symbol, BUY, OrderType.MARKET, "0.1")
    created = await gw.create_order(req)
    assert created.client_order_id == req.client_order_id and created.exchange_order_id
    seen = await orders.until(lambda xs: _find(xs, created.exchange_order_id, OrderStatus.FILLED) is not None)
    filled = _find(seen, created.exchange_order_id, OrderStatus.FILLED)
    assert filled is not None
    assert filled.quantity == D("0.1") and filled.filled_qty == D("0.1")
    assert filled.avg_fill_price == D("60000.1")  # market buy takes the ask
    assert filled.client_order_id == req.client_order_id
    assert filled.symbol == venue.symbol and filled.order_type is OrderType.MARKET
    assert filled.created_at.tzinfo is not None and filled.created_at.utcoffset() is not None
    expected_fee = D("0.1") * D("60000.1") * venue.taker_fee_rate
    assert filled.fee == expected_fee and filled.fee_currency == "USDT"

    got = await fills.until(lambda xs: any(f.order_id == created.exchange_order_id for f in xs))
    fill = next(f for f in got if f.order_id == created.exchange_order_id)
    assert fill.size == D("0.1") and fill.price == D("60000.1") and fill.side is BUY
    assert fill.fee == expected_fee > 0  # positive = cost (OKX sends it negative)
    assert fill.liquidity == "taker" and fill.fee_currency == "USDT"


async def test_fills_read_back_over_rest_match_the_stream(venue: Harness, watchers: Any) -> None:
    """fetch_fills (what a snapshot reads back after a stream gap) gives each trade as the stream did: the same
    (symbol, trade id), size in base units, price, side and positive fee; none from before `since_ms`."""
    gw = await venue.gateway()
    await venue.set_price("60000")
    fills = watchers(gw.watch_fills)
    await venue.settle()
    first = await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    await fills.until(lambda xs: any(f.order_id == first.exchange_order_id for f in xs))
    await asyncio.sleep(0.01)
    since_ms = venue.engine.now_ms()
    second = await gw.create_order(order_req(venue.symbol, SELL, OrderType.MARKET, "0.03"))
    streamed = await fills.until(lambda xs: any(f.order_id == second.exchange_order_id for f in xs))
    read = await gw.fetch_fills(since_ms, [venue.symbol])
    assert [f.order_id for f in read] == [second.exchange_order_id]
    pushed = next(f for f in streamed if f.order_id == second.exchange_order_id)
    got = read[0]
    assert (got.symbol, got.trade_id) == (pushed.symbol, pushed.trade_id)
    assert (got.size, got.price, got.side, got.fee, got.liquidity) == (
        pushed.size, pushed.price, pushed.side, pushed.fee, pushed.liquidity,
    )  # fmt: skip
    assert got.size == D("0.03") and got.fee > 0
    every = await gw.fetch_fills(since_ms - 60_000, [venue.symbol])
    assert [f.order_id for f in every] == [first.exchange_order_id, second.exchange_order_id]


async def test_fills_read_back_over_rest_span_many_pages(venue: Harness) -> None:
    """More trades in the window than one page holds (OKX pages from the newest, Binance from the oldest):
    every one is read back, once."""
    gw = await venue.gateway()
    key = venue.key_of(gw)
    await venue.set_price("60000")
    size = "1" if venue.exchange is Exchange.OKX else "0.01"
    since_ms = venue.engine.now_ms()
    for i in range(230):
        venue.engine.place_order(key, venue.symbol, "buy" if i % 2 == 0 else "sell", size)
        if i % 10 == 0:
            await asyncio.sleep(0.003)  # spread over a few milliseconds, several trades in each
    read = await gw.fetch_fills(since_ms, [venue.symbol])
    expected = [f.trade_id for f in reversed(venue.engine.fills(key))]
    assert len(expected) == 230
    assert [f.trade_id for f in read] == expected


async def test_limit_rests_then_fills_on_price_move(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    orders = watchers(gw.watch_orders)
    await venue.settle()
    created = await gw.create_order(order_req(venue.symbol, BUY, OrderType.LIMIT, "0.1", price="59000"))
    resting = await gw.fetch_order(venue.symbol, order_id=created.exchange_order_id)
    assert resting is not None and resting.status is OrderStatus.OPEN and resting.price == D("59000")
    assert [o.exchange_order_id for o in await gw.fetch_open_orders(venue.symbol)] == [
        created.exchange_order_id
    ]
    await venue.set_price("58900")
    seen = await orders.until(lambda xs: _find(xs, created.exchange_order_id, OrderStatus.FILLED) is not None)
    filled = _find(seen, created.exchange_order_id, OrderStatus.FILLED)
    assert filled is not None and filled.avg_fill_price == D("59000") and filled.filled_qty == D("0.1")
    assert await gw.fetch_open_orders() == []


async def test_cancel_regular_order(venue: Harness) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    created = await gw.create_order(order_req(venue.symbol, BUY, OrderType.LIMIT, "0.1", price="55000"))
    await gw.cancel_order(venue.symbol, created.exchange_order_id or "")
    final = await gw.fetch_order(venue.symbol, order_id=created.exchange_order_id)
    assert final is not None and final.status is OrderStatus.CANCELLED
    assert await gw.fetch_open_orders(venue.symbol) == []
    with pytest.raises(OrderNotFound):
        await gw.cancel_order(venue.symbol, created.exchange_order_id or "")


async def test_cancel_algo_order_without_saying_it_is_algo(venue: Harness) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    req = order_req(venue.symbol, BUY, OrderType.STOP_MARKET, "0.1", trigger="65000")
    algo = await gw.create_order(req)
    assert algo.order_type is OrderType.STOP_MARKET and algo.trigger_price == D("65000")
    listed = await gw.fetch_open_orders()
    assert [(o.exchange_order_id, o.order_type) for o in listed] == [
        (algo.exchange_order_id, OrderType.STOP_MARKET)
    ]
    by_cid = await gw.fetch_order(venue.symbol, client_order_id=req.client_order_id)
    assert by_cid is not None and by_cid.exchange_order_id == algo.exchange_order_id
    assert by_cid.status is OrderStatus.OPEN and by_cid.quantity == D("0.1")

    await gw.cancel_order(venue.symbol, algo.exchange_order_id or "")  # is_algo=None: tries both books
    final = await gw.fetch_order(venue.symbol, order_id=algo.exchange_order_id)
    assert final is not None and final.status is OrderStatus.CANCELLED
    assert await gw.fetch_open_orders() == []
    with pytest.raises(OrderNotFound):
        await gw.cancel_order(venue.symbol, algo.exchange_order_id or "")


async def test_lost_reply_is_resolved_by_client_order_id(venue: Harness) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    await venue.drop_next_reply(gw)
    req = order_req(venue.symbol, BUY, OrderType.MARKET, "0.1")
    with pytest.raises(ExchangeUnavailable):
        await gw.create_order(req)
    found = await gw.fetch_order(venue.symbol, client_order_id=req.client_order_id)
    assert found is not None and found.client_order_id == req.client_order_id
    assert found.status is OrderStatus.FILLED and found.filled_qty == D("0.1")
    same = [o for o in _engine_orders(venue, venue.key_of(gw)) if o.client_order_id == req.client_order_id]
    assert len(same) == 1  # exactly one order: nothing was sent twice
    assert await gw.fetch_order(venue.symbol, client_order_id="neverSent123") is None


# ---------------------------------------------------------------- positions


async def test_hedge_mode_long_and_short_positions(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway(hedged=True)
    assert await gw.fetch_position_mode() is True
    await venue.set_price("60000")
    streamed = watchers(gw.watch_positions)
    await venue.settle()
    await gw.create_order(
        order_req(venue.symbol, BUY, OrderType.MARKET, "0.1", position_side=PositionSide.LONG)
    )
    await gw.create_order(
        order_req(venue.symbol, SELL, OrderType.MARKET, "0.2", position_side=PositionSide.SHORT)
    )
    positions = {p.side: p for p in await gw.fetch_positions()}
    assert set(positions) == {PositionSide.LONG, PositionSide.SHORT}
    assert positions[PositionSide.LONG].size == D("0.1") and positions[PositionSide.SHORT].size == D("0.2")
    assert positions[PositionSide.LONG].entry_price == D("60000.1")
    assert positions[PositionSide.SHORT].entry_price == D("59999.9")
    assert all(p.leverage == 10 and p.symbol == venue.symbol for p in positions.values())

    def both(xs: list[Any]) -> bool:
        last = {p.side: p.size for p in xs}
        return last.get(PositionSide.LONG) == D("0.1") and last.get(PositionSide.SHORT) == D("0.2")

    await streamed.until(both)
    # a reduce-only sell on the long side closes the long and leaves the short
    await gw.create_order(
        order_req(
            venue.symbol, SELL, OrderType.MARKET, "0.1", reduce_only=True, position_side=PositionSide.LONG
        )
    )
    left = await gw.fetch_positions([venue.symbol])
    assert [(p.side, p.size) for p in left] == [(PositionSide.SHORT, D("0.2"))]
    await streamed.until(lambda xs: any(p.side is PositionSide.LONG and p.size == 0 for p in xs))


# ---------------------------------------------------------------- algo orders: create, trigger, fill


async def _protect_and_trigger(
    venue: Harness, watchers: Any, order_type: OrderType, moves: list[str], **fields: str
) -> tuple[Order, Order]:
    gw = await venue.gateway()
    await venue.set_price("60000")
    await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    orders = watchers(gw.watch_orders)
    fills = watchers(gw.watch_fills)
    await venue.settle()
    req = order_req(venue.symbol, SELL, order_type, "0.1", reduce_only=True, **fields)  # type: ignore[arg-type]
    algo = await gw.create_order(req)
    assert algo.order_type is order_type and algo.exchange_order_id
    fetched = await gw.fetch_order(venue.symbol, client_order_id=req.client_order_id)
    assert fetched is not None and fetched.order_type is order_type and fetched.status is OrderStatus.OPEN
    assert fetched.quantity == D("0.1") and fetched.reduce_only
    assert [o.exchange_order_id for o in await gw.fetch_open_orders(venue.symbol)] == [algo.exchange_order_id]
    for price in moves:
        await venue.set_price(price)
    seen = await orders.until(lambda xs: _find(xs, algo.exchange_order_id, OrderStatus.FILLED) is not None)
    done = _find(seen, algo.exchange_order_id, OrderStatus.FILLED)
    assert done is not None and done.metadata.get("algo") is True
    got = await fills.until(lambda xs: any(f.side is SELL for f in xs))
    child = next(f for f in got if f.side is SELL)
    assert child.size == D("0.1") and child.fee > 0
    assert await gw.fetch_positions() == []
    assert await gw.fetch_open_orders() == []
    return fetched, done


async def test_stop_loss_triggers_and_fills(venue: Harness, watchers: Any) -> None:
    fetched, _ = await _protect_and_trigger(
        venue, watchers, OrderType.STOP_LOSS, ["59500", "58900"], trigger="59000"
    )
    assert fetched.trigger_price == D("59000")


async def test_take_profit_triggers_and_fills(venue: Harness, watchers: Any) -> None:
    fetched, _ = await _protect_and_trigger(
        venue, watchers, OrderType.TAKE_PROFIT, ["61100"], trigger="61000"
    )
    assert fetched.trigger_price == D("61000")


async def test_trailing_stop_units_trigger_and_fill(venue: Harness, watchers: Any) -> None:
    # activates at 61000, trails the high (62000) by 2%: fires at or below 60760
    fetched, _ = await _protect_and_trigger(
        venue,
        watchers,
        OrderType.TRAILING_STOP,
        ["61000", "62000", "61000", "60700"],
        callback_rate="0.02",
        activation="61000",
    )
    # a fraction here and on the OKX wire (callbackRatio), percent in ccxt and on the Binance wire
    assert fetched.callback_rate == D("0.02")
    assert D(fetched.metadata["activation_price"]) == D("61000")
    key = next(iter(venue.keys.values()))
    native = venue.engine.algo_history(key)[0]
    assert native.callback_ratio == D("0.02") and native.active_px == D("61000")


# ---------------------------------------------------------------- errors


async def test_errors_are_mapped(venue: Harness) -> None:
    await venue.set_price("60000")
    bad = await venue.gateway(wrong_secret=True)
    with pytest.raises(AuthenticationFailed) as auth:
        await bad.fetch_balance()
    assert "wrong-secret" not in auth.value.reason
    with pytest.raises(AuthenticationFailed):
        await bad.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))

    gw = await venue.gateway(balance="10000")
    with pytest.raises(InsufficientFunds) as funds:
        await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "40"))
    assert funds.value.reason
    with pytest.raises(InvalidOrder):
        await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.00001"))  # below the minimum
    if venue.exchange is Exchange.BINANCE:  # refused by the venue itself: notional under 100 USDT
        with pytest.raises(InvalidOrder):
            await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.001"))
    filled = await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.01"))
    with pytest.raises(OrderNotFound):
        await gw.cancel_order(venue.symbol, filled.exchange_order_id or "")
    with pytest.raises(OrderNotFound):
        await gw.cancel_order(venue.symbol, filled.exchange_order_id or "", is_algo=False)


async def test_wrong_secret_on_a_stream_is_an_authentication_failure(venue: Harness) -> None:
    bad = await venue.gateway(wrong_secret=True)
    with pytest.raises(AuthenticationFailed):
        await asyncio.wait_for(bad.watch_orders(), 5)


# ---------------------------------------------------------------- stream reconnect


async def test_stream_reports_a_drop_once_and_the_next_watch_works(venue: Harness) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    pending = asyncio.create_task(gw.watch_orders())
    await venue.settle()
    await venue.disconnect()
    with pytest.raises(StreamDisconnected):
        await asyncio.wait_for(pending, 5)

    nxt = asyncio.create_task(gw.watch_orders())  # reconnects, logs in, re-subscribes
    await venue.settle()
    created = await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    seen: list[Order] = list(await asyncio.wait_for(nxt, 5))
    while _find(seen, created.exchange_order_id, OrderStatus.FILLED) is None:
        seen += await asyncio.wait_for(gw.watch_orders(), 5)
    assert _find(seen, created.exchange_order_id, OrderStatus.FILLED) is not None


# ---------------------------------------------------------------- account and prices


async def test_balance_leverage_mode_and_ticker(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway()
    assert (await gw.fetch_balance())["USDT"] == D("100000")
    assert await gw.fetch_position_mode() is False
    await gw.set_position_mode(True)
    assert await gw.fetch_position_mode() is True
    await gw.set_position_mode(False)
    await gw.set_leverage(venue.symbol, 5)
    await venue.set_price("60000")
    ticks = watchers(lambda: _one(gw.watch_ticker(venue.symbol)))
    await venue.settle()
    await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    [pos] = await gw.fetch_positions()
    assert pos.leverage == 5 and pos.side is PositionSide.LONG and pos.size == D("0.1")
    ticker = await gw.fetch_ticker(venue.symbol)
    assert ticker.last == D("60000") and ticker.symbol == venue.symbol
    await venue.set_price("60100.5")
    await ticks.until(lambda xs: any(t.last == D("60100.5") for t in xs))


async def _one(awaitable: Any) -> list[Any]:
    return [await awaitable]


async def test_one_way_position_opens_and_closes_on_its_side(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    streamed = watchers(gw.watch_positions)
    await venue.settle()
    await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    await streamed.until(lambda xs: any(p.side is PositionSide.LONG and p.size == D("0.1") for p in xs))
    await gw.create_order(order_req(venue.symbol, SELL, OrderType.MARKET, "0.1", reduce_only=True))
    seen = await streamed.until(lambda xs: any(p.side is PositionSide.LONG and p.size == 0 for p in xs))
    closed = next(p for p in seen if p.size == 0)
    assert closed.closed_at is not None and closed.pnl.realized == D("-0.02")  # bought the ask, sold the bid
    assert not any(p.side is PositionSide.SHORT for p in seen)  # a flat one-way position closes one side
    assert await gw.fetch_positions() == []


async def test_trigger_order_enters_when_the_price_crosses(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    orders = watchers(gw.watch_orders)
    await venue.settle()
    req = order_req(venue.symbol, BUY, OrderType.TRIGGER, "0.1", trigger="61000")
    algo = await gw.create_order(req)
    fetched = await gw.fetch_order(venue.symbol, client_order_id=req.client_order_id)
    assert fetched is not None and fetched.trigger_price == D("61000") and not fetched.reduce_only
    # Binance has no plain trigger order: it is a STOP_MARKET there (fires on a rise for a buy)
    expected = OrderType.STOP_MARKET if venue.exchange is Exchange.BINANCE else OrderType.TRIGGER
    assert fetched.order_type is expected
    await venue.set_price("61100")
    await orders.until(lambda xs: _find(xs, algo.exchange_order_id, OrderStatus.FILLED) is not None)
    [pos] = await gw.fetch_positions()
    assert pos.side is PositionSide.LONG and pos.size == D("0.1")


async def test_mark_price_stream(venue: Harness, watchers: Any) -> None:
    gw = await venue.gateway()
    marks = watchers(lambda: _one(gw.watch_mark_price(venue.symbol)))
    await venue.settle()
    await venue.set_price("60000", mark="60012.5")
    seen = await marks.until(lambda xs: any(t.mark == D("60012.5") for t in xs))
    tick = next(t for t in seen if t.mark == D("60012.5"))
    assert tick.last == tick.mark and tick.bid is None and tick.ask is None  # a mark-price tick, not a ticker
    assert tick.symbol == venue.symbol and tick.timestamp.tzinfo is not None


@pytest.mark.parametrize("venue", CCXT_VARIANTS, indirect=True)
async def test_a_drop_while_nobody_watches_is_reported_on_the_next_watch(venue: Harness) -> None:
    gw = await venue.gateway()
    await venue.set_price("60000")
    first = asyncio.create_task(gw.watch_orders())
    await venue.settle()
    await gw.create_order(order_req(venue.symbol, BUY, OrderType.MARKET, "0.1"))
    await asyncio.wait_for(first, 5)
    await venue.disconnect()  # nobody is inside watch_orders now
    with pytest.raises(StreamDisconnected):
        while True:  # updates that arrived before the drop come first, then the drop
            await asyncio.wait_for(gw.watch_orders(), 5)
