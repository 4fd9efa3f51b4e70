"""Redis store: key names, encodings, atomic state+event writes, repositories."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from .codec import CorruptRecord
from .cooldowns import CooldownRepository
from .credentials import CredentialRepository
from .events import EventStreamRepository
from .fill_marks import FillMarkRepository
from .intents import IntentRepository
from .keys import Channels, Keys
from .machines import RuleRepository, TrailingStopRepository
from .prices import PriceRepository
from .repositories import OrderRepository, PositionRepository
from .retention import StreamRetention
from .users import ActiveUserRepository
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
    trailing_stops: TrailingStopRepository
    rules: RuleRepository
    users: ActiveUserRepository
    credentials: CredentialRepository
    prices: PriceRepository
    cooldowns: CooldownRepository
    events: EventStreamRepository
    fill_marks: FillMarkRepository

    @classmethod
    def create(
        cls,
        redis: Redis,
        prefix: str = "",
        cluster_tags: bool = False,
        dual_write: bool = False,
        retention: StreamRetention | None = None,
    ) -> Store:
        keys = Keys(prefix=prefix, cluster_tags=cluster_tags)
        channels = Channels(prefix=prefix)
        writer = EventWriter(redis, keys, channels, retention=retention)
        return cls(
            redis=redis,
            keys=keys,
            channels=channels,
            writer=writer,
            positions=PositionRepository(redis, keys, channels, writer, dual_write=dual_write),
            orders=OrderRepository(redis, keys, channels, writer),
            intents=IntentRepository(redis, keys, writer.fences),
            trailing_stops=TrailingStopRepository(redis, keys, channels, writer),
            rules=RuleRepository(redis, keys, channels, writer),
            users=ActiveUserRepository(redis, keys),
            credentials=CredentialRepository(redis, keys),
            prices=PriceRepository(redis, keys, channels),
            cooldowns=CooldownRepository(redis, keys),
            events=EventStreamRepository(redis, keys, channels),
            fill_marks=FillMarkRepository(redis, keys),
        )


__all__ = ["Channels", "CorruptRecord", "Keys", "Store"]
