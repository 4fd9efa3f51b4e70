"""Positions (net and hedge mode), PnL, margin, leverage, balances of the simulator engine."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from position_order_service.sim.engine import (
    AccountConfigEvent,
    BalanceEvent,
    InsufficientMargin,
    InvalidLeverage,
    InvalidPositionSide,
    ManualClock,
    PositionEvent,
    PositionMode,
    PositionModeChangeRejected,
    PosSide,
    ReduceOnlyRejected,
    SimEngine,
)

BTC = "BTC-USDT-SWAP"


def make(balance: str = "100000", mode: str = "net", clock: ManualClock | None = None) -> SimEngine:
    eng = SimEngine("okx", seed=3, clock=clock)
    eng.create_account("k", "s", "p", balances={"USDT": balance}, position_mode=mode)
    return eng


def px(eng: SimEngine, price: str) -> None:
    eng.set_price(BTC, price, bid=price, ask=price)


def test_net_mode_averaging_partial_close_and_flip() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_order("k", BTC, "buy", "1")
    px(eng, "51000")
    eng.place_order("k", BTC, "buy", "1")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == 2 and pos.avg_px == D("50500")
    px(eng, "52000")
    b = eng.place_order("k", BTC, "sell", "0.5")
    assert b.order is not None and b.order.pnl == D("7.5")  # (52000-50500)*0.5*0.01
    pos = eng.position("k", BTC)
    assert (
        pos is not None and pos.qty == D("1.5") and pos.avg_px == D("50500") and pos.realized_pnl == D("7.5")
    )
    b = eng.place_order("k", BTC, "sell", "3")  # closes 1.5 (+22.5), opens 1.5 short at 52000
    assert b.order is not None and b.order.pnl == D("22.5")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.qty == D("-1.5") and pos.avg_px == D("52000") and pos.side == "short"
    assert pos.realized_pnl == D("30")
    fees = D("0.25") + D("0.255") + D("0.13") + D("0.78")
    assert eng.balance("k", "USDT").balance == D("100000") + D("30") - fees
    px(eng, "51000")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.upl == D("15") and pos.mark_px == D("51000")
    assert eng.balance("k", "USDT").upl == D("15")


def test_close_emits_flat_position_and_keeps_pos_id() -> None:
    clock = ManualClock(1_000)
    eng = make(clock=clock)
    px(eng, "50000")
    eng.place_order("k", BTC, "buy", "1")
    pos_id = eng.positions("k")[0].pos_id
    clock.advance(10)
    px(eng, "50100")
    b = eng.place_order("k", BTC, "sell", "1")
    flat = [e for e in b if isinstance(e, PositionEvent)][-1].position
    assert flat.qty == 0 and flat.side is None and flat.pos_id == pos_id
    assert flat.realized_pnl == D("1") and flat.liq_px is None and flat.upl == 0
    assert eng.positions("k") == []
    assert len(eng.positions("k", include_flat=True)) == 1
    clock.advance(10)
    eng.place_order("k", BTC, "sell", "1")
    pos = eng.positions("k")[0]
    assert pos.pos_id == pos_id and pos.created_ms == 1_020 and pos.realized_pnl == 0


def test_hedge_mode_long_and_short_at_once() -> None:
    eng = make(mode="long_short")
    px(eng, "50000")
    eng.place_order("k", BTC, "buy", "1", pos_side="long")
    eng.place_order("k", BTC, "sell", "2", pos_side="short")
    longs = eng.position("k", BTC, "long")
    shorts = eng.position("k", BTC, "short")
    assert longs is not None and longs.qty == 1 and longs.side == "long"
    assert shorts is not None and shorts.qty == 2 and shorts.signed_qty == -2 and shorts.side == "short"
    px(eng, "49000")
    b = eng.place_order("k", BTC, "buy", "1", pos_side="short")  # closes part of the short
    assert b.order is not None and b.order.reduce_only and b.order.pnl == D("10")
    b = eng.place_order("k", BTC, "sell", "5", pos_side="long")  # closing order capped to the long
    assert b.order is not None and b.order.sz == 1 and b.order.pnl == D("-10")
    longs = eng.position("k", BTC, "long")
    shorts = eng.position("k", BTC, "short")
    assert longs is not None and longs.qty == 0
    assert shorts is not None and shorts.qty == 1
    with pytest.raises(ReduceOnlyRejected):  # nothing left to close on the long side
        eng.place_order("k", BTC, "sell", "1", pos_side="long")
    with pytest.raises(ReduceOnlyRejected):  # reduce-only on the opening side
        eng.place_order("k", BTC, "buy", "1", pos_side="long", reduce_only=True)
    with pytest.raises(InvalidPositionSide):
        eng.place_order("k", BTC, "buy", "1")
    with pytest.raises(InvalidPositionSide):
        eng.place_order("k", BTC, "buy", "1", pos_side="net")


def test_insufficient_margin_rejected_and_state_unchanged() -> None:
    eng = make(balance="100")
    px(eng, "50000")
    before = eng.snapshot()
    with pytest.raises(InsufficientMargin) as exc:
        eng.place_order("k", BTC, "buy", "2")  # IM 100 + fee 0.5 > 100
    assert exc.value.code == "insufficient_margin"
    assert eng.snapshot() == before
    b = eng.place_order("k", BTC, "buy", "1")  # IM 50 + fee 0.25
    assert b.order is not None and b.order.filled_sz == 1


def test_closing_part_needs_no_margin_opening_part_does() -> None:
    eng = make(balance="60")
    px(eng, "50000")
    eng.place_order("k", BTC, "buy", "1")
    assert eng.balance("k", "USDT").available == D("9.75")
    with pytest.raises(InsufficientMargin):
        eng.place_order("k", BTC, "sell", "2")  # closes 1, opens 1 -> needs 50.25
    b = eng.place_order("k", BTC, "sell", "1")
    assert b.order is not None and b.order.filled_sz == 1


def test_leverage_changes_margin() -> None:
    eng = make(balance="120")
    px(eng, "50000")
    assert eng.get_leverage("k", BTC) == 10
    b = eng.set_leverage("k", BTC, 20)
    cfg = b[0]
    assert isinstance(cfg, AccountConfigEvent) and cfg.leverage == 20 and cfg.kind == "leverage"
    eng.place_order("k", BTC, "buy", "2")  # IM 50 at 20x
    pos = eng.position("k", BTC)
    assert pos is not None and pos.leverage == 20 and pos.imr == D("50")
    assert pos.liq_px == D("47700.0")  # 50000 * (1 - 1/20 + 0.004)
    before = eng.snapshot()
    with pytest.raises(InsufficientMargin):
        eng.set_leverage("k", BTC, 5)  # IM would be 200
    assert eng.snapshot() == before
    b = eng.set_leverage("k", BTC, 10)
    pe = [e for e in b if isinstance(e, PositionEvent)]
    assert pe and pe[0].position.imr == D("100") and pe[0].position.leverage == 10
    for bad in (0, 101, "10", 5.0):
        with pytest.raises(InvalidLeverage):
            eng.set_leverage("k", BTC, bad)  # type: ignore[arg-type]


def test_liquidation_price_short() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_order("k", BTC, "sell", "1")
    pos = eng.position("k", BTC)
    assert pos is not None and pos.liq_px == D("54800.0")  # 50000 * (1 + 0.1 - 0.004)


def test_position_mode_change_rules() -> None:
    eng = make()
    px(eng, "50000")
    eng.place_order("k", BTC, "buy", "1")
    before = eng.snapshot()
    with pytest.raises(PositionModeChangeRejected) as exc:
        eng.set_position_mode("k", "long_short")
    assert exc.value.code == "position_mode_change_rejected"
    assert eng.snapshot() == before
    eng.place_order("k", BTC, "sell", "1")
    b = eng.set_position_mode("k", PositionMode.LONG_SHORT)
    assert isinstance(b[0], AccountConfigEvent) and b[0].position_mode is PositionMode.LONG_SHORT
    assert eng.account_by_key("k").position_mode is PositionMode.LONG_SHORT
    assert eng.set_position_mode("k", "long_short") == []  # no-op
    eng.place_order("k", BTC, "buy", "1", pos_side=PosSide.LONG)


def test_deposit_withdraw_and_set_balance() -> None:
    eng = make(balance="100")
    b = eng.deposit("k", "USDT", "50")
    ev = b[0]
    assert isinstance(ev, BalanceEvent) and ev.reason == "deposit" and ev.balance == 150 and ev.delta == 50
    px(eng, "50000")
    eng.place_order("k", BTC, "buy", "2")  # uses 100 of margin
    with pytest.raises(InsufficientMargin):
        eng.deposit("k", "USDT", "-60")
    with pytest.raises(InsufficientMargin):
        eng.set_balance("k", "USDT", "90")
    b = eng.set_balance("k", "USDT", "1000")
    assert isinstance(b[0], BalanceEvent) and b[0].balance == 1000


def test_accounts_lookup_and_snapshot_hides_secrets() -> None:
    eng = make()
    acc = eng.account_by_key("k")
    assert acc.secret == "s" and acc.passphrase == "p" and acc.account_id.isdigit()
    assert eng.account(acc.account_id).api_key == "k"
    acc.balances["USDT"] = D(0)  # a copy: the engine is unaffected
    assert eng.balance("k", "USDT").balance == D("100000")
    snap = eng.snapshot()
    text = repr(snap)
    assert "'secret'" not in text and "passphrase" not in text
    assert snap["accounts"][0]["api_key"] == "k"


def test_fee_rates_per_account() -> None:
    eng = SimEngine("okx", seed=1)
    eng.create_account(
        "vip", "s", balances={"USDT": "1000"}, maker_fee_rate="-0.0001", taker_fee_rate="0.0003"
    )
    eng.set_price(BTC, "50000", bid="50000", ask="50000")
    b = eng.place_order("vip", BTC, "buy", "1")
    assert b.order is not None and b.order.fee == D("0.15")
    eng.place_order("vip", BTC, "sell", "1", ord_type="limit", px="50100")
    eng.set_price(BTC, "50200")
    assert eng.fills("vip")[0].fee == D("-0.0501")  # maker rebate


def test_contract_value_in_pnl_eth() -> None:
    eng = make()
    eth = "ETH-USDT-SWAP"  # ctVal 0.1 ETH per contract
    eng.set_price(eth, "3000", bid="3000", ask="3000")
    eng.place_order("k", eth, "buy", "10")
    pos = eng.position("k", eth)
    assert pos is not None and pos.notional == D("3000") and pos.imr == D("300")
    eng.set_price(eth, "3100", bid="3100", ask="3100")
    pos = eng.position("k", eth)
    assert pos is not None and pos.upl == D("100") and pos.upl_ratio == D("100") / D("310")
    b = eng.place_order("k", eth, "sell", "10")
    assert b.order is not None and b.order.pnl == D("100") and b.order.fee == D("1.55")
