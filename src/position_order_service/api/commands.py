"""Write API: orders and positions (seed's order API). Every route checks the token may act for the user."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header

from ..services.orders import OrderCommand
from .auth import check_user
from .deps import AuthorizedUser, CallerDep, Ctx
from .schemas import (
    CancelOrderRequest,
    CancelOrderResponse,
    ClosePositionRequest,
    ClosePositionResponse,
    CreateOrderRequest,
    ErrorBody,
    OpenPositionRequest,
    OpenPositionResponse,
    OrderOut,
)
from .schemas import ExchangeName as ExchangePath

router = APIRouter(prefix="/api/v1", tags=["commands"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
    502: {"model": ErrorBody, "description": "the exchange refused; detail carries its reason"},
    503: {"model": ErrorBody, "description": "Redis or the exchange unreachable"},
}
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=128, description="the same key never creates two orders"),
]


@router.post(
    "/orders",
    status_code=201,
    response_model=None,
    summary="Create an order",
    responses={201: {"model": OrderOut, "description": "the order as placed"}, **ERRORS},
)
async def create_order(
    ctx: Ctx, caller: CallerDep, body: CreateOrderRequest, idempotency_key: IdempotencyKey = None
) -> dict[str, object]:
    check_user(caller, body.user_id)
    order = await ctx.order_manager.place(
        OrderCommand(
            user_id=body.user_id,
            exchange=body.exchange,
            symbol=body.symbol,
            side=body.side,
            order_type=body.order_type,
            quantity=body.quantity,
            price=body.price,
            trigger_price=body.trigger_price,
            reduce_only=body.reduce_only,
            post_only=body.post_only,
            position_side=body.position_side,
            client_order_id=body.client_order_id,
            time_in_force=body.time_in_force,
            callback_rate=body.callback_rate,
            activation_price=body.activation_price,
            grid_level=body.grid_level,
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        )
    )
    return order.model_dump(mode="json")


@router.post(
    "/orders/cancel",
    response_model=CancelOrderResponse,
    summary="Cancel an order (regular or algo)",
    responses=ERRORS,
)
async def cancel_order(ctx: Ctx, caller: CallerDep, body: CancelOrderRequest) -> CancelOrderResponse:
    check_user(caller, body.user_id)
    order = await ctx.order_manager.cancel_order(
        body.user_id, body.exchange, body.order_id, symbol=body.symbol, order_type=body.order_type
    )
    return CancelOrderResponse(cancelled=True, order=order)


@router.get(
    "/orders/{user_id}/{exchange}/{order_id}",
    summary="One order",
    response_model=None,
    responses={200: {"model": OrderOut}, **ERRORS},
)
async def get_order(
    ctx: Ctx, user_id: AuthorizedUser, exchange: ExchangePath, order_id: str
) -> dict[str, object]:
    order = await ctx.order_manager.get_order(user_id, exchange, order_id)
    return order.model_dump(mode="json")


@router.post(
    "/positions/open",
    status_code=201,
    response_model=OpenPositionResponse,
    summary="Open a position: leverage, market entry, TP/SL sized to the fill",
    responses=ERRORS,
)
async def open_position(
    ctx: Ctx, caller: CallerDep, body: OpenPositionRequest, idempotency_key: IdempotencyKey = None
) -> OpenPositionResponse:
    check_user(caller, body.user_id)
    tp: Decimal | list[tuple[Decimal, Decimal]] | None
    if isinstance(body.take_profit, list):
        tp = [(level.price, level.ratio) for level in body.take_profit]
    else:
        tp = body.take_profit
    result = await ctx.position_manager.open_position(
        body.user_id,
        body.exchange,
        body.symbol,
        body.side,
        body.size,
        leverage=body.leverage,
        stop_loss=body.stop_loss,
        take_profit=tp,
        metadata=body.metadata,
        grid_level=body.grid_level,
        idempotency_key=idempotency_key,
    )
    return OpenPositionResponse(
        position=result.position,
        entry_order=result.entry_order,
        stop_loss_order=result.stop_loss_order,
        take_profit_orders=result.take_profit_orders,
    )


@router.post(
    "/positions/close",
    response_model=ClosePositionResponse,
    summary="Close a position, fully or partly (reduce-only, hedge-mode aware)",
    responses=ERRORS,
)
async def close_position(ctx: Ctx, caller: CallerDep, body: ClosePositionRequest) -> ClosePositionResponse:
    check_user(caller, body.user_id)
    order = await ctx.position_manager.close_position(
        body.user_id, body.exchange, body.symbol, body.side, size=body.size, reason=body.reason
    )
    return ClosePositionResponse(order=order)
