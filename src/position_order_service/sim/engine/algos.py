"""Algo orders triggered by the price: SL/TP (conditional, oco), plain trigger, trailing stop.

The functions here are pure state machines over one algo and one price; the engine places the child order.

Trigger rules (``p`` = last or mark per ``trigger_px_type``):
- SL/TP, side sell (closing a long): SL fires when p <= sl_trigger_px, TP when p >= tp_trigger_px.
  Side buy mirrored (SL when p >= sl, TP when p <= tp). If both legs fire on one price, SL wins.
- trigger: direction fixed at placement (UP if trigger_px >= last then, else DOWN, unless given):
  fires when p >= trigger_px (UP) or p <= trigger_px (DOWN).
- move_order_stop (trailing): inactive until p reaches active_px (sell: p >= active_px; buy: p <= active_px;
  None = active at once). Sell tracks the highest p and fires when p <= highest*(1-ratio) (or highest-spread);
  buy tracks the lowest and fires when p >= lowest*(1+ratio) (or lowest+spread).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from .decimals import DecimalLike, to_optional_decimal
from .enums import (
    AlgoState,
    AlgoType,
    PosSide,
    Side,
    TpSlLeg,
    TriggerDirection,
    TriggerPxType,
    parse_enum,
)
from .errors import InvalidRequest, InvalidSize, InvalidTriggerPrice, NoMarketPrice, ReduceOnlyRejected
from .instruments import Instrument, check_price, check_size
from .serialize import slots_to_dict

__all__ = ["AlgoOrder", "AlgoStep", "advance", "build_algo", "conditional_fires"]

_ONE = Decimal(1)
_MINUS_ONE = Decimal(-1)


@dataclass(slots=True)
class AlgoOrder:
    algo_id: str  # numeric string, separate counter from order ids
    client_algo_id: str | None  # OKX algoClOrdId, Binance clientAlgoId
    account_id: str
    inst_id: str
    algo_type: AlgoType
    side: Side  # side of the order placed on trigger
    pos_side: PosSide
    sz: Decimal | None  # None = the whole position at trigger time (close_position)
    reduce_only: bool
    close_position: bool  # OKX closeFraction=1 / Binance closePosition=true
    state: AlgoState
    trigger_px_type: TriggerPxType
    created_ms: int
    updated_ms: int
    # conditional / oco (ord px None = market, OKX "-1")
    sl_trigger_px: Decimal | None = None
    sl_ord_px: Decimal | None = None
    tp_trigger_px: Decimal | None = None
    tp_ord_px: Decimal | None = None
    # plain trigger (order_px None = market)
    trigger_px: Decimal | None = None
    order_px: Decimal | None = None
    trigger_direction: TriggerDirection | None = None
    # trailing stop (exactly one of callback_ratio (fraction, 0.015 = 1.5%) / callback_spread (price))
    callback_ratio: Decimal | None = None
    callback_spread: Decimal | None = None
    active_px: Decimal | None = None
    activated: bool = False
    extreme_px: Decimal | None = None  # highest (sell) / lowest (buy) price since activation
    # outcome
    triggered_leg: TpSlLeg | None = None  # which conditional leg fired
    triggered_px: Decimal | None = None  # the price that fired it
    triggered_ms: int | None = None
    order_id: str | None = None  # child order placed on trigger (OKX ordId of the algo)
    fail_code: str | None = None  # EngineError.code of the failed child placement
    fail_reason: str | None = None
    tag: str | None = None
    attached_to_order_id: str | None = None  # created from that order's attach_tp_sl

    @property
    def is_live(self) -> bool:
        return self.state is AlgoState.LIVE

    @property
    def stop_px(self) -> Decimal | None:
        """Trailing stop: the price at which it fires now (None until activated)."""
        if self.algo_type is not AlgoType.MOVE_ORDER_STOP or self.extreme_px is None:
            return None
        return _trail_stop(self, self.extreme_px)

    def copy(self) -> AlgoOrder:
        return AlgoOrder(*_ALGO_GETTER(self))

    def to_dict(self) -> dict[str, Any]:
        d = slots_to_dict(self, _ALGO_FIELDS)
        stop = self.stop_px
        d["stop_px"] = None if stop is None else str(stop)
        return d


_ALGO_FIELDS = tuple(f.name for f in fields(AlgoOrder))
_ALGO_GETTER = attrgetter(*_ALGO_FIELDS)


@dataclass(slots=True, frozen=True)
class AlgoStep:
    """Outcome of feeding one price to an algo."""

    activated: bool = False  # trailing stop became active on this price
    fired: bool = False
    leg: TpSlLeg | None = None  # conditional leg that fired


_NOTHING = AlgoStep()
_ACTIVATED = AlgoStep(activated=True)
_FIRED = AlgoStep(fired=True)
_FIRED_SL = AlgoStep(fired=True, leg=TpSlLeg.SL)
_FIRED_TP = AlgoStep(fired=True, leg=TpSlLeg.TP)


def _trail_stop(algo: AlgoOrder, extreme: Decimal) -> Decimal:
    ratio = algo.callback_ratio
    if algo.side is Side.SELL:
        return extreme * (_ONE - ratio) if ratio is not None else extreme - (algo.callback_spread or 0)
    return extreme * (_ONE + ratio) if ratio is not None else extreme + (algo.callback_spread or 0)


def conditional_fires(algo: AlgoOrder, price: Decimal) -> TpSlLeg | None:
    """Which SL/TP leg fires at ``price`` (SL first), or None."""
    sl = algo.sl_trigger_px
    tp = algo.tp_trigger_px
    if algo.side is Side.SELL:
        if sl is not None and price <= sl:
            return TpSlLeg.SL
        if tp is not None and price >= tp:
            return TpSlLeg.TP
    else:
        if sl is not None and price >= sl:
            return TpSlLeg.SL
        if tp is not None and price <= tp:
            return TpSlLeg.TP
    return None


def advance(algo: AlgoOrder, price: Decimal) -> AlgoStep:
    """Feed one price to a live algo. Mutates trailing state (activation, extreme). Does not change ``state``."""
    t = algo.algo_type
    if t is AlgoType.MOVE_ORDER_STOP:
        sell = algo.side is Side.SELL
        if not algo.activated:
            act = algo.active_px
            if act is None or (price >= act if sell else price <= act):
                algo.activated = True
                algo.extreme_px = price
                return _ACTIVATED
            return _NOTHING
        extreme = algo.extreme_px
        assert extreme is not None
        if sell:
            if price > extreme:
                algo.extreme_px = extreme = price
            return _FIRED if price <= _trail_stop(algo, extreme) else _NOTHING
        if price < extreme:
            algo.extreme_px = extreme = price
        return _FIRED if price >= _trail_stop(algo, extreme) else _NOTHING
    if t is AlgoType.TRIGGER:
        trig = algo.trigger_px
        assert trig is not None
        if algo.trigger_direction is TriggerDirection.UP:
            return _FIRED if price >= trig else _NOTHING
        return _FIRED if price <= trig else _NOTHING
    leg = conditional_fires(algo, price)
    if leg is None:
        return _NOTHING
    return _FIRED_SL if leg is TpSlLeg.SL else _FIRED_TP


def _px(inst: Instrument, value: DecimalLike | None, name: str, allow_market: bool) -> Decimal | None:
    v = to_optional_decimal(value, name)
    if v is None or (allow_market and v == _MINUS_ONE):
        return None
    check_price(inst, v, name)
    return v


def build_algo(
    inst: Instrument,
    account_id: str,
    algo_type: AlgoType,
    side: Side,
    pos_side: PosSide,
    *,
    price: Decimal | None,
    ts: int,
    sz: DecimalLike | None = None,
    reduce_only: bool = False,
    close_position: bool = False,
    sl_trigger_px: DecimalLike | None = None,
    sl_ord_px: DecimalLike | None = None,
    tp_trigger_px: DecimalLike | None = None,
    tp_ord_px: DecimalLike | None = None,
    trigger_px: DecimalLike | None = None,
    order_px: DecimalLike | None = None,
    trigger_direction: TriggerDirection | str | None = None,
    callback_ratio: DecimalLike | None = None,
    callback_spread: DecimalLike | None = None,
    active_px: DecimalLike | None = None,
    trigger_px_type: TriggerPxType = TriggerPxType.LAST,
    client_algo_id: str | None = None,
    tag: str | None = None,
) -> AlgoOrder:
    """Validate an algo request and build the (id-less, live) algo. ``price`` is the current trigger price
    (last or mark per ``trigger_px_type``) or None. Raises EngineError subclasses; touches no state."""
    sz_d = to_optional_decimal(sz, "sz")
    if sz_d is None:
        if algo_type is AlgoType.TRIGGER:
            raise InvalidSize("sz is required for trigger orders", field="sz")
        close_position = True
    if close_position:
        sz_d = None
        reduce_only = True
    if sz_d is not None:
        check_size(inst, sz_d, False, "sz")
    if pos_side is not PosSide.NET:
        closing = (side is Side.SELL) is (pos_side is PosSide.LONG)
        if reduce_only and not closing:
            raise ReduceOnlyRejected("reduce-only algo on the opening side of a hedge position")
        reduce_only = closing
    algo = AlgoOrder(
        "",
        client_algo_id,
        account_id,
        inst.inst_id,
        algo_type,
        side,
        pos_side,
        sz_d,
        reduce_only,
        close_position,
        AlgoState.LIVE,
        trigger_px_type,
        ts,
        ts,
        tag=tag,
    )
    if algo_type is AlgoType.CONDITIONAL or algo_type is AlgoType.OCO:
        algo.sl_trigger_px = sl = _px(inst, sl_trigger_px, "sl_trigger_px", False)
        algo.sl_ord_px = _px(inst, sl_ord_px, "sl_ord_px", True)
        algo.tp_trigger_px = tp = _px(inst, tp_trigger_px, "tp_trigger_px", False)
        algo.tp_ord_px = _px(inst, tp_ord_px, "tp_ord_px", True)
        if sl is None and tp is None:
            raise InvalidTriggerPrice("sl_trigger_px or tp_trigger_px is required")
        if algo_type is AlgoType.OCO and (sl is None or tp is None):
            raise InvalidTriggerPrice("oco needs both sl_trigger_px and tp_trigger_px")
        if sl is not None and tp is not None and ((sl >= tp) if side is Side.SELL else (sl <= tp)):
            raise InvalidTriggerPrice("sl_trigger_px and tp_trigger_px are on the wrong sides")
        if price is not None and conditional_fires(algo, price) is not None:
            raise InvalidTriggerPrice(
                "trigger price already reached: the order would trigger at once", price=str(price)
            )
    elif algo_type is AlgoType.TRIGGER:
        trig = _px(inst, trigger_px, "trigger_px", False)
        if trig is None:
            raise InvalidTriggerPrice("trigger_px is required")
        algo.trigger_px = trig
        algo.order_px = _px(inst, order_px, "order_px", True)
        if trigger_direction is not None:
            algo.trigger_direction = parse_enum(TriggerDirection, trigger_direction, "trigger_direction")
        elif price is None:
            raise NoMarketPrice("no price yet: give trigger_direction", inst_id=inst.inst_id)
        else:
            algo.trigger_direction = TriggerDirection.UP if trig >= price else TriggerDirection.DOWN
    else:
        ratio = to_optional_decimal(callback_ratio, "callback_ratio")
        spread = to_optional_decimal(callback_spread, "callback_spread")
        if (ratio is None) == (spread is None):
            raise InvalidRequest("exactly one of callback_ratio and callback_spread is required")
        if ratio is not None and not 0 < ratio < 1:
            raise InvalidRequest("callback_ratio must be a fraction in (0, 1)", field="callback_ratio")
        if spread is not None and spread <= 0:
            raise InvalidRequest("callback_spread must be positive", field="callback_spread")
        algo.callback_ratio = ratio
        algo.callback_spread = spread
        algo.active_px = _px(inst, active_px, "active_px", False)
    return algo
