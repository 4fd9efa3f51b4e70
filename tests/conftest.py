"""Shared fixtures: real servers when present (required in CI), isolated by a key prefix per test."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from position_order_service.exchanges.ccxt_factory import ConnectionLimits, set_connection_limits
from position_order_service.store import Store
from position_order_service.store.connection import connect_redis
from position_order_service.store.embedded import FakeRedisTcp, free_port

from . import orphans
from .redis_backends import backend_store, redis_backend, redis_cluster_url  # noqa: F401 (fixtures)

orphans.install()

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REAL_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Fail in CI, skip elsewhere, when a server a test needs is not running."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI requires it; .ci/run starts it)")
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Services the tests start on embedded defaults keep their files (the embedded Redis' append-only file, the
    credentials key, SQLite history) in this session's own directory, never the checkout's ./var: parallel
    workers, or a developer's `make run`, would otherwise share one Redis data directory."""
    os.environ["DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    os.environ.pop("DATA_DIR", None)


@pytest.fixture(autouse=True)
def _exchange_connection_limits() -> Iterator[None]:
    """Each test starts with the exchanges' own connection limits: they are process-wide (every gateway of a
    process paces by them), and a service built earlier in the same worker process may have set others."""
    set_connection_limits(ConnectionLimits())
    yield
    set_connection_limits(ConnectionLimits())


@pytest.fixture(scope="session")
def embedded_redis_url() -> Iterator[str]:
    server = FakeRedisTcp(free_port())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def real_redis_url() -> str:
    require_server("Redis", "127.0.0.1", 6379)
    return REAL_REDIS_URL


@pytest.fixture(params=["real", "embedded", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """The store suite runs on the real Redis, on the embedded server and on a 3-master Redis Cluster."""
    name = {"real": "real_redis_url", "embedded": "embedded_redis_url", "cluster": "redis_cluster_url"}
    return str(request.getfixturevalue(name[request.param]))


async def _cleanup(redis: Redis, prefix: str) -> None:
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        await redis.delete(key)


@pytest.fixture
def key_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(real_redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(real_redis_url)
    yield client
    await _cleanup(client, key_prefix)
    await client.aclose()


@pytest.fixture
async def store(redis_client: Redis, key_prefix: str) -> Store:
    return Store.create(redis_client, prefix=key_prefix)


@pytest.fixture
async def any_store(any_redis_url: str, key_prefix: str) -> AsyncIterator[Store]:
    """A Store as the service builds one: through its connection factory, with cluster hash tags on a cluster
    (tests that build a second Store on it pass `cluster_tags=any_store.keys.cluster_tags`)."""
    client, on_cluster = await connect_redis(any_redis_url)
    yield Store.create(client, prefix=key_prefix, cluster_tags=on_cluster)
    await _cleanup(client, key_prefix)
    await client.aclose()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "the seeded chaos test (tests/chaos)")
    group.addoption("--chaos-seed", action="append", type=int, default=None,
                    help="run the chaos test with this seed (repeatable); default CHAOS_SEEDS or the fixed set")  # fmt: skip
    group.addoption("--chaos-steps", type=int, default=None,
                    help="steps per seed (default CHAOS_STEPS or the CI length)")  # fmt: skip
