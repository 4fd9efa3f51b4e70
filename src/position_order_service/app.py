"""Wiring: builds every part once, in one place, and hands the FastAPI app its context."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from . import __version__
from .config import Settings
from .store import Store
from .store.embedded import EmbeddedServer, start_embedded

log = logging.getLogger(__name__)


class AppContext:
    """Everything the routes and background workers share. Built by `start`, torn down by `stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.started_at_utc = datetime.now(UTC)
        self.embedded_redis: EmbeddedServer | None = None
        self._redis: Redis | None = None
        self._store: Store | None = None

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "context not started"
        return self._redis

    @property
    def store(self) -> Store:
        assert self._store is not None, "context not started"
        return self._store

    async def start(self) -> None:
        s = self.settings
        if s.uses_embedded_redis:
            self.embedded_redis = start_embedded(s.embedded_redis_port, s.embedded_redis)
            url = self.embedded_redis.url
            log.info("embedded %s listening at %s", self.embedded_redis.kind, url)
        else:
            url = s.redis_dsn()
        self._redis = Redis.from_url(url, decode_responses=False, health_check_interval=30)
        await self._redis.ping()
        self._store = Store.create(self._redis, prefix=s.key_prefix)

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
            self.embedded_redis = None

    async def status(self) -> dict[str, Any]:
        redis_ok = True
        try:
            await self.redis.ping()
        except Exception:  # the status page reports, it never fails
            redis_ok = False
        return {
            "service": self.settings.service_name,
            "version": __version__,
            "started_at": self.started_at_utc.isoformat(),
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "redis": {
                "ok": redis_ok,
                "embedded": self.embedded_redis.kind if self.embedded_redis else None,
            },
        }


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    ctx = AppContext(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        try:
            yield
        finally:
            await ctx.stop()

    from .api.health import router as health_router

    app = FastAPI(
        title="position-order-service",
        version=__version__,
        description="Real-time positions and orders of many users on OKX and Binance USD-M, with events, "
        "trailing stops and conditional cancellation.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(health_router)
    return app
