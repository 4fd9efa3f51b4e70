"""Counts per account for the operator's overview (GET /api/v1/accounts), in one pipelined round trip."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from .keys import Keys


async def open_counts(redis: Redis, keys: Keys, accounts: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    """(open positions, open orders) of each (user, exchange), in the given order."""
    if not accounts:
        return []
    pipe = redis.pipeline(transaction=False)
    for user_id, exchange in accounts:
        pipe.scard(keys.position_index(user_id, exchange))
        pipe.scard(keys.open_orders(user_id, exchange))
    replies = await pipe.execute()
    return [(int(replies[2 * i]), int(replies[2 * i + 1])) for i in range(len(accounts))]
