"""A Redis restarted on a persisted dataset answers LOADING until it has replayed it: the service waits instead of
failing to start (seen when the embedded Redis restarted on its append-only file)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from position_order_service.store.connection import wait_until_loaded
from position_order_service.store.embedded import free_port

KEYS = 50_000  # read back with a delay per key (a hidden test setting of redis-server): ~2 s of LOADING


def _server(port: int, data: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
         "--appendonly", "no", "--enable-debug-command", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start")


@pytest.fixture
def restarted_on_a_large_dataset(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    first = _server(port, tmp_path)
    subprocess.run(
        ["redis-cli", "-p", str(port), "debug", "populate", str(KEYS)], check=True, capture_output=True
    )
    subprocess.run(["redis-cli", "-p", str(port), "save"], check=True, capture_output=True)
    first.terminate()
    first.wait(timeout=30)
    second = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
         "--appendonly", "no", "--key-load-delay", "40", "--loading-process-events-interval-bytes", "1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port
    finally:
        second.kill()
        second.wait(timeout=10)


async def test_the_service_waits_for_a_loading_redis(restarted_on_a_large_dataset: int) -> None:
    # no client-side retries: redis-py's own (about 4 s of backoff) would hide a loading longer than that
    redis = Redis(port=restarted_on_a_large_dataset, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        deadline = time.monotonic() + 10
        while True:  # the port opens while the data is still being read
            try:
                await redis.ping()
                raise AssertionError("Redis answered before loading its data: the test proves nothing")
            except BusyLoadingError:
                break
            except RedisConnectionError:
                assert time.monotonic() < deadline, "redis-server did not open its port"
                await asyncio.sleep(0.01)
        await wait_until_loaded(redis)
        assert await redis.dbsize() == KEYS
    finally:
        await redis.aclose()
