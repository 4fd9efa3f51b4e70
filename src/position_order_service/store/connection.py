"""The Redis client the service uses: a large connection pool, and commands packed by hiredis.

redis-py's asyncio connection packs every command in Python: for an EVALSHA with ~80 arguments (one state
write) that is most of the client's CPU. hiredis packs the same bytes about ten times faster. redis-py's
default pool raises once 100 connections are in use (many users' trackers at once); its blocking pool waits
instead, but pays an asyncio timeout on every command. A plain pool with a high ceiling costs neither.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.exceptions import BusyLoadingError

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
