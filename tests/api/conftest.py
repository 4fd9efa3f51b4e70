"""The app as `make run` builds it (in-process OKX simulator, driven through the real ccxt client over
loopback), on the real Redis with a unique key prefix, called over ASGI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from position_order_service.app import AppContext, create_app
from position_order_service.config import Settings
from position_order_service.sim.engine import SimEngine

from ..conftest import _cleanup


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    ctx: AppContext

    @property
    def engine(self) -> SimEngine:
        assert self.ctx.simulator is not None
        return self.ctx.simulator.ctx.engine

    def account(self, user_id: str, position_mode: str = "net") -> str:
        key = f"key-{user_id}"
        self.engine.create_account(
            key,
            f"secret-{user_id}",
            f"pass-{user_id}",
            balances={"USDT": "1000000"},
            position_mode=position_mode,
        )
        return key

    async def onboard(self, user_id: str, position_mode: str = "net") -> str:
        """A user as an operator sets one up: account on the exchange, credentials, activation."""
        key = self.account(user_id, position_mode)
        r = await self.client.put(
            f"/api/v1/users/{user_id}/credentials/okx",
            json={"api_key": key, "secret": f"secret-{user_id}", "passphrase": f"pass-{user_id}"},
        )
        assert r.status_code == 204, r.text
        r = await self.client.post(f"/api/v1/users/{user_id}/activate", json={"exchanges": ["okx"]})
        assert r.status_code == 200, r.text
        assert await self.ctx.accounts.wait_reconciled(user_id, "okx", 10)
        return key


def without_venue_limits(ctx: AppContext) -> None:
    """Turn the embedded simulators' connection limits off. Tests onboard users within a second of the demo
    user's streams: more than OKX's 3 connection attempts per second, which the simulators enforce like the
    venue (the service retries, but a refused first attempt shows in a tracker's last_error and costs time)."""
    for sim in ctx.simulators.values():
        sim.ctx.limits.settings.enabled = False


def api_settings(real_redis_url: str, key_prefix: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=real_redis_url,
        key_prefix=key_prefix,
        sim="on",
        sim_port=0,
        sim_binance_port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/history.sqlite3",
        **extra,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings, venue_limits: bool = True) -> AsyncIterator[Api]:
    """The app through its lifespan, called over ASGI; its key prefix is cleaned up afterwards."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if not venue_limits:
            without_venue_limits(app.state.ctx)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield Api(app, client, app.state.ctx)
    redis = Redis.from_url(settings.redis_url)
    await _cleanup(redis, settings.key_prefix)
    await redis.aclose()


@pytest.fixture
async def api(real_redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(api_settings(real_redis_url, key_prefix, tmp_path), venue_limits=False) as api:
        yield api
