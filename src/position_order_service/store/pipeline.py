"""The group commit's round trip without redis-py's pipeline: one connection held by the writer (one pipeline is
in flight at a time), every command of the batch packed into one write, the replies read from its parser.

redis-py's asyncio pipeline spends ~100 us of CPU per round trip beyond packing (a pool checkout, a retry
wrapper, an asyncio timeout and a response callback per reply): with 100+ accounts, where a round trip carries
a few accounts' writes, that was a fifth of an update's cost. The replies are redis-py's own: an error reply is
its exception object (NoScriptError included), a hash read a dict. A Redis Cluster keeps redis-py's pipeline,
which routes each command to its slot's node.

The replies are read straight from the connection's parser (redis-py's `_parser`, pinned by the version range in
pyproject.toml): its public `read_response` formats an error context and may start a timeout on every reply.
If a redis-py release drops that attribute, the public read is used instead (the same replies, a little more
CPU), not a crash.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

REPLIES_PER_DEADLINE = 64  # the socket timeout restarts every this many replies (rescheduling costs a timer)
MAX_IDLE = (
    2  # connections kept between round trips; more, after a burst of concurrent callers, go back to the pool
)


class RawPipeline:
    """Round trips on connections of the client's pool, kept between uses (each carries one round trip at a
    time: concurrent callers use more of them)."""

    def __init__(self, redis: Redis, *, read_from_parser: bool = True) -> None:
        self._pool = redis.connection_pool
        self._idle: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_from_parser = (
            read_from_parser  # False: redis-py's public read (tests; a redis-py without it)
        )

    @property
    def idle(self) -> int:
        """Connections kept for the next round trips (at most MAX_IDLE)."""
        return len(self._idle)

    def _reader(self, conn: Any) -> Callable[[], Awaitable[Any]]:
        """How to read one reply from `conn`: an error reply comes back as its exception, not raised."""
        parser = getattr(conn, "_parser", None)
        if self._read_from_parser and parser is not None and hasattr(parser, "read_response"):
            return parser.read_response  # type: ignore[no-any-return]

        async def read() -> Any:
            try:
                # no per-read timeout (math.inf): the round trip's own deadline covers the reads
                return await conn.read_response(timeout=math.inf, disconnect_on_error=False)
            except ResponseError as exc:
                return exc

        return read

    async def _acquire(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._idle = []  # bound to an event loop that is gone (tests); their pool disconnects them on close
            self._loop = loop
        if self._idle:
            return self._idle.pop()
        return await self._pool.get_connection()  # type: ignore[no-untyped-call]

    async def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send `commands`, return their replies in order (an error reply as its exception, not raised).
        Raises redis' ConnectionError or TimeoutError when the round trip fails: none of the replies is known."""
        conn = await self._acquire()
        timeout = conn.socket_timeout
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout) as deadline:
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                read = self._reader(conn)
                out = []
                for i, command in enumerate(commands):
                    if i and i % REPLIES_PER_DEADLINE == 0 and timeout is not None:
                        # as redis-py's per-read timeout: a large batch that keeps answering never times out
                        deadline.reschedule(loop.time() + timeout)
                    reply = await read()
                    out.append(_as_dict(reply) if command[0] == "HGETALL" else reply)
        except BaseException as exc:
            # replies may be left unread on the connection: it cannot carry another round trip
            await conn.disconnect(nowait=True)
            await self._pool.release(conn)
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError("Timeout reading the replies of a pipelined round trip") from exc
            if isinstance(exc, OSError):  # (redis-py's own reads convert these: callers retry what they know)
                raise RedisConnectionError(
                    f"Error reading the replies of a pipelined round trip: {exc}"
                ) from exc
            raise
        if len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            await self._pool.release(conn)
        return out


def _as_dict(reply: Any) -> Any:
    """HGETALL's reply as redis-py gives it: RESP2 sends a flat list of fields and values."""
    if isinstance(reply, list):
        return dict(zip(reply[::2], reply[1::2], strict=True))
    return reply
