"""Order placement, matching, fees, partial fills, cancel/amend semantics of the simulator engine."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from position_order_service.sim.engine import (
    BalanceEvent,
    CancelSource,
    DuplicateClientOrderId,
    EngineError,
    EventBatch,
    InsufficientMargin,
    InvalidPositionSide,
    InvalidPrice,
    InvalidRequest,
    InvalidSize,
    Liquidity,
    MinNotional,
    NoMarketPrice,
    OrderEvent,
    OrderEventKind,
    OrderNotFound,
    OrderState,
    PositionEvent,
    PostOnlyWouldTake,
    ReduceOnlyRejected,
    SimEngine,
    UnknownAccount,
    UnknownInstrument,
)

BTC = "BTC-USDT-SWAP"


def make(venue: str = "okx", balance: str = "100000", **kw: object) -> SimEngine:
    eng = SimEngine(venue, seed=7)  # type: ignore[arg-type]
    eng.create_account("k", "s", "p", balances={"USDT": balance}, **kw)  # type: ignore[arg-type]
    return eng


def usdt(eng: SimEngine) -> D:
    return eng.balance("k", "USDT").balance


def fills(batch: EventBatch) -> list[OrderEvent]:
    return [e for e in batch if isinstance(e, OrderEvent) and e.kind is OrderEventKind.TRADE]


# ---------------------------------------------------------------- market and limit fills


def test_market_buy_fills_at_ask_with_taker_fee() -> None:
    eng = make()
    eng.set_price(BTC, "50000")  # bid 49999.9 / ask 50000.1
    batch = eng.place_order("k", BTC, "buy", "1", client_order_id="c1")
    kinds = [type(e).__name__ for e in batch]
    assert kinds == ["OrderEvent", "OrderEvent", "PositionEvent", "BalanceEvent"]
    new, trade = batch[0], batch[1]
    assert (
        isinstance(new, OrderEvent) and new.kind is OrderEventKind.NEW and new.order.state is OrderState.LIVE
    )
    assert isinstance(trade, OrderEvent) and trade.fill is not None
    f = trade.fill
    assert f.px == D("50000.1") and f.sz == D("1") and f.liquidity is Liquidity.TAKER
    assert f.fee == D("0.25000050")  # 50000.1 * 1 * 0.01 (ctVal) * 0.0005
    assert f.client_order_id == "c1" and f.trade_id.isdigit()
    assert trade.order.state is OrderState.FILLED and trade.order.avg_px == D("50000.1")
    assert batch.order is not None and batch.order.state is OrderState.FILLED
    assert usdt(eng) == D("100000") - D("0.2500005")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == 1 and pos.avg_px == D("50000.1")
    assert pos.notional == D("500.00") and pos.imr == D("50")


def test_market_sell_fills_at_bid() -> None:
    eng = make()
    eng.set_price(BTC, "50000", bid="49990", ask="50010")
    f = fills(eng.place_order("k", BTC, "sell", "2"))[0].fill
    assert f is not None and f.px == D("49990") and f.side == "sell"
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == D("-2") and pos.side == "short"


def test_marketable_limit_takes_at_better_current_price() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    batch = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="50100")
    f = fills(batch)[0].fill
    assert f is not None and f.px == D("50000.1") and f.liquidity is Liquidity.TAKER


def test_limit_rests_then_fills_as_maker_at_limit_price() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    batch = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49990")
    assert batch.order is not None and batch.order.state is OrderState.LIVE
    assert len(batch) == 1
    oid = batch.order.order_id
    assert not fills(eng.set_price(BTC, "49990.1"))  # ask 49990.2 > px
    batch = eng.set_price(BTC, "49980")  # ask 49980.1 <= px, gap through: still fills at px
    f = fills(batch)[0].fill
    assert f is not None and f.order_id == oid and f.px == D("49990") and f.liquidity is Liquidity.MAKER
    assert f.fee == D("0.09998000")  # 49990 * 0.01 * 0.0002
    assert eng.get_order("k", order_id=oid).state is OrderState.FILLED
    assert eng.open_orders("k") == []
    assert eng.order_history("k")[0].order_id == oid


def test_sell_limit_fills_when_bid_reaches_px() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.place_order("k", BTC, "sell", "1", ord_type="limit", px="50100")
    assert not fills(eng.set_price(BTC, "50100"))  # bid 50099.9
    f = fills(eng.set_price(BTC, "50100.1"))[0].fill  # bid 50100.0
    assert f is not None and f.px == D("50100") and f.liquidity is Liquidity.MAKER


def test_binance_units_and_fees() -> None:
    eng = make("binance")
    eng.set_price("BTCUSDT", "50000", bid="50000", ask="50000")
    f = fills(eng.place_order("k", "BTCUSDT", "buy", "0.01"))[0].fill
    assert f is not None and f.fee == D("0.2")  # 500 USDT notional * 0.0004
    pos = eng.position("k", "BTCUSDT")
    assert pos is not None and pos.notional == D("500.00")


def test_limit_without_price_rests_until_first_price() -> None:
    eng = make()
    b = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="50000")
    assert b.order is not None and b.order.state is OrderState.LIVE
    with pytest.raises(NoMarketPrice):
        eng.place_order("k", BTC, "buy", "1")
    assert fills(eng.set_price(BTC, "49000"))


# ---------------------------------------------------------------- post-only, IOC, FOK


def test_post_only_rejected_if_it_would_take() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    before = eng.snapshot()
    with pytest.raises(PostOnlyWouldTake) as exc:
        eng.place_order("k", BTC, "buy", "1", ord_type="post_only", px="50000.1")
    assert exc.value.code == "post_only_would_take"
    assert eng.snapshot() == before
    b = eng.place_order("k", BTC, "buy", "1", ord_type="post_only", px="50000")
    assert b.order is not None and b.order.state is OrderState.LIVE and b.order.time_in_force == "GTX"
    f = fills(eng.set_price(BTC, "49999.9"))[0].fill
    assert f is not None and f.liquidity is Liquidity.MAKER


def test_ioc_fills_what_it_can_and_cancels_rest() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.set_max_fill_per_step(BTC, "0.4")
    b = eng.place_order("k", BTC, "buy", "1", ord_type="ioc", px="50001")
    assert b.order is not None and b.order.state is OrderState.CANCELED
    assert b.order.filled_sz == D("0.4") and b.order.cancel_source is CancelSource.IOC
    b = eng.place_order("k", BTC, "buy", "1", ord_type="ioc", px="49000")
    assert b.order is not None and b.order.filled_sz == 0 and b.order.state is OrderState.CANCELED


def test_fok_all_or_nothing() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    b = eng.place_order("k", BTC, "buy", "1", ord_type="fok", px="50001")
    assert b.order is not None and b.order.state is OrderState.FILLED
    eng.set_max_fill_per_step(BTC, "0.5")
    b = eng.place_order("k", BTC, "buy", "1", ord_type="fok", px="50001")
    assert b.order is not None and b.order.state is OrderState.CANCELED and b.order.filled_sz == 0
    assert b.order.cancel_source is CancelSource.FOK
    assert not fills(b)


# ---------------------------------------------------------------- reduce-only


def test_reduce_only_rejected_with_nothing_to_reduce() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    before = eng.snapshot()
    with pytest.raises(ReduceOnlyRejected) as exc:
        eng.place_order("k", BTC, "sell", "1", reduce_only=True)
    assert exc.value.code == "reduce_only_rejected"
    assert eng.snapshot() == before
    eng.place_order("k", BTC, "buy", "1")
    with pytest.raises(ReduceOnlyRejected):  # same side as the long: would add
        eng.place_order("k", BTC, "buy", "1", reduce_only=True)


def test_reduce_only_capped_to_position() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.place_order("k", BTC, "buy", "1.5")
    b = eng.place_order("k", BTC, "sell", "3", reduce_only=True)
    assert b.order is not None
    assert b.order.sz == D("1.5") and b.order.requested_sz == D("3") and b.order.state is OrderState.FILLED
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == 0  # closed, never flipped


def test_reduce_only_orders_canceled_when_position_closes() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.place_order("k", BTC, "buy", "1")
    tp = eng.place_order("k", BTC, "sell", "1", ord_type="limit", px="51000", reduce_only=True).order
    assert tp is not None and tp.state is OrderState.LIVE
    b = eng.place_order("k", BTC, "sell", "1")
    canceled = [e for e in b if isinstance(e, OrderEvent) and e.kind is OrderEventKind.CANCELED]
    assert [e.order.order_id for e in canceled] == [tp.order_id]
    assert canceled[0].order.cancel_source is CancelSource.REDUCE_ONLY


def test_reduce_only_capped_at_fill_time() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.place_order("k", BTC, "buy", "1")
    eng.place_order("k", BTC, "sell", "1", ord_type="limit", px="51000", reduce_only=True)
    eng.place_order("k", BTC, "sell", "0.4")  # position now 0.6
    b = eng.set_price(BTC, "52000")
    f = fills(b)[0].fill
    assert f is not None and f.sz == D("0.6")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == 0
    assert eng.open_orders("k") == []


# ---------------------------------------------------------------- partial fills


def test_partial_fills_market_order_across_price_steps() -> None:
    eng = make()
    eng.set_max_fill_per_step(BTC, "0.3")
    eng.set_price(BTC, "50000", bid="50000", ask="50000")
    b = eng.place_order("k", BTC, "buy", "1")
    assert b.order is not None and b.order.state is OrderState.PARTIALLY_FILLED
    assert b.order.filled_sz == D("0.3")
    oid = b.order.order_id
    got = [D("0.3")]
    for px in ("50010", "50020", "50030"):
        for ev in fills(eng.set_price(BTC, px, bid=px, ask=px)):
            assert ev.fill is not None
            got.append(ev.fill.sz)
    assert got == [D("0.3"), D("0.3"), D("0.3"), D("0.1")]
    o = eng.get_order("k", order_id=oid)
    assert o.state is OrderState.FILLED and o.filled_sz == 1
    assert o.avg_px == (D("50000") * 3 + D("50010") * 3 + D("50020") * 3 + D("50030")) / 10
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == 1 and pos.avg_px == o.avg_px


def test_partial_fills_resting_limit() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.set_max_fill_per_step(BTC, "0.4")
    b = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49900")
    assert b.order is not None
    oid = b.order.order_id
    states = []
    for _ in range(3):
        for ev in fills(eng.set_price(BTC, "49800")):
            states.append((ev.order.filled_sz, ev.order.state))
    assert states == [
        (D("0.4"), OrderState.PARTIALLY_FILLED),
        (D("0.8"), OrderState.PARTIALLY_FILLED),
        (D("1.0"), OrderState.FILLED),
    ]
    assert eng.get_order("k", order_id=oid).fee == D("0.09980000")  # 49900*0.01*0.0002


def test_invalid_max_fill_per_step() -> None:
    eng = make()
    with pytest.raises(InvalidSize):
        eng.set_max_fill_per_step(BTC, "0.005")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sz": "0.015"}, InvalidSize),  # not a multiple of lot 0.01
        ({"sz": "0"}, InvalidSize),
        ({"sz": "-1"}, InvalidSize),
        ({"sz": "6000"}, InvalidSize),  # above maxMktSz
        ({"sz": "1", "ord_type": "limit", "px": "50000.05"}, InvalidPrice),  # off tick 0.1
        ({"sz": "1", "ord_type": "limit"}, InvalidPrice),  # missing px
        ({"sz": "1", "ord_type": "limit", "px": "-5"}, InvalidPrice),
        ({"sz": 1.0}, InvalidRequest),  # floats refused
        ({"sz": "abc"}, InvalidRequest),
        ({"sz": "1", "ord_type": "stop"}, InvalidRequest),
        ({"sz": "1", "pos_side": "long"}, InvalidPositionSide),  # net mode
    ],
)
def test_invalid_orders_rejected_without_state_change(
    kwargs: dict[str, object], error: type[EngineError]
) -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    before = eng.snapshot()
    sz = kwargs.pop("sz")
    with pytest.raises(error):
        eng.place_order("k", BTC, "buy", sz, **kwargs)  # type: ignore[arg-type]
    assert eng.snapshot() == before


def test_unknown_instrument_and_account() -> None:
    eng = make()
    with pytest.raises(UnknownInstrument) as e1:
        eng.place_order("k", "DOGE-USDT-SWAP", "buy", "1")
    assert e1.value.code == "unknown_instrument"
    with pytest.raises(UnknownAccount):
        eng.place_order("nope", BTC, "buy", "1")


def test_binance_min_notional_but_reduce_only_exempt() -> None:
    eng = make("binance")
    eng.set_price("BTCUSDT", "50000")
    with pytest.raises(MinNotional) as exc:
        eng.place_order("k", "BTCUSDT", "buy", "0.001")  # 50 USDT < 100
    assert exc.value.code == "min_notional"
    eng.place_order("k", "BTCUSDT", "buy", "0.003")
    b = eng.place_order("k", "BTCUSDT", "sell", "0.001", reduce_only=True)
    assert b.order is not None and b.order.state is OrderState.FILLED


def test_order_ids_numeric_and_sequential() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    a = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="40000").order
    b = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="40000").order
    assert a is not None and b is not None
    assert a.order_id.isdigit() and int(b.order_id) == int(a.order_id) + 1


# ---------------------------------------------------------------- client order ids, cancel, amend


def test_duplicate_client_order_id_while_open() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", client_order_id="x")
    with pytest.raises(DuplicateClientOrderId) as exc:
        eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", client_order_id="x")
    assert exc.value.code == "duplicate_client_order_id"
    eng.cancel_order("k", client_order_id="x")
    b = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", client_order_id="x")
    assert b.order is not None
    assert eng.get_order("k", client_order_id="x").order_id == b.order.order_id


def test_cancel_semantics() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    o = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", client_order_id="c").order
    assert o is not None
    b = eng.cancel_order("k", order_id=o.order_id, inst_id=BTC)
    assert len(b) == 1 and isinstance(b[0], OrderEvent) and b[0].kind is OrderEventKind.CANCELED
    assert b.order is not None and b.order.state is OrderState.CANCELED
    assert b.order.cancel_source is CancelSource.USER
    with pytest.raises(OrderNotFound) as exc:  # already canceled
        eng.cancel_order("k", order_id=o.order_id)
    assert exc.value.code == "order_not_found" and exc.value.details["state"] is OrderState.CANCELED
    filled = eng.place_order("k", BTC, "buy", "1").order
    assert filled is not None
    with pytest.raises(OrderNotFound) as exc:
        eng.cancel_order("k", order_id=filled.order_id)
    assert exc.value.details["state"] is OrderState.FILLED
    with pytest.raises(OrderNotFound) as exc:
        eng.cancel_order("k", order_id="123")
    assert exc.value.details["state"] is None
    live = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000").order
    assert live is not None
    with pytest.raises(OrderNotFound):  # wrong instrument
        eng.cancel_order("k", order_id=live.order_id, inst_id="ETH-USDT-SWAP")
    with pytest.raises(InvalidRequest):
        eng.cancel_order("k")


def test_cancel_by_client_id_and_cancel_all() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.set_price("ETH-USDT-SWAP", "3000")
    eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", client_order_id="a")
    eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="48000")
    eng.place_order("k", "ETH-USDT-SWAP", "buy", "1", ord_type="limit", px="2900")
    b = eng.cancel_order("k", client_order_id="a")
    assert b.order is not None and b.order.client_order_id == "a"
    b = eng.cancel_all("k", BTC)
    assert len(b) == 1
    assert [o.inst_id for o in eng.open_orders("k")] == ["ETH-USDT-SWAP"]
    assert len(eng.cancel_all("k")) == 1 and eng.open_orders("k") == []


def test_amend_price_and_size() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    o = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000").order
    assert o is not None
    b = eng.amend_order("k", order_id=o.order_id, new_sz="2", new_px="49500")
    assert b[0].kind is OrderEventKind.AMENDED  # type: ignore[union-attr]
    assert b.order is not None and b.order.sz == 2 and b.order.px == D("49500")
    b = eng.amend_order("k", order_id=o.order_id, new_px="50100")  # now marketable: takes at ask
    f = fills(b)[0].fill
    assert f is not None and f.px == D("50000.1") and f.liquidity is Liquidity.TAKER and f.sz == 2


def test_amend_rejections() -> None:
    eng = make()
    eng.set_price(BTC, "50000")
    eng.set_max_fill_per_step(BTC, "0.5")
    po = eng.place_order("k", BTC, "buy", "1", ord_type="post_only", px="49000").order
    assert po is not None
    before = eng.snapshot()
    with pytest.raises(PostOnlyWouldTake):
        eng.amend_order("k", order_id=po.order_id, new_px="50100")
    part = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="50100").order
    assert part is not None and part.filled_sz == D("0.5")
    before = eng.snapshot()
    with pytest.raises(InvalidSize):
        eng.amend_order("k", order_id=part.order_id, new_sz="0.5")
    with pytest.raises(InvalidPrice):
        eng.amend_order("k", order_id=part.order_id, new_px="1.05")
    assert eng.snapshot() == before


def test_margin_reserved_by_open_orders() -> None:
    eng = make(balance="200")
    eng.set_price(BTC, "50000")
    # 2 contracts at 50000: notional 1000, IM 100 + fee 0.5
    eng.place_order("k", BTC, "buy", "2", ord_type="limit", px="50001")  # marketable -> fills
    eng.place_order("k", BTC, "buy", "2", ord_type="limit", px="40000")  # reserves 2 * (40 + 0.2)
    bal = eng.balance("k", "USDT")
    assert bal.frozen == D("100") + D("80.4")  # position IM at mark + order reservation
    assert bal.available == D("200") - D("0.500001") - D("180.4")  # 19.099999 < 40.2 needed below
    with pytest.raises(InsufficientMargin):
        eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="40000")


def test_events_carry_account_and_balance_delta() -> None:
    eng = make()
    acc = eng.account_by_key("k")
    eng.set_price(BTC, "50000", bid="50000", ask="50000")
    b = eng.place_order("k", BTC, "buy", "1")
    for ev in b:
        assert ev.account_id == acc.account_id  # type: ignore[union-attr]
    bal = next(e for e in b if isinstance(e, BalanceEvent))
    assert bal.delta == D("-0.25") and bal.balance == D("99999.75") and bal.reason == "trade"
    pos = next(e for e in b if isinstance(e, PositionEvent))
    assert pos.position.qty == 1
    seqs = [e.seq for e in b]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
