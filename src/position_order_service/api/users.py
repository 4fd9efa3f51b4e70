"""Active users (seed's Active User Manager API) and exchange credentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from ..domain.enums import Exchange
from ..exchanges.base import Credentials
from .deps import AuthorizedUser, CallerDep, Ctx, json_response
from .schemas import (
    SUPPORTED,
    ActivateRequest,
    ActivateResponse,
    ActiveUsersResponse,
    CredentialsRequest,
    DeactivateResponse,
    ErrorBody,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])
ERRORS: dict[int | str, dict[str, Any]] = {403: {"model": ErrorBody}, 422: {"model": ErrorBody}}


@router.post(
    "/{user_id}/activate",
    summary="Start tracking a user on the given exchanges",
    response_model=ActivateResponse,
    responses=ERRORS,
)
async def activate(ctx: Ctx, user_id: AuthorizedUser, body: ActivateRequest) -> ActivateResponse:
    await ctx.active_users.activate(user_id, body.exchanges)
    health = [h for h in ctx.tracking.health() if h["user_id"] == user_id]
    return ActivateResponse.model_validate(
        {"user_id": user_id, "exchanges": body.exchanges, "tracking": health}
    )


@router.post(
    "/{user_id}/deactivate",
    summary="Stop tracking a user (sticks until activated again)",
    response_model=DeactivateResponse,
    responses=ERRORS,
)
async def deactivate(ctx: Ctx, user_id: AuthorizedUser) -> DeactivateResponse:
    was_active = await ctx.active_users.deactivate(user_id)
    return DeactivateResponse(user_id=user_id, deactivated=True, was_active=was_active)


@router.get(
    "/active",
    summary="Users the service tracks",
    response_model=None,
    responses={200: {"model": ActiveUsersResponse}},
)
async def active(ctx: Ctx, caller: CallerDep) -> Response:
    users = [u for u in await ctx.active_users.list_active() if caller.may_act_for(str(u["user_id"]))]
    return json_response({"count": len(users), "users": users})


@router.put(
    "/{user_id}/credentials/{exchange}",
    status_code=204,
    summary="Store a user's exchange API key (encrypted; never returned)",
    responses=ERRORS,
)
async def put_credentials(
    ctx: Ctx, user_id: AuthorizedUser, exchange: Exchange, body: CredentialsRequest
) -> Response:
    if exchange.value not in SUPPORTED:
        raise HTTPException(
            422, [{"loc": ["path", "exchange"], "msg": f"{exchange.value} is not supported yet"}]
        )
    if exchange is Exchange.OKX and not body.passphrase:
        raise HTTPException(
            422, [{"loc": ["body", "passphrase"], "msg": "OKX API keys need their passphrase"}]
        )
    await ctx.credentials.put(
        user_id, exchange.value, Credentials(body.api_key, body.secret, body.passphrase)
    )
    await ctx.on_credentials_changed(user_id, exchange.value)
    return Response(status_code=204)


@router.delete("/{user_id}/credentials/{exchange}", status_code=204, responses={404: {"model": ErrorBody}})
async def delete_credentials(ctx: Ctx, user_id: AuthorizedUser, exchange: Exchange) -> Response:
    if not await ctx.credentials.delete(user_id, exchange.value):
        raise HTTPException(404, f"no stored credentials for user {user_id!r} on {exchange.value}")
    await ctx.on_credentials_changed(user_id, exchange.value)
    return Response(status_code=204)
