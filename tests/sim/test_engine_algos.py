"""Algo orders of the simulator engine: SL/TP/OCO, plain triggers, trailing stops, attached TP/SL."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from position_order_service.sim.engine import (
    AlgoEvent,
    AlgoEventKind,
    AlgoNotFound,
    AlgoState,
    AlgoType,
    AttachedTpSl,
    DuplicateClientOrderId,
    EngineError,
    EventBatch,
    InvalidRequest,
    InvalidSize,
    InvalidTriggerPrice,
    Liquidity,
    NoMarketPrice,
    OrderEvent,
    OrderEventKind,
    OrderState,
    SimEngine,
    TpSlLeg,
    TriggerDirection,
)

BTC = "BTC-USDT-SWAP"


def make(balance: str = "100000", mode: str = "net") -> SimEngine:
    eng = SimEngine("okx", seed=11)
    eng.create_account("k", "s", "p", balances={"USDT": balance}, position_mode=mode)
    return eng


def px(eng: SimEngine, price: str) -> EventBatch:
    return eng.set_price(BTC, price, bid=price, ask=price)


def algo_events(batch: EventBatch) -> list[AlgoEvent]:
    return [e for e in batch if isinstance(e, AlgoEvent)]


def trades(batch: EventBatch) -> list[OrderEvent]:
    return [e for e in batch if isinstance(e, OrderEvent) and e.kind is OrderEventKind.TRADE]


def qty(eng: SimEngine) -> D:
    pos = eng.position("k", BTC)
    return D(0) if pos is None else pos.signed_qty


def long_at(price: str, sz: str = "1", balance: str = "100000") -> SimEngine:
    eng = make(balance)
    px(eng, price)
    eng.place_order("k", BTC, "buy", sz)
    return eng


# ---------------------------------------------------------------- SL / TP / OCO


def test_stop_loss_triggers_exactly_at_trigger_price() -> None:
    eng = long_at("50000")
    b = eng.place_algo(
        "k", BTC, "oco", "sell", sl_trigger_px="49000", tp_trigger_px="51000", client_algo_id="a1"
    )
    algo = b.algo
    assert algo is not None and algo.state is AlgoState.LIVE and algo.close_position and algo.reduce_only
    assert algo.algo_id.isdigit() and algo_events(b)[0].kind is AlgoEventKind.NEW
    assert not algo_events(px(eng, "49000.1"))
    b = px(eng, "49000")
    (trig,) = algo_events(b)
    assert trig.kind is AlgoEventKind.TRIGGERED and trig.algo.state is AlgoState.EFFECTIVE
    assert trig.algo.triggered_leg is TpSlLeg.SL and trig.algo.triggered_px == D("49000")
    (fill_ev,) = trades(b)
    assert fill_ev.order.order_id == trig.algo.order_id
    assert fill_ev.order.algo_id == algo.algo_id and fill_ev.order.algo_client_id == "a1"
    assert fill_ev.order.reduce_only and fill_ev.order.ord_type == "market"
    assert fill_ev.fill is not None and fill_ev.fill.px == D("49000") and fill_ev.fill.algo_id == algo.algo_id
    assert qty(eng) == 0
    assert eng.open_algos("k") == []
    assert eng.get_algo("k", client_algo_id="a1").state is AlgoState.EFFECTIVE
    assert eng.algo_history("k")[0].algo_id == algo.algo_id


def test_take_profit_triggers_exactly_at_trigger_price() -> None:
    eng = long_at("50000")
    eng.place_algo("k", BTC, "conditional", "sell", sz="1", reduce_only=True, tp_trigger_px="51000")
    assert not algo_events(px(eng, "50999.9"))
    b = px(eng, "51000")
    assert algo_events(b)[0].algo.triggered_leg is TpSlLeg.TP
    assert qty(eng) == 0


def test_buy_side_stop_for_short() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_order("k", BTC, "sell", "2")
    eng.place_algo("k", BTC, "conditional", "buy", sz="2", reduce_only=True, sl_trigger_px="51000")
    assert not algo_events(px(eng, "50999.9"))
    assert algo_events(px(eng, "51000"))[0].kind is AlgoEventKind.TRIGGERED
    assert qty(eng) == 0


def test_stop_with_limit_order_price() -> None:
    eng = long_at("50000")
    eng.place_algo("k", BTC, "conditional", "sell", sz="1", sl_trigger_px="49000", sl_ord_px="48900")
    eng.set_price(BTC, "49000", bid="48950", ask="49050")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == 0
    fill = eng.fills("k")[0]
    assert fill.px == D("48950") and fill.liquidity is Liquidity.TAKER  # marketable limit takes the bid


def test_sl_tp_validation() -> None:
    eng = long_at("50000")
    before = eng.snapshot()
    cases: list[dict[str, str]] = [
        {"sl_trigger_px": "50000"},  # would fire at once (sell stop needs last > trigger)
        {"tp_trigger_px": "49000"},
        {"sl_trigger_px": "51000", "tp_trigger_px": "52000"},  # sl above last for a sell
        {"sl_trigger_px": "49000.05"},  # off tick
        {},
    ]
    for kw in cases:
        with pytest.raises(EngineError) as exc:
            eng.place_algo("k", BTC, "conditional", "sell", **kw)  # type: ignore[arg-type]
        assert exc.value.code in ("invalid_trigger_price", "invalid_price")
    with pytest.raises(InvalidTriggerPrice):
        eng.place_algo("k", BTC, "oco", "sell", sl_trigger_px="49000")
    with pytest.raises(InvalidTriggerPrice):
        eng.place_algo("k", BTC, "conditional", "sell", sl_trigger_px="49500", tp_trigger_px="49400")
    assert eng.snapshot() == before


def test_mark_price_trigger() -> None:
    eng = long_at("50000")
    eng.place_algo("k", BTC, "conditional", "sell", sl_trigger_px="49000", trigger_px_type="mark")
    assert not algo_events(eng.set_price(BTC, "48000", mark="49500"))
    assert algo_events(eng.set_price(BTC, "48000", mark="49000"))[0].kind is AlgoEventKind.TRIGGERED


def test_close_position_algo_fails_without_position() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_algo("k", BTC, "conditional", "sell", sl_trigger_px="49000")
    b = px(eng, "49000")
    (ev,) = algo_events(b)
    assert ev.kind is AlgoEventKind.FAILED and ev.algo.state is AlgoState.ORDER_FAILED
    assert ev.algo.fail_code == "reduce_only_rejected" and ev.algo.order_id is None
    assert not [e for e in b if isinstance(e, OrderEvent)]


# ---------------------------------------------------------------- plain trigger


def test_trigger_order_up_places_market() -> None:
    eng = make()
    px(eng, "50000")
    b = eng.place_algo("k", BTC, "trigger", "buy", sz="1", trigger_px="51000")
    assert b.algo is not None and b.algo.trigger_direction is TriggerDirection.UP
    assert not algo_events(px(eng, "50999.9"))
    b = px(eng, "51000")
    assert algo_events(b)[0].kind is AlgoEventKind.TRIGGERED
    assert [e.kind for e in b if isinstance(e, OrderEvent)] == [OrderEventKind.NEW, OrderEventKind.TRADE]
    assert qty(eng) == 1


def test_trigger_order_down_places_limit() -> None:
    eng = make()
    px(eng, "50000")
    b = eng.place_algo("k", BTC, "trigger", "sell", sz="1", trigger_px="49000", order_px="49100")
    assert b.algo is not None and b.algo.trigger_direction is TriggerDirection.DOWN
    b = px(eng, "49000")
    (trig,) = algo_events(b)
    order = eng.get_order("k", order_id=trig.algo.order_id)
    assert order.ord_type == "limit" and order.px == D("49100") and order.state is OrderState.LIVE
    assert order.algo_id == trig.algo.algo_id
    px(eng, "49100")
    assert qty(eng) == -1


def test_trigger_order_needs_size_and_direction_without_price() -> None:
    eng = make()
    with pytest.raises(InvalidSize):
        eng.place_algo("k", BTC, "trigger", "buy", trigger_px="51000")
    with pytest.raises(NoMarketPrice):
        eng.place_algo("k", BTC, "trigger", "buy", sz="1", trigger_px="51000")
    b = eng.place_algo("k", BTC, "trigger", "buy", sz="1", trigger_px="51000", trigger_direction="up")
    assert b.algo is not None and b.algo.trigger_direction is TriggerDirection.UP


def test_trigger_child_rejected_for_margin_is_order_failed() -> None:
    eng = make(balance="10")
    px(eng, "50000")
    eng.place_algo("k", BTC, "trigger", "buy", sz="1", trigger_px="51000")
    (ev,) = algo_events(px(eng, "51000"))
    assert ev.kind is AlgoEventKind.FAILED and ev.algo.fail_code == "insufficient_margin"


# ---------------------------------------------------------------- trailing stops


def test_trailing_sell_ratio_with_activation() -> None:
    eng = long_at("50000")
    b = eng.place_algo("k", BTC, "move_order_stop", "sell", sz="1", callback_ratio="0.01", active_px="51000")
    assert b.algo is not None and not b.algo.activated and b.algo.stop_px is None
    assert not algo_events(px(eng, "50500"))
    (act,) = algo_events(px(eng, "51000"))
    assert act.kind is AlgoEventKind.ACTIVATED and act.algo.extreme_px == D("51000")
    assert act.algo.stop_px == D("50490")
    assert not algo_events(px(eng, "52000"))  # new high, stop moves to 51480
    assert eng.open_algos("k")[0].stop_px == D("51480")
    assert not algo_events(px(eng, "51480.1"))
    assert not algo_events(px(eng, "51600"))  # below the high: stop does not move down
    b = px(eng, "51480")
    (trig,) = algo_events(b)
    assert trig.kind is AlgoEventKind.TRIGGERED and trig.algo.triggered_px == D("51480")
    assert trades(b)[0].fill is not None and trades(b)[0].fill.px == D("51480")  # type: ignore[union-attr]
    assert qty(eng) == 0


def test_trailing_buy_spread_active_at_once() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_order("k", BTC, "sell", "1")
    b = eng.place_algo("k", BTC, "move_order_stop", "buy", callback_spread="100")
    assert b.algo is not None and b.algo.activated and b.algo.extreme_px == D("50000")
    assert b.algo.stop_px == D("50100") and b.algo.close_position
    assert not algo_events(px(eng, "49000"))  # new low, stop 49100
    assert not algo_events(px(eng, "49099.9"))
    (trig,) = algo_events(px(eng, "49100"))
    assert trig.kind is AlgoEventKind.TRIGGERED
    assert qty(eng) == 0


def test_trailing_buy_ratio_with_activation() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_order("k", BTC, "sell", "1")
    eng.place_algo("k", BTC, "move_order_stop", "buy", sz="1", callback_ratio="0.02", active_px="49000")
    assert not algo_events(px(eng, "49500"))
    assert algo_events(px(eng, "49000"))[0].kind is AlgoEventKind.ACTIVATED
    assert not algo_events(px(eng, "48000"))  # stop 48960
    assert not algo_events(px(eng, "48959.9"))
    assert algo_events(px(eng, "48960"))[0].kind is AlgoEventKind.TRIGGERED
    assert qty(eng) == 0


def test_trailing_sell_spread_without_price_activates_on_first_tick() -> None:
    eng = make()
    eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="50000")
    b = eng.place_algo("k", BTC, "move_order_stop", "sell", sz="1", callback_spread="50")
    assert b.algo is not None and not b.algo.activated
    b = px(eng, "49990")  # fills the limit, then the trailing stop activates
    assert algo_events(b)[0].kind is AlgoEventKind.ACTIVATED
    assert not algo_events(px(eng, "49940.1"))
    assert algo_events(px(eng, "49940"))[0].kind is AlgoEventKind.TRIGGERED


def test_trailing_validation() -> None:
    eng = long_at("50000")
    for kw in (
        {},
        {"callback_ratio": "0.01", "callback_spread": "10"},
        {"callback_ratio": "1.5"},
        {"callback_ratio": "0"},
        {"callback_spread": "-1"},
    ):
        with pytest.raises(InvalidRequest):
            eng.place_algo("k", BTC, "move_order_stop", "sell", sz="1", **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- cancel, lookups, attached


def test_cancel_algo_semantics() -> None:
    eng = long_at("50000")
    a = eng.place_algo("k", BTC, "conditional", "sell", sl_trigger_px="49000", client_algo_id="x").algo
    assert a is not None
    with pytest.raises(DuplicateClientOrderId):
        eng.place_algo("k", BTC, "conditional", "sell", sl_trigger_px="48000", client_algo_id="x")
    b = eng.cancel_algo("k", client_algo_id="x")
    assert algo_events(b)[0].kind is AlgoEventKind.CANCELED and b.algo is not None
    assert b.algo.state is AlgoState.CANCELED
    with pytest.raises(AlgoNotFound) as exc:
        eng.cancel_algo("k", algo_id=a.algo_id)
    assert exc.value.code == "algo_not_found" and exc.value.details["state"] is AlgoState.CANCELED
    with pytest.raises(AlgoNotFound):
        eng.cancel_algo("k", algo_id="1")
    assert not algo_events(px(eng, "48000"))  # canceled: never fires
    assert qty(eng) == 1


def test_open_algos_filter() -> None:
    eng = long_at("50000")
    eng.place_algo("k", BTC, "oco", "sell", sl_trigger_px="49000", tp_trigger_px="51000")
    eng.place_algo("k", BTC, "trigger", "buy", sz="1", trigger_px="52000")
    eng.place_algo("k", BTC, "move_order_stop", "sell", callback_ratio="0.01")
    assert [a.algo_type for a in eng.open_algos("k", algo_type="conditional")] == [AlgoType.OCO]
    assert [a.algo_type for a in eng.open_algos("k", algo_type="trigger")] == [AlgoType.TRIGGER]
    assert len(eng.open_algos("k", BTC)) == 3


def test_attached_tp_sl_created_on_fill_and_fires() -> None:
    eng = make()
    px(eng, "50000")
    att = AttachedTpSl(sl_trigger_px=D("48000"), tp_trigger_px=D("50500"))
    b = eng.place_order("k", BTC, "buy", "1", ord_type="limit", px="49000", attach_tp_sl=att)
    assert b.order is not None and b.order.attach_tp_sl == att
    parent = b.order.order_id
    assert eng.open_algos("k") == []
    b = px(eng, "49000")
    (new,) = algo_events(b)
    assert new.kind is AlgoEventKind.NEW and new.algo.algo_type is AlgoType.OCO
    assert new.algo.attached_to_order_id == parent and new.algo.sz == 1 and new.algo.side == "sell"
    b = px(eng, "50500")
    assert algo_events(b)[0].algo.triggered_leg is TpSlLeg.TP
    assert qty(eng) == 0
    with pytest.raises(InvalidTriggerPrice):
        eng.place_order("k", BTC, "buy", "1", attach_tp_sl=AttachedTpSl(sl_trigger_px=D("51000")))
