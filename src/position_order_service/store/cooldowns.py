"""HYPERRSI's entry cooldowns: a running cooldown is a key with a TTL; per-user settings in a hash."""

from __future__ import annotations

from redis.asyncio import Redis

from .keys import Keys


class CooldownRepository:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def set_seconds(self, user_id: str, seconds: float) -> None:
        await self.redis.hset(self.keys.hyperrsi_settings(user_id), "cooldown_s", str(seconds))

    async def seconds(self, user_id: str) -> str | None:
        raw = await self.redis.hget(self.keys.hyperrsi_settings(user_id), "cooldown_s")
        return None if raw is None else (raw.decode() if isinstance(raw, bytes) else str(raw))

    async def left_ms(self, user_id: str, symbol: str) -> int:
        return max(0, int(await self.redis.pttl(self.keys.hyperrsi_cooldown(user_id, symbol))))

    async def claim(self, user_id: str, symbol: str, ms: int) -> bool:
        """Start the cooldown unless one runs; True if this call started it."""
        return bool(
            await self.redis.set(self.keys.hyperrsi_cooldown(user_id, symbol), "entry", nx=True, px=ms)
        )

    async def start(self, user_id: str, symbol: str, ms: int) -> None:
        await self.redis.set(self.keys.hyperrsi_cooldown(user_id, symbol), "close", px=ms)

    async def clear(self, user_id: str, symbol: str) -> None:
        await self.redis.delete(self.keys.hyperrsi_cooldown(user_id, symbol))
