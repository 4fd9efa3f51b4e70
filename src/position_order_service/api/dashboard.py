"""Read routes the operator dashboard (/dashboard) needs and no other route gives: who the caller is, every
tracked account with its stream health and counts, and the service's own figures.

GET /api/v1/session    never 401: {"token_required", "authenticated", "users", "detail"} (the page's sign-in
                       asks it instead of probing a route that would log a failed request in the browser)
GET /api/v1/accounts   the accounts (user x exchange) the caller may read: stream health and open counts
GET /api/v1/service    events/s, history writer lag, Redis reachable, uptime, accounts connected

The same overview is pushed over the live feed to a client that sends {"op": "subscribe_accounts"}.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__, metrics
from ..store.connection import reachable
from ..store.overview import open_counts
from .auth import Caller, caller_from
from .deps import CallerDep, Ctx

if TYPE_CHECKING:
    from ..bootstrap import Services as AppContext

router = APIRouter(prefix="/api/v1", tags=["dashboard"])


class SessionInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token_required": True, "authenticated": True, "users": ["alice"], "detail": None}]
        }
    )
    token_required: bool = Field(description="API_TOKENS is set: every route needs a bearer token")
    authenticated: bool = Field(description="the request may use the API (a valid token, or none needed)")
    users: list[str] | None = Field(description="users the token may act for; null = every user")
    detail: str | None = Field(None, description="why the request is not authenticated")


class AccountSummary(BaseModel):
    user_id: str
    exchange: str
    state: str = Field(description="starting | healthy | reconnecting | error")
    connected: bool
    down_seconds: float = Field(description="how long its stream has been seen down (0 = connected)")
    last_error: str | None
    detail: str | None = Field(
        None, description="why it waits when that is no error (its place at the service's connection pacer)"
    )
    last_event_at: datetime | None = Field(description="last message on its private streams")
    seconds_since_last_message: float | None
    last_reconcile_at: datetime | None = Field(description="last REST snapshot reconciled")
    reconnects: int
    positions: int = Field(description="open positions")
    open_orders: int = Field(description="open orders, regular and algo")
    trailing_stops: int = Field(description="live trailing stops (pending, active or firing)")
    rules: int = Field(description="live conditional rules")


class AccountsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "count": 1,
                    "accounts": [
                        {
                            "user_id": "user123",
                            "exchange": "okx",
                            "state": "healthy",
                            "connected": True,
                            "down_seconds": 0.0,
                            "last_error": None,
                            "detail": None,
                            "last_event_at": "2026-11-21T09:30:02+00:00",
                            "seconds_since_last_message": 0.8,
                            "last_reconcile_at": "2026-11-21T09:30:00+00:00",
                            "reconnects": 0,
                            "positions": 1,
                            "open_orders": 2,
                            "trailing_stops": 1,
                            "rules": 1,
                        }
                    ],
                }
            ]
        }
    )
    count: int
    accounts: list[AccountSummary]


class ServiceFigures(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"version": "0.1.0", "uptime_s": 1800.5, "redis_reachable": True, "events_total": 5230,
                          "events_per_s": 3.2, "history_writer_lag": 0, "accounts": 2, "accounts_connected": 2}]
        }
    )  # fmt: skip
    version: str
    uptime_s: float
    redis_reachable: bool
    events_total: int = Field(description="events written since the start")
    events_per_s: float = Field(description="events written per second, over the last ~10 s")
    history_writer_lag: int | None = Field(description="events not yet in the history database")
    accounts: int
    accounts_connected: int


class _EventRate:
    """Events per second from the events_total counter, over the samples of the last ~10 s."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()

    def sample(self, total: float) -> float:
        now = time.monotonic()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        t0, v0 = self._samples[0]
        return (total - v0) / (now - t0) if now - t0 > 0.5 else 0.0


_rate = _EventRate()


def _events_total() -> float:
    return sum(
        s.value for family in metrics.events.collect() for s in family.samples if s.name == "events_total"
    )


def _iso(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


async def accounts_of(ctx: AppContext, caller: Caller) -> list[AccountSummary]:
    health = [h for h in ctx.tracking.health() if caller.may_act_for(h["user_id"])]
    down = metrics.account_streams.sample()
    keys = [(h["user_id"], h["exchange"]) for h in health]
    counts = await open_counts(ctx.redis, ctx.store.keys, keys)
    stops: dict[tuple[str, str], int] = {}
    for s in await ctx.store.trailing_stops.list_live():
        stops[(s.user_id, s.exchange.value)] = stops.get((s.user_id, s.exchange.value), 0) + 1
    rules: dict[tuple[str, str], int] = {}
    for r in await ctx.store.rules.list_live():
        rules[(r.user_id, r.exchange.value)] = rules.get((r.user_id, r.exchange.value), 0) + 1
    now = datetime.now(UTC)
    out = []
    for h, key, (positions, orders) in zip(health, keys, counts, strict=True):
        last_event = _iso(h.get("last_event_at"))
        out.append(
            AccountSummary(
                user_id=key[0],
                exchange=key[1],
                state=h.get("state", "error"),
                connected=bool(h.get("healthy")),
                down_seconds=round(down.get(key, 0.0), 3),
                last_error=h.get("last_error"),
                detail=h.get("detail"),
                last_event_at=last_event,
                seconds_since_last_message=round((now - last_event).total_seconds(), 3)
                if last_event
                else None,
                last_reconcile_at=_iso(h.get("last_reconcile_at")),
                reconnects=int(h.get("reconnects", 0)),
                positions=positions,
                open_orders=orders,
                trailing_stops=stops.get(key, 0),
                rules=rules.get(key, 0),
            )
        )
    return out


async def service_figures(ctx: AppContext) -> ServiceFigures:
    total = _events_total()
    lag = metrics.REGISTRY.get_sample_value("stream_consumer_lag") if ctx.history is not None else None
    health = ctx.tracking.health()
    return ServiceFigures(
        version=__version__,
        uptime_s=round(time.monotonic() - ctx.started_at, 3),
        redis_reachable=await reachable(ctx.redis),
        events_total=int(total),
        events_per_s=round(_rate.sample(total), 3),
        history_writer_lag=None if lag is None else int(lag),
        accounts=len(health),
        accounts_connected=sum(1 for h in health if h.get("healthy")),
    )


@router.get("/session", response_model=SessionInfo, summary="Who the caller is (never 401)")
async def session(request: Request, ctx: Ctx) -> SessionInfo:
    required = bool(ctx.token_grants)
    try:
        caller = caller_from(request, ctx.token_grants)
    except HTTPException as exc:
        return SessionInfo(token_required=required, authenticated=False, users=[], detail=str(exc.detail))
    users = None if caller.users is None else sorted(caller.users)
    return SessionInfo(token_required=required, authenticated=True, users=users)


@router.get(
    "/accounts",
    response_model=AccountsResponse,
    summary="Tracked accounts the caller may read: stream health, open positions, orders, stops, rules",
)
async def accounts(ctx: Ctx, caller: CallerDep) -> AccountsResponse:
    items = await accounts_of(ctx, caller)
    return AccountsResponse(count=len(items), accounts=items)


@router.get(
    "/service", response_model=ServiceFigures, summary="Service figures: events/s, history lag, Redis"
)
async def service(ctx: Ctx, caller: CallerDep) -> ServiceFigures:
    return await service_figures(ctx)
