"""Who the service tracks (SPEC section 10): the activate/deactivate keys, the bots' own status keys (read
only: they steer the bots) and watchlists."""

from __future__ import annotations

from redis.asyncio import Redis

from .keys import Keys


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class ActiveUserRepository:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def _members(self, key: str) -> set[str]:
        return {_s(m) for m in await self.redis.smembers(key)}

    async def active_user_ids(self) -> set[str]:
        """Users activated by the API or whose bot status is "enabled", minus the deactivated ones."""
        keys = self.keys
        users = await self._members(keys.active_users())
        prefix, suffix = keys.bot_status("\x00").split("\x00")
        async for key in self.redis.scan_iter(match=keys.bot_status_pattern(), count=500):
            k = _s(key)
            if _s(await self.redis.get(k)) == "enabled":
                users.add(k[len(prefix) : len(k) - len(suffix)])
        return users - await self._members(keys.deactivated_users())

    async def exchanges_of(self, user_id: str) -> set[str]:
        """Exchanges chosen by the activate API, plus the bot's own bot:exchanges."""
        return await self._members(self.keys.tracked_exchanges(user_id)) | await self._members(
            self.keys.bot_exchanges(user_id)
        )

    async def watchlist(self, user_id: str, exchange: str) -> set[str]:
        return await self._members(self.keys.watchlist(user_id, exchange))

    async def activate(self, user_id: str, exchanges: list[str]) -> None:
        """The user's own exchanges first, then the global sets: each step within one Redis Cluster slot.
        Between the two SADD/SREM the user is in both sets, which reads as not active yet."""
        keys = self.keys
        # the bot's own keys (bot:status, bot:exchanges) are read, never written: they steer the bots
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.tracked_exchanges(user_id))
        pipe.sadd(keys.tracked_exchanges(user_id), *exchanges)
        await pipe.execute()
        await self.redis.sadd(keys.active_users(), user_id)
        await self.redis.srem(keys.deactivated_users(), user_id)

    async def deactivate(self, user_id: str) -> bool:
        """Remembered as deactivated (a bot status scan does not bring the user back); True if was active.
        Marked deactivated first (that alone makes the user inactive), then removed from the active set: two
        single-key steps, as the sets may live in different Redis Cluster slots."""
        keys = self.keys
        await self.redis.sadd(keys.deactivated_users(), user_id)
        removed = await self.redis.srem(keys.active_users(), user_id)
        return bool(removed)
