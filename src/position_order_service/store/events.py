"""Reading users' event streams (the live feed, replays): XREVRANGE/XREAD over `events:{user}`, and a
Pub/Sub connection for price channels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.crc import key_slot

from .connection import is_cluster_client
from .keys import Channels, Keys

T = TypeVar("T")


def read_groups(
    redis: Redis, streams: Sequence[T], key: Callable[[T], str], max_per_read: int
) -> list[list[T]]:
    """Streams cut into XREADs of at most `max_per_read`; on a Redis Cluster, also never two slots in one
    XREAD (users' streams are in their own slots; a cross-slot XREAD is refused there)."""
    step = max(1, max_per_read)
    if not is_cluster_client(redis):
        return [list(streams[i : i + step]) for i in range(0, len(streams), step)]
    by_slot: dict[int, list[T]] = {}
    for item in streams:
        by_slot.setdefault(key_slot(key(item).encode()), []).append(item)
    return [group[i : i + step] for group in by_slot.values() for i in range(0, len(group), step)]


class EventStreamRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels

    def stream_key(self, user_id: str) -> str:
        return self.keys.event_stream(user_id)

    async def last_id(self, user_id: str) -> str:
        """The id of the user's newest event ("0-0" when there is none): a cursor for new events only."""
        last: Any = await self.redis.xrevrange(self.keys.event_stream(user_id), count=1)
        return str(last[0][0].decode()) if last else "0-0"

    async def oldest_seq_of_last(self, user_id: str, count: int) -> int:
        """The seq of the oldest of the user's last `count` events (0 when the stream is empty)."""
        recent: Any = await self.redis.xrevrange(self.keys.event_stream(user_id), count=count)
        return int(recent[-1][0].decode().partition("-")[0]) if recent else 0

    async def read(
        self, cursors: dict[str, str], count: int = 500, block_ms: int = 1000
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Entries after each stream's cursor: (stream key, entry id, event), oldest first per stream.
        Streams of several cluster slots: one XREAD per slot, pipelined, without blocking (a short sleep when
        nothing came instead)."""
        groups = read_groups(self.redis, list(cursors.items()), lambda kv: kv[0], len(cursors) or 1)
        if len(groups) <= 1:
            results: list[Any] = [
                await self.redis.xread(dict(cursors), count=count, block=block_ms)  # type: ignore[arg-type]
            ]
        else:
            pipe = self.redis.pipeline(transaction=False)
            for g in groups:
                pipe.xread(dict(g), count=count)
            results = await pipe.execute()
        out: list[tuple[str, str, dict[str, Any]]] = []
        for result in results:
            for key_raw, entries in result or []:
                key = key_raw.decode() if isinstance(key_raw, bytes) else key_raw
                for entry_id, fields in entries:
                    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    out.append((key, eid, orjson.loads(fields[b"data"])))
        if not out and len(groups) > 1 and block_ms:
            await asyncio.sleep(min(block_ms, 200) / 1000)
        return out

    async def all_events(self, user_id: str) -> list[dict[str, Any]]:
        entries: Any = await self.redis.xrange(self.keys.event_stream(user_id))
        return [orjson.loads(f[b"data"]) for _, f in entries]

    def pubsub(self) -> PubSub:
        return self.redis.pubsub()

    def price_channel(self, exchange: str, symbol: str) -> str:
        return self.channels.prices(exchange, symbol)
