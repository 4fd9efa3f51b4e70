"""The group commit's round trip without redis-py's pipeline: one connection held by the writer (one pipeline is
in flight at a time), every command of the batch packed into one write, the replies read from its parser.

redis-py's asyncio pipeline spends ~100 us of CPU per round trip beyond packing (a pool checkout, a retry
wrapper, an asyncio timeout and a response callback per reply): with 100+ accounts, where a round trip carries
a few accounts' writes, that was a fifth of an update's cost. The replies are redis-py's own: an error reply is
its exception object (NoScriptError included), a hash read a dict. A Redis Cluster keeps redis-py's pipeline,
which routes each command to its slot's node.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REPLIES_PER_DEADLINE = 64  # the socket timeout restarts every this many replies (rescheduling costs a timer)


class RawPipeline:
    """Round trips on connections of the client's pool, kept between uses (each carries one round trip at a
    time: concurrent callers use more of them)."""

    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._idle: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None

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
                read = conn._parser.read_response
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
        self._idle.append(conn)
        return out


def _as_dict(reply: Any) -> Any:
    """HGETALL's reply as redis-py gives it: RESP2 sends a flat list of fields and values."""
    if isinstance(reply, list):
        return dict(zip(reply[::2], reply[1::2], strict=True))
    return reply
