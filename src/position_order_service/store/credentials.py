"""Where users' exchange credentials are kept: encrypted blobs (services/credentials.py encrypts), and the
seed's plaintext `user:{id}:api:keys` hash, read only when a setting allows it."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import WatchError

from .keys import Keys


class CredentialRepository:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def put(self, user_id: str, exchange: str, token: bytes) -> None:
        await self.redis.set(self.keys.credentials(user_id, exchange), token)

    async def get(self, user_id: str, exchange: str) -> bytes | None:
        token = await self.redis.get(self.keys.credentials(user_id, exchange))
        if token is None:
            return None
        return token if isinstance(token, bytes) else str(token).encode()

    async def delete(self, user_id: str, exchange: str) -> bool:
        return bool(await self.redis.delete(self.keys.credentials(user_id, exchange)))

    async def exists(self, user_id: str, exchange: str) -> bool:
        return bool(await self.redis.exists(self.keys.credentials(user_id, exchange)))

    async def replace(self, user_id: str, exchange: str, old: bytes, new: bytes) -> bool:
        """Set `new` only if the stored value is still `old` (a compare-and-set); True if replaced."""
        key = self.keys.credentials(user_id, exchange)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.get(key) != old:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(key, new)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def legacy_plaintext(self, user_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(self.keys.legacy_api_keys(user_id))  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items()}
