"""Redis store: key names, encodings, atomic state+event writes, repositories."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from .codec import CorruptRecord
from .intents import IntentRepository
from .keys import Channels, Keys
from .repositories import OrderRepository, PositionRepository
from .writer import EventWriter


@dataclass(slots=True)
class Store:
    redis: Redis
    keys: Keys
    channels: Channels
    writer: EventWriter
    positions: PositionRepository
    orders: OrderRepository
    intents: IntentRepository

    @classmethod
    def create(cls, redis: Redis, prefix: str = "", cluster_tags: bool = False) -> Store:
        keys = Keys(prefix=prefix, cluster_tags=cluster_tags)
        channels = Channels(prefix=prefix)
        writer = EventWriter(redis, keys, channels)
        return cls(
            redis=redis,
            keys=keys,
            channels=channels,
            writer=writer,
            positions=PositionRepository(redis, keys, channels, writer),
            orders=OrderRepository(redis, keys, channels, writer),
            intents=IntentRepository(redis, keys),
        )


__all__ = ["Channels", "CorruptRecord", "Keys", "Store"]
