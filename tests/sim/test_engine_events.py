"""Events, subscribers, snapshot, instruments, prices and clocks of the simulator engine."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from position_order_service.sim.engine import (
    DuplicateAccount,
    Event,
    Instrument,
    InvalidPrice,
    InvalidRequest,
    ManualClock,
    OrderNotFound,
    SimEngine,
    TickerEvent,
    UnknownInstrument,
    default_instruments,
)

BTC = "BTC-USDT-SWAP"


def test_default_instruments() -> None:
    okx = {i.inst_id: i for i in default_instruments("okx")}
    assert okx[BTC].contract_value == D("0.01") and okx[BTC].lot_size == D("0.01")
    assert okx[BTC].min_size == D("0.01") and okx[BTC].tick_size == D("0.1")
    assert okx["ETH-USDT-SWAP"].contract_value == D("0.1") and okx["ETH-USDT-SWAP"].tick_size == D("0.01")
    assert okx["SOL-USDT-SWAP"].contract_value == 1 and okx["SOL-USDT-SWAP"].tick_size == D("0.001")
    assert okx[BTC].ccxt_symbol == "BTC/USDT:USDT"
    bn = {i.inst_id: i for i in default_instruments("binance")}
    assert bn["BTCUSDT"].lot_size == D("0.001") and bn["BTCUSDT"].min_notional == 100
    assert bn["ETHUSDT"].min_notional == 20 and bn["SOLUSDT"].contract_value == 1
    eng = SimEngine("binance")
    assert [i.inst_id for i in eng.instruments()] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_add_instrument_rules() -> None:
    eng = SimEngine("okx")
    doge = Instrument(
        "okx", "DOGE-USDT-SWAP", "DOGE", "USDT", "USDT", D("0.00001"), D("1"), D("1"), D("1000")
    )
    eng.add_instrument(doge)
    assert eng.instrument("DOGE-USDT-SWAP") == doge
    with pytest.raises(InvalidRequest):
        eng.add_instrument(default_instruments("binance")[0])
    with pytest.raises(UnknownInstrument):
        eng.instrument("XRP-USDT-SWAP")


def test_set_price_defaults_and_validation() -> None:
    eng = SimEngine("okx")
    b = eng.set_price(BTC, "50000")
    (ev,) = b
    assert isinstance(ev, TickerEvent)
    assert (ev.ticker.bid, ev.ticker.ask, ev.ticker.mark) == (D("49999.9"), D("50000.1"), D("50000"))
    t = eng.ticker(BTC)
    assert t is not None and t.last == D("50000")
    before = eng.snapshot()
    for kw in ({"last": "0"}, {"last": "100", "bid": "101", "ask": "100.5"}, {"last": "100", "mark": "-1"}):
        with pytest.raises(InvalidPrice):
            eng.set_price(BTC, **kw)
    with pytest.raises(InvalidRequest):
        eng.set_price(BTC, 100.5)  # type: ignore[arg-type]
    assert eng.snapshot() == before


def test_subscribe_unsubscribe_and_listener_errors() -> None:
    eng = SimEngine("okx")
    eng.create_account("k", "s", balances={"USDT": "1000"})
    got: list[Event] = []
    unsubscribe = eng.subscribe(got.append)

    def bad(_e: Event) -> None:
        raise RuntimeError("boom")

    b = eng.set_price(BTC, "50000")
    assert got == list(b)
    eng.subscribe(bad)
    with pytest.raises(RuntimeError):
        eng.set_price(BTC, "50100")
    t = eng.ticker(BTC)
    assert t is not None and t.last == D("50100")  # the change stands
    assert len(got) == 2  # the good listener still got the event
    unsubscribe()
    unsubscribe()  # idempotent


def test_snapshot_is_json_and_complete() -> None:
    eng = SimEngine("okx", seed=5)
    eng.create_account("k", "s", "p", balances={"USDT": "10000"}, label="alice")
    eng.set_price(BTC, "50000")
    eng.place_order("k", BTC, "buy", "1")
    eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", client_order_id="c")
    eng.place_algo("k", BTC, "conditional", "sell", sl_trigger_px="48000")
    snap = json.loads(json.dumps(eng.snapshot()))
    assert snap["venue"] == "okx" and snap["prices"][BTC]["last"] == "50000"
    (acc,) = snap["accounts"]
    assert acc["label"] == "alice" and acc["balances"]["USDT"] == "9999.74999950"
    assert [o["client_order_id"] for o in acc["open_orders"]] == ["c"]
    assert acc["open_orders"][0]["state"] == "live" and "margin_per_unit" not in acc["open_orders"][0]
    assert acc["order_history"][0]["state"] == "filled"
    assert acc["open_algos"][0]["algo_type"] == "conditional"
    assert acc["positions"][0]["qty"] == "1" and acc["positions"][0]["side"] == "long"
    assert acc["balance_details"][0]["ccy"] == "USDT"
    assert {"secret", "passphrase"}.isdisjoint(acc)


def test_event_to_dict_json() -> None:
    eng = SimEngine("okx")
    eng.create_account("k", "s", balances={"USDT": "10000"})
    eng.set_price(BTC, "50000")
    b = eng.place_order("k", BTC, "buy", "1")
    docs = [e.to_dict() for e in b]
    assert [d["type"] for d in docs] == ["order", "order", "position", "balance"]
    assert docs[1]["fill"]["liquidity"] == "taker" and docs[1]["order"]["state"] == "filled"
    json.dumps(docs)


def test_history_limit_evicts_oldest() -> None:
    eng = SimEngine("okx", history_limit=3)
    eng.create_account("k", "s", balances={"USDT": "100000"})
    eng.set_price(BTC, "50000")
    ids = []
    for i in range(5):
        b = eng.place_order("k", BTC, "buy" if i % 2 == 0 else "sell", "1", client_order_id=f"c{i}")
        assert b.order is not None
        ids.append(b.order.order_id)
    assert [o.order_id for o in eng.order_history("k")] == ids[:1:-1]
    with pytest.raises(OrderNotFound):
        eng.get_order("k", order_id=ids[0])
    with pytest.raises(OrderNotFound):
        eng.get_order("k", client_order_id="c0")
    assert eng.get_order("k", client_order_id="c4").order_id == ids[4]
    assert len(eng.fills("k")) == 3 and len(eng.fills("k", limit=1)) == 1


def test_clock_never_goes_backwards() -> None:
    clock = ManualClock(5_000)
    eng = SimEngine("okx", clock=clock)
    a = eng.set_price(BTC, "1")[0].ts
    clock.set(1_000)
    b = eng.set_price(BTC, "2")[0].ts
    clock.set(9_000)
    c = eng.set_price(BTC, "3")[0].ts
    assert (a, b, c) == (5_000, 5_000, 9_000)


def test_duplicate_account_and_bad_venue() -> None:
    eng = SimEngine("okx")
    eng.create_account("k", "s")
    with pytest.raises(DuplicateAccount):
        eng.create_account("k", "other")
    with pytest.raises(InvalidRequest):
        SimEngine("bybit")  # type: ignore[arg-type]
    assert len(eng.accounts()) == 1
