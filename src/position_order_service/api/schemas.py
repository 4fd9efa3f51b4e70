"""Request and response bodies of the REST API (documented in OpenAPI at /docs)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from ..domain.enums import OrderSide, OrderType, PositionSide, TimeInForce
from ..domain.models import Order, Position
from ..domain.rules import ConditionalRule
from ..domain.trailing import TrailingStop
from . import examples as ex

SUPPORTED = ("okx", "binance")


def example(*values: Any) -> ConfigDict:
    """Model config that shows `values` as the examples in OpenAPI."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


class ErrorBody(BaseModel):
    model_config = example(
        {"detail": "this token may not act for user 'bob'"},
        {"detail": [{"loc": ["body", "quantity"], "msg": "Input should be greater than 0"}]},
    )
    detail: Any = Field(description="what is wrong; for validation errors, a list naming each field")


# -- service ------------------------------------------------------------------------------------------------


class HealthResponse(BaseModel):
    model_config = example(
        {"status": "ok", "service": "position-order-service", "timestamp": "2026-11-21T09:30:00+00:00"}
    )
    status: Literal["ok"]
    service: str
    timestamp: str


class ReadyCheck(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool
    detail: str | None = None


class ReadyResponse(BaseModel):
    model_config = example(
        {"ready": True, "checks": {"redis": {"ok": True}, "history_writer": {"ok": True},
                                   "streams": {"ok": True, "connected": 2}}},
        {"ready": False, "checks": {"redis": {"ok": True}, "history_writer": {"ok": True},
                                    "streams": {"ok": False, "connected": 1,
                                                "detail": "not connected: user123/okx: reconnecting"}}},
    )  # fmt: skip
    ready: bool
    checks: dict[str, ReadyCheck] = Field(description="redis, history_writer, streams: each ok, or why not")


class StreamHealth(BaseModel):
    """One tracked (user, exchange): its streams' state."""

    model_config = ConfigDict(extra="allow")
    user_id: str
    exchange: str
    state: str = Field(description="starting | healthy | reconnecting | error | stopped")
    healthy: bool
    last_error: str | None = None
    detail: str | None = Field(
        None,
        description="why it waits when that is no error: its sockets' place at the service's own connection "
        "pacer, 'waiting for a connection slot: 12 ahead (3/s for okx ...), ~4 s'",
    )
    last_reconcile_at: str | None = None
    last_event_at: str | None = None
    reconnects: int = 0
    corrections: int = 0
    updates_applied: int = 0


class StatusResponse(BaseModel):
    model_config = example(
        {
            "service": "position-order-service", "version": "0.1.0", "started_at": "2026-11-21T09:00:00+00:00",
            "uptime_s": 1800.5, "redis": {"ok": True, "embedded": "redis-server"}, "simulator": None,
            "simulators": {}, "connections": {"tracked_users": 1, "streams": 1, "healthy": 1},
            "subscriptions": [], "trailing_stops": 1, "conditional_rules": 1, "users": [ex.STREAM_HEALTH],
        }
    )  # fmt: skip
    service: str
    version: str
    started_at: str
    uptime_s: float
    redis: dict[str, Any]
    simulator: str | None
    simulators: dict[str, str]
    connections: dict[str, int]
    subscriptions: list[Any]
    trailing_stops: int
    conditional_rules: int
    users: list[StreamHealth]


# -- positions and orders -----------------------------------------------------------------------------------


class OrderOut(Order):
    """An order as the service knows it. Decimals are strings; fill_percentage has 2 decimals."""

    model_config = example(ex.ORDER)


class PositionOut(Position):
    """A position; pnl_percentage (of the margin) has 2 decimals."""

    model_config = example(ex.POSITION)


class PositionsResponse(BaseModel):
    model_config = example({"user_id": ex.USER, "exchange": "okx", "count": 1, "positions": [ex.POSITION]})
    user_id: str
    exchange: str
    count: int
    positions: list[PositionOut]


class OrdersResponse(BaseModel):
    model_config = example({"user_id": ex.USER, "exchange": "okx", "count": 1, "orders": [ex.ORDER]})
    user_id: str
    exchange: str
    count: int
    orders: list[OrderOut]


# -- users ----------------------------------------------------------------------------------------------------


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.ACTIVATE]})
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
    model_config = example({"user_id": ex.USER, "exchanges": ["okx"], "tracking": [ex.STREAM_HEALTH]})
    user_id: str
    exchanges: list[str]
    tracking: list[StreamHealth]


class DeactivateResponse(BaseModel):
    model_config = example({"user_id": ex.USER, "deactivated": True, "was_active": True})
    user_id: str
    deactivated: bool
    was_active: bool


class ActiveUser(BaseModel):
    user_id: str
    exchanges: list[str]
    tracked: list[str] = Field(description="the exchanges whose streams run now")


class ActiveUsersResponse(BaseModel):
    model_config = example(
        {"count": 1, "users": [{"user_id": ex.USER, "exchanges": ["okx"], "tracked": ["okx"]}]}
    )
    count: int
    users: list[ActiveUser]


class CredentialsRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", hide_input_in_errors=True, json_schema_extra={"examples": [ex.CREDENTIALS]}
    )
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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.CREATE_ORDER]})
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

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.CANCEL_ORDER]})
    user_id: UserId
    exchange: ExchangeName
    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    symbol: Symbol | None = None
    order_type: str | None = None
    side: OrderSide | None = None


class CancelOrderResponse(BaseModel):
    model_config = example({"cancelled": True, "order": ex.STOP_LOSS})
    cancelled: bool
    order: Order


class TakeProfitLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price: Money
    ratio: Annotated[Decimal, Field(gt=0, le=1)]


class OpenPositionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.OPEN_POSITION]})
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
    model_config = example({"position": ex.POSITION, "entry_order": ex.FILLED, "stop_loss_order": None,
                            "take_profit_orders": []})  # fmt: skip
    position: Position
    entry_order: Order
    stop_loss_order: Order | None = None
    take_profit_orders: list[Order] = Field(default_factory=list)


class ClosePositionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.CLOSE_POSITION]})
    user_id: UserId
    exchange: ExchangeName
    symbol: Symbol
    side: PositionSide
    size: Money | None = Field(None, description="default: the whole position")
    reason: Annotated[str, Field(max_length=200)] | None = None


class ClosePositionResponse(BaseModel):
    model_config = example({"order": {**ex.FILLED, "side": "sell", "reduce_only": True, "quantity": "0.05",
                                      "filled_qty": "0.05"}})  # fmt: skip
    order: Order


class CreateTrailingStopRequest(BaseModel):
    """The seed's body, plus order_id, price_source and mode."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.CREATE_STOP]})
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

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ex.CREATE_RULE]})
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


# -- trailing stops and rules ---------------------------------------------------------------------------


class TrailingStopOut(TrailingStop):
    """A trailing stop: its state machine's fields, and the stop price it implies now."""

    model_config = example(ex.TRAILING_STOP)
    owner: SkipJsonSchema[str | None] = None
    lease_until_ms: SkipJsonSchema[int | None] = None
    stop_price_: str | None = Field(
        None, alias="stop_price", description="extreme x (1 - r) for a long, x (1 + r) for a short"
    )


class TrailingStopsResponse(BaseModel):
    model_config = example({"user_id": ex.USER, "count": 1, "trailing_stops": [ex.TRAILING_STOP]})
    user_id: str
    count: int
    trailing_stops: list[TrailingStopOut]


class RuleOut(ConditionalRule):
    """A conditional-cancellation rule and what it did."""

    model_config = example(ex.RULE)


class CreatedRuleResponse(RuleOut):
    model_config = example(ex.RULE_CREATED)
    rule_id: str
    oco_rule: RuleOut | None = Field(None, description="the mirror rule, when the request said oco")


class RulesResponse(BaseModel):
    model_config = example({"user_id": ex.USER, "count": 1, "rules": [ex.RULE]})
    user_id: str
    count: int
    rules: list[RuleOut]
