"""An account's fill read mark (issue 14): the exchange's time of the last fill its owner applied.

Fills the exchange makes while an account has no owner (its worker died; the lease has not expired yet) reach
no stream. The next owner's first snapshot reads the account's fills back over REST from a little before the
mark, so each of them is emitted once (the fills-seen guard skips the ones emitted already). The mark is the
exchange's time, never ours, and it is written through the fenced path: a worker that lost the account
cannot move it.
"""

from __future__ import annotations

from redis.asyncio import Redis

from . import lua
from .keys import Keys
from .leases import Fence
from .writer import Call, LuaScript


class FillMarkRepository:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._advance = LuaScript(redis, lua.FILL_MARK)

    async def get(self, user_id: str, exchange: str) -> int | None:
        raw = await self.redis.get(self.keys.fill_mark(user_id, exchange))
        return None if raw is None else int(raw)

    def advance_call(self, user_id: str, exchange: str, fill_ms: int, fence: Fence | None) -> Call:
        """A group-commit call moving the mark forward to `fill_ms` (never back)."""
        return Call(self._advance, [self.keys.fill_mark(user_id, exchange)], [fill_ms]).fenced(fence)
