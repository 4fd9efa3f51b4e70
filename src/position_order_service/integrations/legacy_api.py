"""HYPERRSI's legacy endpoint `POST /position/open` (migration guide 2.3): the old request and the old
PositionResponse, served by the HYPERRSI adapter. Behind the USE_SHARED_MANAGER flag: when it is off the
endpoint answers 503 (the bots then use their own legacy path, outside this service).

Wiring: `app.include_router(router)`; the app context carries `hyperrsi` (a HYPERRSIAdapter) and `settings`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..api.auth import caller_from, check_user
from ..domain.models import Money
from .hyperrsi import HYPERRSIAdapter

router = APIRouter(prefix="/position", tags=["legacy (HYPERRSI)"])
DISABLED = "shared manager disabled (USE_SHARED_MANAGER=false)"


class LegacyOpenPositionRequest(BaseModel):
    """HYPERRSI's OpenPositionRequest. Unknown fields of older bot versions are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "test",
                    "symbol": "BTC-USDT-SWAP",
                    "direction": "long",
                    "size": 0.1,
                    "leverage": 10,
                    "stop_loss": 55000,
                    "take_profit": [62000],
                }
            ]
        },
    )

    user_id: str = Field(min_length=1, max_length=128, description="the bot's user id (OKX uid)")
    symbol: str = Field(min_length=1, max_length=64, examples=["BTC-USDT-SWAP"])
    direction: Literal["long", "short"]
    size: Money = Field(gt=0, description="base currency (0.1 BTC)")
    leverage: Money | None = Field(None, gt=0, le=125)
    stop_loss: Money | None = Field(None, ge=0, description="0 or absent = no stop-loss")
    take_profit: list[Money] | None = Field(None, max_length=3, description="one to three prices")
    tp_ratios: list[Money] | None = Field(None, max_length=3, description="size share of each TP; sum 1")
    is_DCA: bool = False
    is_hedge: bool = False
    hedge_tp_price: Money | None = Field(None, ge=0)
    hedge_sl_price: Money | None = Field(None, ge=0)


class PositionResponse(BaseModel):
    """HYPERRSI's PositionResponse, unchanged (numbers as floats, as the bot reads them)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTC-USDT-SWAP",
                    "side": "long",
                    "size": 0.1,
                    "entry_price": 59000.0,
                    "leverage": 10.0,
                    "sl_price": 55000.0,
                    "tp_prices": [62000.0],
                    "order_id": "2215487316451",
                    "last_filled_price": 59000.0,
                }
            ]
        }
    )

    symbol: str
    side: str
    size: float
    entry_price: float
    leverage: float
    sl_price: float | None = None
    tp_prices: list[float] | None = None
    order_id: str | None = None
    last_filled_price: float | None = None


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


@router.post(
    "/open",
    response_model=PositionResponse,
    summary="Open (or DCA into) a HYPERRSI position (legacy endpoint)",
    responses={503: {"description": DISABLED}},
)
async def open_position(request: Request, body: LegacyOpenPositionRequest) -> Any:
    ctx = _ctx(request)
    if not ctx.settings.use_shared_manager:
        return JSONResponse({"detail": DISABLED}, status_code=503)
    check_user(caller_from(request, getattr(ctx, "token_grants", [])), body.user_id)
    adapter: HYPERRSIAdapter = ctx.hyperrsi
    entry = await adapter.open_position_detailed(
        body.user_id,
        body.symbol,
        body.direction,
        body.size,
        body.leverage,
        body.stop_loss,
        body.take_profit,
        body.is_DCA,
        body.is_hedge,
        tp_ratios=body.tp_ratios,
        hedge_tp_price=body.hedge_tp_price,
        hedge_sl_price=body.hedge_sl_price,
    )
    p = entry.position
    tp_prices = [float(o.trigger_price) for o in entry.take_profit_orders if o.trigger_price is not None]
    sl_order = entry.stop_loss_order
    sl_price = sl_order.trigger_price if sl_order is not None else p.stop_loss_price
    fill = entry.entry_order.avg_fill_price
    return PositionResponse(
        symbol=p.symbol,
        side=p.side.value,
        size=float(p.size),
        entry_price=float(p.entry_price),
        leverage=float(p.leverage),
        sl_price=float(sl_price) if sl_price is not None else None,
        tp_prices=tp_prices or None,
        order_id=entry.entry_order.order_id,
        last_filled_price=float(fill) if fill is not None else None,
    )
