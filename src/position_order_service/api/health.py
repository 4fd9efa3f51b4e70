"""Liveness, readiness and status routes.

`/health` is the liveness probe: open, no user data. `/ready` is the readiness probe (Kubernetes'
convention): 200 when Redis answers, the history writer runs and the tracked streams are connected, else 503
with the reasons. `/api/v1/status` needs a token (when API_TOKENS is set) and shows only the users it may act
for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from .deps import CallerDep, json_response
from .schemas import ErrorBody, HealthResponse, ReadyResponse, StatusResponse

if TYPE_CHECKING:
    from ..app import AppContext

router = APIRouter()


@router.get("/health", tags=["service"], summary="Liveness check", response_model=HealthResponse)
async def health(request: Request) -> HealthResponse:
    ctx = request.app.state.ctx
    return HealthResponse(
        status="ok", service=ctx.settings.service_name, timestamp=datetime.now(UTC).isoformat()
    )


@router.get(
    "/ready",
    tags=["service"],
    summary="Readiness check: Redis, the history writer, the exchange streams",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "not ready; each failing check says why"}},
)
async def ready(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    ok, checks = await ctx.readiness()
    return json_response({"ready": ok, "checks": checks}, 200 if ok else 503)


@router.get(
    "/api/v1/status",
    tags=["service"],
    summary="Service status and the health of the streams of the users the token may act for",
    response_model=StatusResponse,
    responses={401: {"model": ErrorBody}},
)
async def status(request: Request, caller: CallerDep) -> Response:
    ctx: AppContext = request.app.state.ctx
    body: dict[str, Any] = await ctx.status()
    if caller.users is not None:  # a user's token: only its users, and counts of those alone
        users = [u for u in body["users"] if caller.may_act_for(str(u["user_id"]))]
        body["users"] = users
        body["connections"] = {
            "tracked_users": len({u["user_id"] for u in users}),
            "streams": len(users),
            "healthy": sum(1 for u in users if u.get("healthy")),
        }
        body["subscriptions"] = []
    return json_response(body)


@router.get(
    "/metrics",
    tags=["service"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "# HELP tracked_users Users tracked (user x exchange streams)\n"
                    "# TYPE tracked_users gauge\ntracked_users 2.0\n",
                }
            },
        }
    },
)
async def prometheus_metrics(request: Request) -> Response:
    from .. import metrics
    from ..store.connection import reachable

    ctx: AppContext = request.app.state.ctx
    metrics.redis_up.set(1 if await reachable(ctx.redis) else 0)  # a scrape is the probe
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
