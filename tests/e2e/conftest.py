"""Fixtures of the end-to-end tests: simulator processes and a service factory (see support.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from .support import Service, Sim, delete_prefix, service_env

ServiceFactory = Callable[..., Service]


@pytest.fixture
async def okx(tmp_path: Path) -> AsyncIterator[Sim]:
    sim = await Sim.start("okx", tmp_path)
    yield sim
    await sim.stop()


@pytest.fixture
async def binance(tmp_path: Path) -> AsyncIterator[Sim]:
    sim = await Sim.start("binance", tmp_path)
    yield sim
    await sim.stop()


@pytest.fixture
async def make_service(real_redis_url: str, tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """make_service(okx=sim, binance=sim, redis_url=..., **env) -> a Service (not started yet)."""
    made: list[Service] = []

    def factory(
        okx: Sim | None = None, binance: Sim | None = None, redis_url: str | None = None, **env: str
    ) -> Service:
        prefix = f"test:{uuid.uuid4().hex[:12]}:"
        url = redis_url or real_redis_url
        extra = dict(env)
        if okx is not None:
            extra["OKX_BASE_URL"] = okx.url
        if binance is not None:
            extra["BINANCE_BASE_URL"] = binance.url
        svc = Service(service_env(url, prefix, tmp_path, **extra), tmp_path, url, prefix)
        made.append(svc)
        return svc

    yield factory
    for svc in made:
        print(svc.log_tail())  # shown when the test failed
        await svc.close()
        if svc.redis_url == real_redis_url:
            await delete_prefix(real_redis_url, svc.prefix)
