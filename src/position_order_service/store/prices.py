"""The last price of each (exchange, symbol) and its `prices:{exchange}:{symbol}` channel."""

from __future__ import annotations

from redis.asyncio import Redis

from . import lua
from .keys import Channels, Keys
from .writer import LuaScript


class PriceRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self._publish = LuaScript(redis, lua.PRICE)

    async def publish(self, exchange: str, symbol: str, fields: dict[str, str], payload: str) -> None:
        """Store the last price and publish the price.updated payload, in one atomic step (a script: a Redis
        Cluster pipeline takes no PUBLISH)."""
        pairs = [x for kv in fields.items() for x in kv]
        await self._publish(
            [self.keys.last_price(exchange, symbol)],
            [self.channels.prices(exchange, symbol), payload, *pairs],
        )
