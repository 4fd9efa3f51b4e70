"""Trailing stops (SPEC section 5): the model and its pure state machine.

Long (protecting a long position): inactive until price >= activation (none = active at once); then
extreme = max(price seen), stop = extreme x (1 - r), trigger when price <= stop. Short mirrored: extreme = min,
stop = extreme x (1 + r), trigger when price >= stop. The extreme and the stop only move in the trader's
favour. Decimal is the truth: the stop is always recomputed exactly from the stored extreme.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .enums import Exchange, PositionSide
from .events import dec
from .models import Money, Positive, UtcDateTime, new_id, utc_now


class StopState(StrEnum):
    PLACING = "placing"  # native: recorded with its client order id before its exchange order is sent
    PENDING = "pending"  # waiting for the activation price
    ACTIVE = "active"  # trailing
    TRIGGERED = "triggered"  # the close order is being sent (exactly one instance does it)
    EXECUTED = "executed"  # the close order was placed
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_live(self) -> bool:
        return self in (StopState.PENDING, StopState.ACTIVE)

    @property
    def is_final(self) -> bool:
        return self in (StopState.EXECUTED, StopState.FAILED, StopState.CANCELLED)


class PriceSource(StrEnum):
    LAST = "last"
    MARK = "mark"
    BID_ASK = "bid_ask"  # a long's stop watches the bid, a short's the ask: the price it would close at


class StopMode(StrEnum):
    EMULATED = "emulated"  # the service watches the price and sends a reduce-only market order
    NATIVE = "native"  # the exchange's own trailing order (OKX move_order_stop, Binance TRAILING_STOP_MARKET)


class TrailingStop(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=new_id)
    user_id: Annotated[str, Field(min_length=1, max_length=128)]
    exchange: Exchange
    symbol: Annotated[str, Field(min_length=1, max_length=64)]
    side: PositionSide
    callback_rate: Annotated[Money, Field(gt=0, lt=1)]
    activation_price: Positive | None = None
    size: Positive | None = None  # None = the whole position
    order_id: str | None = None  # optional link to the order the stop belongs to
    price_source: PriceSource = PriceSource.LAST
    mode: StopMode = StopMode.EMULATED
    state: StopState = StopState.PENDING
    extreme_price: Positive | None = None
    trigger_price: Positive | None = None  # the price that fired it
    close_client_order_id: str | None = None
    close_order_id: str | None = None  # the reduce-only order sent on trigger (or the native order)
    filled_size: Money | None = None
    error: str | None = None
    version: int = 0
    owner: str | None = None
    lease_until_ms: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDateTime = Field(default_factory=utc_now)
    updated_at: UtcDateTime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _consistent(self) -> TrailingStop:
        if self.state is StopState.ACTIVE and self.mode is StopMode.EMULATED and self.extreme_price is None:
            raise ValueError("an active emulated trailing stop needs its extreme_price")
        return self

    @property
    def stop_price(self) -> Decimal | None:
        if self.extreme_price is None:
            return None
        return stop_from_extreme(self.side, self.extreme_price, self.callback_rate)

    def key_parts(self) -> tuple[str, str, str, str]:
        return self.user_id, self.exchange.value, self.symbol, self.side.value


def stop_from_extreme(side: PositionSide, extreme: Decimal, rate: Decimal) -> Decimal:
    return extreme * (1 - rate) if side is PositionSide.LONG else extreme * (1 + rate)


class Step(StrEnum):
    ACTIVATED = "activated"
    UPDATED = "updated"
    TRIGGERED = "triggered"


@dataclass(frozen=True, slots=True)
class Advance:
    step: Step
    extreme: Decimal
    stop: Decimal
    price: Decimal


def favourable(side: PositionSide, price: Decimal, extreme: Decimal) -> bool:
    return price > extreme if side is PositionSide.LONG else price < extreme


def crossed(side: PositionSide, price: Decimal, stop: Decimal) -> bool:
    return price <= stop if side is PositionSide.LONG else price >= stop


def reached_activation(side: PositionSide, price: Decimal, activation: Decimal | None) -> bool:
    if activation is None:
        return True
    return price >= activation if side is PositionSide.LONG else price <= activation


def advance(
    side: PositionSide,
    state: StopState,
    rate: Decimal,
    activation: Decimal | None,
    extreme: Decimal | None,
    price: Decimal,
) -> Advance | None:
    """One price through the state machine; None when nothing changes."""
    if state is StopState.PENDING:
        if not reached_activation(side, price, activation):
            return None
        return Advance(Step.ACTIVATED, price, stop_from_extreme(side, price, rate), price)
    if state is not StopState.ACTIVE or extreme is None:
        return None
    if favourable(side, price, extreme):
        return Advance(Step.UPDATED, price, stop_from_extreme(side, price, rate), price)
    stop = stop_from_extreme(side, extreme, rate)
    if crossed(side, price, stop):
        return Advance(Step.TRIGGERED, extreme, stop, price)
    return None


def observed_price(source: PriceSource, side: PositionSide, last: Decimal, bid: Decimal | None,
                   ask: Decimal | None, mark: Decimal | None) -> Decimal:  # fmt: skip
    if source is PriceSource.MARK and mark is not None:
        return mark
    if source is PriceSource.BID_ASK:
        quote = bid if side is PositionSide.LONG else ask
        if quote is not None:
            return quote
    return last


def event_fields(stop: TrailingStop) -> dict[str, Any]:
    return {
        "trailing_stop_id": stop.id,
        "symbol": stop.symbol,
        "side": stop.side.value,
        "activation_price": dec(stop.activation_price),
        "callback_rate": dec(stop.callback_rate),
        "extreme_price": dec(stop.extreme_price),
        "stop_price": dec(stop.stop_price),
        "order_id": stop.close_order_id or stop.order_id,
        "state": stop.state.value,
        "reason": stop.error,
        "mode": stop.mode.value,
        "size": dec(stop.size),
    }


__all__ = [
    "Advance",
    "PriceSource",
    "Step",
    "StopMode",
    "StopState",
    "TrailingStop",
    "advance",
]
