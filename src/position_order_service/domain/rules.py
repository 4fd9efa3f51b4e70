"""Conditional cancellation rules (SPEC section 6): when order A reaches a condition, cancel B, C, ..."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .enums import Exchange, OrderStatus
from .models import Order, Positive, UtcDateTime, new_id, utc_now


class Condition(StrEnum):
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"  # any fill, including a complete one
    CANCELLED = "cancelled"
    PRICE_REACHED = "price_reached"


class Direction(StrEnum):
    ABOVE = "above"  # price >= level
    BELOW = "below"  # price <= level


class RuleState(StrEnum):
    ACTIVE = "active"
    TRIGGERED = "triggered"  # cancels under way (re-run after a crash: cancelling is idempotent)
    EXECUTED = "executed"
    FAILED = "failed"  # some cancels failed
    DELETED = "deleted"

    @property
    def is_final(self) -> bool:
        return self in (RuleState.EXECUTED, RuleState.FAILED, RuleState.DELETED)


class ConditionalRule(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=new_id)
    user_id: Annotated[str, Field(min_length=1, max_length=128)]
    exchange: Exchange
    trigger_order_id: Annotated[str, Field(min_length=1, max_length=64)]
    cancel_order_ids: Annotated[list[str], Field(min_length=1, max_length=50)]
    condition: Condition
    symbol: str | None = None  # needed for price_reached; filled in from the trigger order otherwise
    price: Positive | None = None
    direction: Direction | None = None
    state: RuleState = RuleState.ACTIVE
    cancelled_ids: list[str] = Field(default_factory=list)
    already_closed_ids: list[str] = Field(default_factory=list)
    failed_ids: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)
    triggered_by: str | None = None
    version: int = 0
    pair_rule_id: str | None = None  # the other half of an OCO
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDateTime = Field(default_factory=utc_now)
    updated_at: UtcDateTime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _check(self) -> ConditionalRule:
        if self.condition is Condition.PRICE_REACHED:
            if self.price is None or self.direction is None:
                raise ValueError("price_reached needs price and direction (above or below)")
            if not self.symbol:
                raise ValueError("price_reached needs the symbol whose price to watch")
        if self.trigger_order_id in self.cancel_order_ids:
            raise ValueError("cancel_order_ids must not contain the trigger order itself")
        if len(set(self.cancel_order_ids)) != len(self.cancel_order_ids):
            raise ValueError("cancel_order_ids has duplicates")
        return self


def order_meets(condition: Condition, order: Order) -> bool:
    match condition:
        case Condition.FILLED:
            return order.status is OrderStatus.FILLED
        case Condition.PARTIALLY_FILLED:
            return order.filled_qty > 0
        case Condition.CANCELLED:
            return order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
        case _:
            return False


def price_meets(rule: ConditionalRule, price: Decimal) -> bool:
    if rule.condition is not Condition.PRICE_REACHED or rule.price is None:
        return False
    return price >= rule.price if rule.direction is Direction.ABOVE else price <= rule.price


def event_fields(rule: ConditionalRule) -> dict[str, Any]:
    return {
        "rule_id": rule.id,
        "trigger_order_id": rule.trigger_order_id,
        "cancel_order_ids": rule.cancel_order_ids,
        "condition": rule.condition.value,
        "cancelled_ids": rule.cancelled_ids,
        "already_closed_ids": rule.already_closed_ids,
        "failed_ids": rule.failed_ids,
        "state": rule.state.value,
    }
