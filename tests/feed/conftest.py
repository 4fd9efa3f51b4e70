"""The service served by uvicorn on a real TCP port (free), so a real WebSocket client can talk to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from redis.asyncio import Redis

from position_order_service.app import AppContext, create_app
from position_order_service.store.embedded import free_port

from ..api.conftest import api_settings
from ..conftest import _cleanup

ADMIN = "admin-token-0123456789"
ALICE = "alice-token-0123456789"


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:port
    ctx: AppContext

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/ws"


@asynccontextmanager
async def serve(settings: Any) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield LiveServer(f"http://127.0.0.1:{port}", app.state.ctx)
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task


ServerFactory = Callable[..., Any]


@pytest.fixture
async def live(real_redis_url: str, key_prefix: str, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """`async with live(api_tokens=...) as server:` one service per test, on its own key prefix."""

    def factory(**extra: Any) -> Any:
        return serve(api_settings(real_redis_url, key_prefix, tmp_path, **extra))

    yield factory
    redis = Redis.from_url(real_redis_url)
    await _cleanup(redis, key_prefix)
    await redis.aclose()
