"""Request and response bodies of the REST API (documented in OpenAPI at /docs)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..domain.enums import OrderSide, OrderType, PositionSide, TimeInForce
from ..domain.models import Order, Position

SUPPORTED = ("okx", "binance")


class ErrorBody(BaseModel):
    detail: Any = Field(description="what is wrong; for validation errors, a list naming each field")


class PositionsResponse(BaseModel):
    user_id: str
    exchange: str
    count: int
    positions: list[Position]


class OrdersResponse(BaseModel):
    user_id: str
    exchange: str
    count: int
    orders: list[Order]


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exchanges: Annotated[list[str], Field(min_length=1, max_length=5)] = Field(
        description="exchanges to track: okx, binance"
    )

    @field_validator("exchanges")
    @classmethod
    def _supported(cls, v: list[str]) -> list[str]:
        out = []
        for name in v:
            n = name.strip().lower()
            if n == "binanceusdm":
                n = "binance"
            if n not in SUPPORTED:
                raise ValueError(f"exchange {name!r} is not supported (use okx or binance)")
            out.append(n)
        return sorted(set(out))


class ActivateResponse(BaseModel):
    user_id: str
    exchanges: list[str]
    tracking: list[dict[str, Any]]


class CredentialsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    api_key: Annotated[str, Field(min_length=1, max_length=256)]
    secret: Annotated[str, Field(min_length=1, max_length=256)]
    passphrase: Annotated[str, Field(max_length=256)] = ""

    def __repr__(self) -> str:
        return "CredentialsRequest(***)"


Money = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
ExchangeName = Literal["okx", "binance"]
UserId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@\-]{1,64}$")]
Symbol = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9/:_\-]{0,63}$", description="BTC-USDT-SWAP, BTCUSDT or BTC/USDT:USDT"
    ),
]


class CreateOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: UserId
    exchange: ExchangeName
    symbol: Symbol
    side: OrderSide
    order_type: OrderType
    quantity: Money = Field(description="size in base currency (0.1 = 0.1 BTC)")
    price: Money | None = None
    trigger_price: Money | None = None
    reduce_only: bool = False
    post_only: bool = False
    position_side: PositionSide | None = Field(None, description="long/short in hedge mode")
    client_order_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,32}$")] | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    callback_rate: Annotated[Decimal, Field(gt=0, lt=1)] | None = Field(
        None, description="trailing: 0.02 = 2%"
    )
    activation_price: Money | None = None
    grid_level: Annotated[int, Field(ge=0, le=20)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CancelOrderRequest(BaseModel):
    """The seed's cancel body. order_type and side are accepted as hints; the kind is detected."""

    model_config = ConfigDict(extra="forbid")
    user_id: UserId
    exchange: ExchangeName
    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    symbol: Symbol | None = None
    order_type: str | None = None
    side: OrderSide | None = None


class CancelOrderResponse(BaseModel):
    cancelled: bool
    order: Order


class TakeProfitLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price: Money
    ratio: Annotated[Decimal, Field(gt=0, le=1)]


class OpenPositionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: UserId
    exchange: ExchangeName
    symbol: Symbol
    side: PositionSide
    size: Money = Field(description="size in base currency")
    leverage: Annotated[int, Field(ge=1, le=125)] | None = None
    stop_loss: Money | None = None
    take_profit: Money | Annotated[list[TakeProfitLevel], Field(min_length=1, max_length=3)] | None = None
    grid_level: Annotated[int, Field(ge=0, le=20)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class OpenPositionResponse(BaseModel):
    position: Position
    entry_order: Order
    stop_loss_order: Order | None = None
    take_profit_orders: list[Order] = Field(default_factory=list)


class ClosePositionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: UserId
    exchange: ExchangeName
    symbol: Symbol
    side: PositionSide
    size: Money | None = Field(None, description="default: the whole position")
    reason: Annotated[str, Field(max_length=200)] | None = None


class ClosePositionResponse(BaseModel):
    order: Order


class CreateTrailingStopRequest(BaseModel):
    """The seed's body, plus order_id, price_source and mode."""

    model_config = ConfigDict(extra="forbid")
    user_id: UserId
    exchange: ExchangeName
    symbol: Symbol
    side: PositionSide = Field(description="side of the position the stop protects")
    activation_price: Money | None = Field(None, description="none = active at once")
    callback_rate: Annotated[Decimal, Field(gt=0, lt=1, description="fraction: 0.02 = 2%")]
    size: Money | None = Field(None, description="none = the whole position")
    order_id: Annotated[str, Field(max_length=64)] | None = None
    price_source: Literal["last", "mark", "bid_ask"] = "last"
    mode: Literal["emulated", "native"] = "emulated"


class CreateRuleRequest(BaseModel):
    """The seed's body; price_reached needs price, direction and symbol; oco=true also makes the mirror rule."""

    model_config = ConfigDict(extra="forbid")
    user_id: UserId
    exchange: ExchangeName
    trigger_order_id: Annotated[str, Field(min_length=1, max_length=64)]
    cancel_order_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=50)
    ]
    condition: Literal["filled", "partially_filled", "cancelled", "price_reached"]
    price: Money | None = None
    direction: Literal["above", "below"] | None = None
    symbol: Symbol | None = None
    oco: bool = False
