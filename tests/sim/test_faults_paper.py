"""The paper gateway (the engine in process) applies the engine's push faults, clock offset and visibility
lag, set from Python through ``gateway.faults`` (the same FaultSet a wire front on that engine uses)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from position_order_service.domain.enums import OrderSide, OrderType
from position_order_service.domain.market import OrderRequest
from position_order_service.domain.models import Order
from position_order_service.exchanges.base import ExchangeUnavailable
from position_order_service.exchanges.paper import PaperGateway
from position_order_service.sim.engine import ManualClock, SimEngine

SYMBOL = "BTC-USDT-SWAP"
KEY = "paper-key"


def _gateway(seed: int = 0, clock: ManualClock | None = None) -> PaperGateway:
    engine = SimEngine("okx", seed=seed, clock=clock)
    engine.create_account(KEY, "secret", "pass", balances={"USDT": "1000000"})
    engine.set_price(SYMBOL, "60000")
    return PaperGateway(engine, "u1", KEY)


def _buy(cid: str, price: str = "59000") -> OrderRequest:
    return OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, Decimal("0.01"), cid, price=Decimal(price))


async def _collect(gw: PaperGateway, count: int, timeout: float = 3.0) -> list[Order]:
    got: list[Order] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            got += await gw.watch_orders()
    return got


async def _place(gw: PaperGateway, cids: list[str], pushes: int | None = None) -> list[str]:
    """Place resting buys with a watch pending, and return the client ids in the order the stream gave them
    (`pushes`: how many the stream gives, when not one per order)."""
    watch = asyncio.ensure_future(_collect(gw, pushes or len(cids)))
    await asyncio.sleep(0)  # the watch subscribes
    for cid in cids:
        await gw.create_order(_buy(cid))
    return [o.client_order_id or "" for o in await watch]


async def test_ws_drop_loses_a_push_and_rest_still_shows_the_order() -> None:
    gw = _gateway()
    assert gw.faults is gw.engine.faults
    gw.faults.update({"ws_drop": {"count": 1, "channels": ["orders"]}})
    watch = asyncio.ensure_future(_collect(gw, 1))
    await asyncio.sleep(0)
    await gw.create_order(_buy("lost"))
    await gw.create_order(_buy("seen"))
    assert [o.client_order_id for o in await watch] == ["seen"]
    assert {o.client_order_id for o in await gw.fetch_open_orders(SYMBOL)} == {"lost", "seen"}
    assert gw.faults.applied["ws_drop"] == 1


async def test_ws_duplicate_delivers_a_push_twice() -> None:
    gw = _gateway()
    gw.faults.update({"ws_duplicate": {"count": 1, "channels": ["ORDER_TRADE_UPDATE"]}})  # Binance's name
    assert await _place(gw, ["twice", "once"], pushes=3) == ["twice", "twice", "once"]


async def test_ws_reorder_delivers_a_push_after_later_ones() -> None:
    gw = _gateway()
    gw.faults.update({"ws_reorder": {"count": 1, "window": 1}})
    assert await _place(gw, ["first", "second", "third"]) == ["second", "first", "third"]


async def test_rate_faults_replay_per_seed() -> None:
    cids = [f"c{i}" for i in range(16)]
    faults = {"ws_duplicate": {"rate": 0.3}, "ws_reorder": {"rate": 0.3, "window": 3}}

    async def run(seed: int) -> list[str]:
        gw = _gateway()
        gw.faults.update({**faults, "seed": seed})
        got: list[str] = []

        async def collect() -> None:
            while "t2" not in got:
                got.extend(o.client_order_id or "" for o in await gw.watch_orders())

        watch = asyncio.ensure_future(collect())
        await asyncio.sleep(0)
        for cid in cids:
            await gw.create_order(_buy(cid))
        gw.faults.clear()  # three clean pushes release whatever is still held (window 3)
        for cid in ("t0", "t1", "t2"):
            await gw.create_order(_buy(cid))
        await asyncio.wait_for(watch, 3)
        return got

    first, again, other = await run(5), await run(5), await run(6)
    assert first == again
    assert first != other
    assert first[:16] != cids and set(first) == {*cids, "t0", "t1", "t2"}


async def test_clock_offset_shifts_the_engine_timestamps() -> None:
    clock = ManualClock(1_700_000_000_000)
    gw = _gateway(clock=clock)
    gw.faults.update({"clock_offset_ms": -300})
    order = await gw.create_order(_buy("shifted"))
    assert order.created_at == datetime.fromtimestamp((1_700_000_000_000 - 300) / 1000, UTC)
    tick = await gw.fetch_ticker(SYMBOL)
    assert tick.timestamp == datetime.fromtimestamp(1_700_000_000_000 / 1000, UTC)  # set before the offset
    gw.engine.set_price(SYMBOL, "60001")
    assert (await gw.fetch_ticker(SYMBOL)).timestamp < tick.timestamp  # the exchange's clock went back


async def test_visibility_lag_hides_a_new_order_from_queries_until_it_passed() -> None:
    clock = ManualClock(1_700_000_000_000)
    gw = _gateway(clock=clock)
    gw.faults.update({"visibility_lag_ms": 5000})
    watch = asyncio.ensure_future(_collect(gw, 1))
    await asyncio.sleep(0)
    placed = await gw.create_order(_buy("hidden"))
    assert [o.client_order_id for o in await watch] == ["hidden"]  # the stream has it at once
    assert await gw.fetch_order(SYMBOL, client_order_id="hidden") is None
    assert await gw.fetch_order(SYMBOL, order_id=placed.exchange_order_id) is None
    assert await gw.fetch_open_orders(SYMBOL) == []
    clock.advance(4999)
    assert await gw.fetch_order(SYMBOL, client_order_id="hidden") is None
    clock.advance(1)
    found = await gw.fetch_order(SYMBOL, client_order_id="hidden")
    assert found is not None and found.exchange_order_id == placed.exchange_order_id
    assert [o.client_order_id for o in await gw.fetch_open_orders(SYMBOL)] == ["hidden"]


async def test_drop_order_responses_still_works_on_the_shared_fault_set() -> None:
    gw = _gateway()
    gw.faults.drop_order_responses = 1
    with pytest.raises(ExchangeUnavailable):
        await gw.create_order(_buy("unknownoutcome"))
    assert [o.client_order_id for o in await gw.fetch_open_orders(SYMBOL)] == ["unknownoutcome"]
    assert gw.faults.drop_order_responses == 0
