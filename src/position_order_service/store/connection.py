"""The Redis client the service uses: a large connection pool, and commands packed by hiredis.

redis-py's asyncio connection packs every command in Python: for an EVALSHA with ~80 arguments (one state
write) that is most of the client's CPU. hiredis packs the same bytes about ten times faster. redis-py's
default pool raises once 100 connections are in use (many users' trackers at once); its blocking pool waits
instead, but pays an asyncio timeout on every command. A plain pool with a high ceiling costs neither.

Redis Cluster (REDIS_CLUSTER=true, or detected by `INFO cluster` when unset): `connect_redis` returns redis-py's
asyncio RedisCluster instead, with the same connection class per node. It speaks the same commands; it routes
each one (and each EVALSHA, by its keys) to the master of the key's slot, splits pipelines per node, and runs a
MULTI only within one slot. The store keeps every multi-key step within one user's slot (store/keys.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import hiredis
from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import BusyLoadingError, ResponseError

log = logging.getLogger(__name__)
LOADING_WAIT_S = 300.0  # a large append-only file takes a while to replay

DEFAULT_MAX_CONNECTIONS = 4096


class HiredisPackedConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "CONFIG GET": the server wants two arguments
            args = (*args[0].split(), *args[1:])
        try:  # str, bytes, int, float: hiredis spells them as redis-py does (repr of numbers), in C
            return [hiredis.pack_command(args)]
        except TypeError:  # anything else (a bool, a memoryview): redis-py's encoder decides, as before
            pass
        encode = self.encoder.encode
        parts: Any = tuple(a if isinstance(a, (bytes, str)) else encode(a) for a in args)  # type: ignore[no-untyped-call]
        try:
            packed: bytes = hiredis.pack_command(parts)
            return [packed]
        except TypeError:
            return super().pack_command(*args)


def make_redis(url: str, max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any) -> Redis:
    pool_kwargs: dict[str, Any] = {"max_connections": max_connections, **kwargs}
    if url.startswith("redis://"):
        pool_kwargs["connection_class"] = HiredisPackedConnection
    pool = ConnectionPool.from_url(url, **pool_kwargs)
    return Redis(connection_pool=pool)


ClusterMode = Literal["auto", "true", "false"]


def make_cluster(url: str, max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any) -> Redis:
    """redis-py's asyncio cluster client, typed as the single-node client the store is written against: it
    offers the same command methods (pipelines, EVALSHA, SCAN over every master, Pub/Sub), routed by key slot."""
    if urlsplit(url).path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0: drop the /<db> of REDIS_URL (or REDIS_DB)")
    cluster_kwargs: dict[str, Any] = {"max_connections": max_connections, **kwargs}
    if url.startswith("redis://"):
        cluster_kwargs["connection_class"] = HiredisPackedConnection
    client = RedisCluster.from_url(url, **cluster_kwargs)
    return cast(Redis, client)


def is_cluster_client(redis: Redis) -> bool:
    """The client is redis-py's cluster client (the store then uses the cluster hash tags of keys.py)."""
    return isinstance(redis, RedisCluster)


async def is_cluster(url: str, **kwargs: Any) -> bool:
    """`INFO cluster` says cluster_enabled:1 (a server without that section, fakeredis say, is no cluster)."""
    probe = Redis.from_url(url, **kwargs)
    try:
        info = await probe.info("cluster")
    except ResponseError:
        return False
    finally:
        await probe.aclose()
    return str(info.get("cluster_enabled", "0")) == "1"


async def connect_redis(
    url: str, cluster: ClusterMode = "auto", max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any
) -> tuple[Redis, bool]:
    """The client for `url` and whether it is a cluster ("auto": ask the server once)."""
    on_cluster = cluster == "true" or (cluster == "auto" and await is_cluster(url, **kwargs))
    if on_cluster:
        client = make_cluster(url, max_connections, **kwargs)
        # learn the slot map now: a Pub/Sub opened before any command would find no node for its channel
        await cast(RedisCluster, client).initialize()
        return client, True
    return make_redis(url, max_connections, **kwargs), False


async def reachable(redis: Redis, within_s: float = 1.0) -> bool:
    """True when Redis answers a PING within `within_s` (health figures; never raises)."""
    try:
        async with asyncio.timeout(within_s):
            return bool(await redis.ping())
    except Exception:  # unreachable, timed out, refused: all mean "no"
        return False


async def wait_until_loaded(redis: Redis, within_s: float = LOADING_WAIT_S) -> None:
    """PING until Redis has replayed its data: a server restarted on a persisted dataset answers LOADING for a
    while, and a service that gave up then would not start at all (or, worse, start on an empty view)."""
    deadline = asyncio.get_running_loop().time() + within_s
    said = False
    while True:
        try:
            await redis.ping()
            return
        except BusyLoadingError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            if not said:
                log.info("Redis is loading its dataset into memory; waiting for it")
                said = True
            await asyncio.sleep(0.1)
