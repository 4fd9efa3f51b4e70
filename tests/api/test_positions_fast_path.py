"""GET /api/v1/positions/{user}/{exchange} has a fast path outside FastAPI (api/fast.py, issue 15 4e): for every
request, authorized or not, well-formed or not, it answers exactly what the full app answers (status, body, type),
and it counts the request in the same metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from position_order_service import metrics
from position_order_service.api.fast import PositionsFastPath
from position_order_service.config import Settings
from position_order_service.domain.models import PnLInfo, Position

from .conftest import Api, serving

ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"
HANDLER = "/api/v1/positions/{user_id}/{exchange}"


@pytest.fixture
async def secured(real_redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=real_redis_url,
        key_prefix=key_prefix,
        sim="off",
        history=False,
        api_tokens=f"{ADMIN}=*;{ALICE}=alice",
    )
    async with serving(settings) as api:
        yield api


def _position(user: str, exchange: str, symbol: str, side: str, size: str) -> Position:
    return Position(user_id=user, exchange=exchange, symbol=symbol, side=side, size=Decimal(size),
                    entry_price=Decimal("60000"), current_price=Decimal("60250.5"), leverage=10,
                    liquidation_price=Decimal("30000"),
                    pnl=PnLInfo(realized=Decimal("12.5"), unrealized=Decimal("125.25"), fees=Decimal("1.2")))  # fmt: skip


def _fast_path(app: Any) -> PositionsFastPath:
    m = app.middleware_stack
    while not isinstance(m, PositionsFastPath):
        m = m.app
    return m


def _requests() -> list[tuple[str, dict[str, str]]]:
    paths = [
        "/api/v1/positions/alice/okx",
        "/api/v1/positions/alice/binance",
        "/api/v1/positions/bob/okx",
        "/api/v1/positions/alice/nowhere",
        "/api/v1/positions/al%20ice/okx",
        "/api/v1/positions/" + "a" * 65 + "/okx",
        "/api/v1/positions/alice/okx/",
        "/api/v1/positions/alice",
        "/api/v1/positions/alice/okx?symbol=BTC-USDT-SWAP",
        "/api/v1/positions/alice/okx?symbol=BTC/USDT:USDT",
        "/api/v1/positions/alice/okx?symbol=ETH-USDT-SWAP",
        "/api/v1/positions/alice/okx?symbol=",
        "/api/v1/positions/alice/okx?symbol=not%20a%20symbol",
        "/api/v1/positions/alice/okx?symbol=" + "X" * 65,
        "/api/v1/positions/alice/okx?other=1",
        "/api/v1/positions/alice/okx?symbol=BTC-USDT-SWAP&symbol=ETH-USDT-SWAP",
    ]
    headers: list[dict[str, str]] = [
        {},
        {"Authorization": f"Bearer {ALICE}"},
        {"Authorization": f"bearer  {ALICE} "},
        {"Authorization": f"Bearer {ADMIN}"},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {ALICE}"},
        {"Authorization": "Bearer "},
    ]
    return [(p, h) for p in paths for h in headers]


async def test_the_fast_path_answers_exactly_what_the_full_app_answers(secured: Api) -> None:
    store = secured.ctx.store
    for p in (
        _position("alice", "okx", "BTC-USDT-SWAP", "long", "0.5"),
        _position("alice", "okx", "ETH-USDT-SWAP", "short", "3"),
        _position("bob", "okx", "BTC-USDT-SWAP", "short", "1"),
    ):
        assert (await store.positions.upsert(p)).applied
    c = secured.client
    await c.get("/health")  # builds the middleware stack
    fast = _fast_path(secured.app)
    inner = fast.app

    async def full_app(scope: Any, receive: Any, send: Any) -> None:  # the app without its fast path
        scope["app"] = secured.app
        await inner(scope, receive, send)

    full = httpx.AsyncClient(transport=httpx.ASGITransport(app=full_app), base_url="http://test")
    served = 0
    async with full:
        for path, headers in _requests():
            a = await c.get(path, headers=headers)
            b = await full.get(path, headers=headers)
            assert (a.status_code, a.content, a.headers.get("content-type")) == (
                b.status_code,
                b.content,
                b.headers.get("content-type"),
            ), (path, headers)
            served += a.status_code == 200
    assert served >= 20
    r = await c.get("/api/v1/positions/alice/okx", headers={"Authorization": f"Bearer {ALICE}"})
    assert [p["symbol"] for p in r.json()["positions"]] == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert int(r.headers["content-length"]) == len(r.content)


async def test_the_fast_path_serves_and_counts_the_request(secured: Api) -> None:
    c = secured.client
    await c.get("/health")
    fast = _fast_path(secured.app)
    calls = 0
    serve = fast._serve

    async def counted(scope: Any) -> Any:
        nonlocal calls
        body = await serve(scope)
        calls += body is not None
        return body

    fast._serve = counted  # type: ignore[method-assign]
    before = _count()
    r = await c.get("/api/v1/positions/alice/okx", headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 200 and r.json() == {"user_id": "alice", "exchange": "okx", "count": 0,
                                                 "positions": []}  # fmt: skip
    assert calls == 1 and _count() == before + 1


def _count() -> float:
    for family in metrics.REGISTRY.collect():
        if family.name == "http_requests":
            for s in family.samples:
                if (
                    s.name == "http_requests_total"
                    and s.labels.get("handler") == HANDLER
                    and s.labels.get("status") == "2xx"
                ):
                    return s.value
    return 0.0
