"""Liveness and status routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

if TYPE_CHECKING:
    from ..app import AppContext

router = APIRouter()


@router.get("/health", tags=["service"], summary="Liveness check")
async def health(request: Request) -> dict[str, str]:
    ctx = request.app.state.ctx
    return {"status": "ok", "service": ctx.settings.service_name, "timestamp": datetime.now(UTC).isoformat()}


@router.get("/api/v1/status", tags=["service"], summary="Service status and health of its parts")
async def status(request: Request) -> dict[str, Any]:
    ctx: AppContext = request.app.state.ctx
    return await ctx.status()


@router.get("/metrics", tags=["service"], summary="Prometheus metrics")
async def prometheus_metrics(request: Request) -> Response:
    from .. import metrics
    from ..store.connection import reachable

    ctx: AppContext = request.app.state.ctx
    metrics.redis_up.set(1 if await reachable(ctx.redis) else 0)  # a scrape is the probe
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
