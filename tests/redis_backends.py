"""Redis backends of the tests: the single real Redis (127.0.0.1:6379) and a real 3-master Redis Cluster.

The cluster is three `redis-server --cluster-enabled yes` processes on free loopback ports in a temporary
directory, joined by `redis-cli --cluster create ... --cluster-replicas 0`, started once per test session (per
xdist worker) the first time a test asks for `redis_cluster_url`, and stopped at the end. Where it cannot start
(no redis-server binary, say) the tests that need it are skipped, except in CI (CI=true), where they fail.

Other test modules use it by importing the fixtures (tests/conftest.py does) and either asking for
`redis_cluster_url`, or for `redis_backend`, parametrised "single" / "cluster": a `RedisBackend` whose
`client()` is the service's own connection factory (store/connection.py), and whose `store()` switches the
key names to cluster hash tags exactly as the service does when it finds a cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from position_order_service.store import Store
from position_order_service.store.connection import connect_redis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SINGLE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLUSTER_MASTERS = 3
START_TIMEOUT_S = 30.0


def _port_pair_free(port: int) -> bool:
    """The client port and its cluster bus port (+10000) are both free."""
    for p in (port, port + 10000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _free_cluster_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55000 and port not in ports and _port_pair_free(port):
            ports.append(port)
    return ports


def _wait_listening(port: int, proc: subprocess.Popen[bytes], until: float) -> None:
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not listen on port {port}")


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout


class LocalRedisCluster:
    """Three masters, no replicas, every slot covered; `stop()` kills the processes and removes the files."""

    def __init__(self, masters: int = CLUSTER_MASTERS) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pos-redis-cluster-"))
        self.ports = _free_cluster_ports(masters)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        for binary in ("redis-server", "redis-cli"):
            if shutil.which(binary) is None:
                raise RuntimeError(f"{binary} is not installed")
        until = time.monotonic() + START_TIMEOUT_S
        for port in self.ports:
            node_dir = self.dir / str(port)
            node_dir.mkdir()
            log = (node_dir / "redis.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout", "5000",
                        "--dir", str(node_dir),
                        "--save", "",
                        "--appendonly", "no",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        for port, proc in zip(self.ports, self.procs, strict=True):
            _wait_listening(port, proc, until)
        subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=True,
        )  # fmt: skip
        while time.monotonic() < until:  # every node agrees the cluster is up and knows every slot
            infos = [_cli(p, "cluster", "info") for p in self.ports]
            if all("cluster_state:ok" in i and "cluster_slots_ok:16384" in i for i in infos):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


START_ATTEMPTS = 3  # another test worker may take a port between our check and redis-server's bind


def start_local_cluster() -> LocalRedisCluster:
    """A running cluster; raises (the last reason) when none could start."""
    error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        cluster = LocalRedisCluster()
        try:
            cluster.start()
            return cluster
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            cluster.stop()
            error = exc
            if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
                break
    assert error is not None
    raise error


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """URL of one node of a real 3-master Redis Cluster on loopback (the client discovers the others)."""
    try:
        cluster = start_local_cluster()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        message = f"a local Redis Cluster could not start: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    yield cluster.url
    cluster.stop()


@dataclass(frozen=True, slots=True)
class RedisBackend:
    name: str  # "single" | "cluster"
    url: str

    @property
    def is_cluster(self) -> bool:
        return self.name == "cluster"

    async def client(self) -> Redis:
        """The service's connection factory, detecting the cluster by itself (REDIS_CLUSTER=auto)."""
        redis, cluster = await connect_redis(self.url)
        assert cluster == self.is_cluster
        return redis

    def store(self, redis: Redis, prefix: str, **kwargs: Any) -> Store:
        return Store.create(redis, prefix=prefix, cluster_tags=self.is_cluster, **kwargs)


def redis_backend_params() -> list[Any]:
    """The `params` of a fixture that runs a test on both backends ("single", "cluster")."""
    return ["single", "cluster"]


@pytest.fixture(params=redis_backend_params())
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    if request.param == "cluster":
        return RedisBackend("cluster", str(request.getfixturevalue("redis_cluster_url")))
    require = request.getfixturevalue("real_redis_url")
    return RedisBackend("single", str(require))


async def delete_prefixed(redis: Redis, prefix: str) -> None:
    """Delete the test's keys (on a cluster, SCAN runs on every master)."""
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        await redis.delete(key)


@pytest.fixture
async def backend_store(redis_backend: RedisBackend) -> AsyncIterator[Store]:
    """A Store on each backend under a private key prefix, cleaned up afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    redis = await redis_backend.client()
    yield redis_backend.store(redis, prefix)
    await delete_prefixed(redis, prefix)
    await redis.aclose()
