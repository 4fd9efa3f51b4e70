"""Raw reads for tools that inspect the keyspace (the migration consistency check): key scans by pattern,
hashes in bulk, set members. The service's own state is read through the repositories."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def text_of(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


class KeyReader:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def ping(self) -> None:
        await self.redis.ping()

    async def scan(self, pattern: str) -> list[str]:
        """Every key matching `pattern`, sorted."""
        return sorted([_s(k) async for k in self.redis.scan_iter(match=pattern, count=500)])

    async def hashes(self, keys: list[str]) -> list[dict[str, str] | None]:
        """Each key's hash (None when it is absent or not a hash), two round trips for all."""
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.type(k)
        types = [_s(t) for t in await pipe.execute()]
        pipe = self.redis.pipeline(transaction=False)
        for k, t in zip(keys, types, strict=True):
            if t == "hash":
                pipe.hgetall(k)
        raws = iter(await pipe.execute())
        return [text_of(next(raws)) if t == "hash" else None for t in types]

    async def members(self, key: str) -> list[str]:
        return [_s(m) for m in await self.redis.smembers(key)]
