"""The shared trading model (SPEC section 1): Position, Order, PnLInfo.

Money and sizes are Decimal. A float given at the boundary is read through its shortest repr (0.1 ->
Decimal("0.1")), never its binary expansion; on the wire they are strings. Times are timezone-aware UTC.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
    model_validator,
)

from .enums import (
    Exchange,
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    PositionStatus,
    TimeInForce,
)


def _to_decimal(value: Any) -> Any:
    """Accept Decimal, int and numeric strings; turn floats into their shortest repr (0.1 -> "0.1").

    The seeds' bots pass floats such as `size=0.1`; str(float) gives the shortest round-tripping repr,
    which is the number the caller wrote, never the binary approximation.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, float):
        if math.isnan(value) or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("must be a number, got an empty string")
        return text
    return value


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def plain(value: Decimal) -> str:
    """A decimal as a plain string, never exponent notation ("0E+1" -> "0", "1E+5" -> "100000")."""
    if value == 0:
        value = abs(value)  # -0 -> 0
    return format(value, "f")


PERCENT = Decimal("0.01")


def percent(value: Decimal) -> Decimal:
    """Percentages carry 2 decimals on the wire (33.33, 100.00)."""
    return value.quantize(PERCENT, rounding=ROUND_HALF_EVEN)


# every Decimal of the model serialises to JSON as a plain string
PlainDecimal = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]
Money = Annotated[PlainDecimal, BeforeValidator(_to_decimal), AfterValidator(_finite)]
NonNegative = Annotated[Money, Field(ge=0)]
Positive = Annotated[Money, Field(gt=0)]
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
GridLevel = Annotated[int, Field(ge=0, le=20)]


def utc_now() -> datetime:
    return datetime.now(UTC)


# A random (version 4) UUID's bits: uuid.uuid4().hex spelled in one int operation (half its cost: one per record
# and one per event on the tracking hot path).
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def new_id() -> str:
    return f"{int.from_bytes(os.urandom(16)) & _UUID4_KEEP | _UUID4_SET:032x}"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        use_enum_values=False,
        ser_json_inf_nan="strings",
    )


class PnLInfo(_Model):
    realized: Money = Decimal("0")
    unrealized: Money = Decimal("0")
    fees: NonNegative = Decimal("0")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def net(self) -> PlainDecimal:
        return self.realized + self.unrealized - self.fees


class Position(_Model):
    id: str = Field(default_factory=new_id)
    user_id: Annotated[str, Field(min_length=1, max_length=128)]
    exchange: Exchange
    symbol: Annotated[str, Field(min_length=1, max_length=64)]
    side: PositionSide
    size: NonNegative
    entry_price: NonNegative
    current_price: Positive | None = None
    exit_price: Positive | None = None
    leverage: Annotated[int, Field(ge=1, le=125)] = 1
    margin_mode: MarginMode = MarginMode.CROSS
    liquidation_price: NonNegative | None = None
    stop_loss_price: Positive | None = None
    take_profit_price: Positive | None = None
    grid_level: GridLevel | None = None
    pnl: PnLInfo = Field(default_factory=PnLInfo)
    status: PositionStatus = PositionStatus.OPEN
    external: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDateTime = Field(default_factory=utc_now)
    updated_at: UtcDateTime = Field(default_factory=utc_now)
    closed_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _check_status(self) -> Position:
        if self.status is PositionStatus.OPEN and self.closed_at is not None:
            raise ValueError("closed_at is set but status is open")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_open(self) -> bool:
        return self.status is PositionStatus.OPEN and self.size > 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def notional_value(self) -> PlainDecimal:
        return self.size * (self.current_price if self.current_price is not None else self.entry_price)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pnl_percentage(self) -> PlainDecimal:
        """Unrealized PnL as a percentage of the margin put up (entry notional / leverage), 2 decimals."""
        margin = self.size * self.entry_price / Decimal(self.leverage)
        if margin == 0:
            return percent(Decimal("0"))
        return percent(self.pnl.unrealized / margin * Decimal(100))


class Order(_Model):
    id: str = Field(default_factory=new_id)
    exchange_order_id: str | None = None
    client_order_id: str | None = None
    user_id: Annotated[str, Field(min_length=1, max_length=128)]
    exchange: Exchange
    symbol: Annotated[str, Field(min_length=1, max_length=64)]
    side: OrderSide
    order_type: OrderType
    quantity: Positive
    price: Positive | None = None
    trigger_price: Positive | None = None
    callback_rate: Annotated[Money, Field(gt=0, lt=1)] | None = None
    filled_qty: NonNegative = Decimal("0")
    avg_fill_price: Positive | None = None
    status: OrderStatus = OrderStatus.PENDING
    reduce_only: bool = False
    post_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC
    position_side: PositionSide | None = None
    fee: NonNegative = Decimal("0")
    fee_currency: str | None = None
    grid_level: GridLevel | None = None
    external: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDateTime = Field(default_factory=utc_now)
    updated_at: UtcDateTime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Order:
        if self.filled_qty > self.quantity:
            raise ValueError(f"filled_qty ({self.filled_qty}) exceeds quantity ({self.quantity})")
        if self.order_type.needs_price and self.price is None:
            raise ValueError(f"price is required for a {self.order_type.value} order")
        if self.order_type.needs_trigger_price and self.trigger_price is None:
            raise ValueError(f"trigger_price is required for a {self.order_type.value} order")
        if self.order_type is OrderType.TRAILING_STOP and self.callback_rate is None:
            raise ValueError("callback_rate is required for a trailing_stop order")
        if self.status is OrderStatus.FILLED and self.filled_qty != self.quantity:
            raise ValueError("a filled order must have filled_qty == quantity")
        return self

    @property
    def order_id(self) -> str:
        """The id the store and the API key orders by: the exchange's id, or ours before it has one."""
        return self.exchange_order_id or self.id

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_filled(self) -> bool:
        return self.status is OrderStatus.FILLED

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_active(self) -> bool:
        return self.status.is_active

    @computed_field  # type: ignore[prop-decorator]
    @property
    def remaining_qty(self) -> PlainDecimal:
        return self.quantity - self.filled_qty

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fill_percentage(self) -> PlainDecimal:
        """Filled share of the quantity in percent, 2 decimals."""
        return percent(self.filled_qty / self.quantity * Decimal(100))
