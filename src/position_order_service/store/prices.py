"""The last price of each (exchange, symbol) and its `prices:{exchange}:{symbol}` channel."""

from __future__ import annotations

from redis.asyncio import Redis

from .keys import Channels, Keys


class PriceRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels

    async def publish(self, exchange: str, symbol: str, fields: dict[str, str], payload: str) -> None:
        """Store the last price and publish the price.updated payload, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.last_price(exchange, symbol), mapping=fields)  # type: ignore[arg-type]
        pipe.publish(self.channels.prices(exchange, symbol), payload)
        await pipe.execute()
