"""Trailing stops and conditional-cancellation rules (seed's API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import ValidationError

from ..domain.rules import ConditionalRule
from ..domain.trailing import TrailingStop
from ..services.commands import NotFound
from .auth import check_user
from .deps import AuthorizedUser, CallerDep, Ctx, json_response
from .schemas import (
    CreatedRuleResponse,
    CreateRuleRequest,
    CreateTrailingStopRequest,
    ErrorBody,
    RuleOut,
    RulesResponse,
    TrailingStopOut,
    TrailingStopsResponse,
)

router = APIRouter(prefix="/api/v1", tags=["trailing stops and rules"])
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


def stop_json(stop: TrailingStop) -> dict[str, Any]:
    out = stop.model_dump(mode="json", exclude={"owner", "lease_until_ms"})
    out["stop_price"] = None if stop.stop_price is None else format(stop.stop_price, "f")
    return out


def _invalid(exc: ValidationError) -> HTTPException:
    errs = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
    return HTTPException(422, errs)


@router.post(
    "/trailing-stops",
    status_code=201,
    summary="Create a trailing stop",
    response_model=None,
    responses={201: {"model": TrailingStopOut, "description": "the stop as stored"}, **ERRORS},
)
async def create_trailing_stop(ctx: Ctx, caller: CallerDep, body: CreateTrailingStopRequest) -> Response:
    check_user(caller, body.user_id)
    try:
        stop = TrailingStop.model_validate(body.model_dump())
    except ValidationError as exc:
        raise _invalid(exc) from None
    created = await ctx.trailing.create(stop)
    return json_response(stop_json(created), 201)


@router.get(
    "/trailing-stops/{user_id}",
    summary="A user's trailing stops (live and recently finished)",
    response_model=None,
    responses={200: {"model": TrailingStopsResponse}, **ERRORS},
)
async def list_trailing_stops(
    ctx: Ctx,
    user_id: AuthorizedUser,
    exchange: Annotated[str | None, Query(pattern="^(okx|binance)$")] = None,
    live_only: bool = False,
) -> Response:
    stops = await ctx.store.trailing_stops.list_user(user_id)
    stops = [
        s
        for s in stops
        if (exchange is None or s.exchange.value == exchange) and (not live_only or s.state.is_live)
    ]
    return json_response(
        {"user_id": user_id, "count": len(stops), "trailing_stops": [stop_json(s) for s in stops]}
    )


@router.delete(
    "/trailing-stops/{user_id}/{symbol}/{side}",
    summary="Cancel a trailing stop",
    response_model=None,
    responses={200: {"model": TrailingStopOut, "description": "the stop, cancelled"}, **ERRORS},
)
async def delete_trailing_stop(
    ctx: Ctx,
    user_id: AuthorizedUser,
    symbol: str,
    side: str,
    exchange: Annotated[str | None, Query(pattern="^(okx|binance)$")] = None,
) -> Response:
    if side not in ("long", "short"):
        raise HTTPException(422, [{"loc": ["path", "side"], "msg": "side must be long or short"}])
    exchanges = [exchange] if exchange else ["okx", "binance"]
    for ex in exchanges:
        try:
            stop = await ctx.trailing.delete(user_id, ex, symbol, side)
        except NotFound:
            continue
        return json_response(stop_json(stop))
    raise HTTPException(404, f"no live trailing stop for user {user_id!r} on {symbol} {side}")


@router.post(
    "/conditional-rules",
    status_code=201,
    summary="Create a conditional-cancellation rule",
    response_model=None,
    responses={201: {"model": CreatedRuleResponse}, **ERRORS},
)
async def create_rule(ctx: Ctx, caller: CallerDep, body: CreateRuleRequest) -> Response:
    check_user(caller, body.user_id)
    try:
        rule = ConditionalRule.model_validate(body.model_dump(exclude={"oco"}))
    except ValidationError as exc:
        raise _invalid(exc) from None
    rules = await ctx.rules.create(rule, oco=body.oco)
    out = rules[0].model_dump(mode="json")
    out["rule_id"] = rules[0].id
    if len(rules) > 1:
        out["oco_rule"] = rules[1].model_dump(mode="json")
    return json_response(out, 201)


@router.get(
    "/conditional-rules/{user_id}",
    summary="A user's conditional rules",
    response_model=None,
    responses={200: {"model": RulesResponse}, **ERRORS},
)
async def list_rules(ctx: Ctx, user_id: AuthorizedUser) -> Response:
    rules = await ctx.store.rules.list_user(user_id)
    return json_response(
        {"user_id": user_id, "count": len(rules), "rules": [r.model_dump(mode="json") for r in rules]}
    )


@router.delete(
    "/conditional-rules/{user_id}/{rule_id}",
    summary="Delete a conditional rule",
    response_model=None,
    responses={200: {"model": RuleOut, "description": "the rule, deleted"}, **ERRORS},
)
async def delete_rule(ctx: Ctx, user_id: AuthorizedUser, rule_id: str) -> Response:
    rule = await ctx.rules.delete(user_id, rule_id)
    return json_response(rule.model_dump(mode="json"))
