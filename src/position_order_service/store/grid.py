"""GRID levels in the new schema: one hash per level, an index of open levels, and (DUAL_SCHEMA_WRITE) the
GRID bot's legacy `{exchange}:user:{user_id}:symbol:{symbol}:active_grid:{level}` hash, all written in ONE
atomic Lua step (EventWriter.apply with an `hset_mirror` op). No event is emitted: a level record is the
bot's bookkeeping; the orders and positions behind it emit their own events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field
from redis.asyncio import Redis

from ..domain.enums import Exchange, PositionSide
from ..domain.models import GridLevel, Money, NonNegative, Positive, UtcDateTime, utc_now
from .codec import HashCodec
from .keys import Keys
from .legacy import grid_fields, pack
from .writer import EventWriter, IndexOp, Write, WriteResult

MIN_LEVEL = 0
MAX_LEVEL = 20
CLOSED_LEVEL_TTL_S = 7 * 24 * 3600


class GridLevelStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class GridLevelRecord(BaseModel):
    """What the GRID bot knows about one level: the fill that opened it and its size."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    user_id: Annotated[str, Field(min_length=1, max_length=128)]
    exchange: Exchange
    symbol: Annotated[str, Field(min_length=1, max_length=64)]
    level: GridLevel
    side: PositionSide = PositionSide.LONG
    entry_price: Positive
    position_size: NonNegative
    grid_count: Annotated[int, Field(ge=0)] = 0
    order_id: str | None = None
    pnl: Money | None = None
    execution_time: UtcDateTime | None = None
    status: GridLevelStatus = GridLevelStatus.OPEN
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDateTime = Field(default_factory=utc_now)
    updated_at: UtcDateTime = Field(default_factory=utc_now)
    closed_at: UtcDateTime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_open(self) -> bool:
        return self.status is GridLevelStatus.OPEN

    @computed_field  # type: ignore[prop-decorator]
    @property
    def notional_value(self) -> Decimal:
        return self.position_size * self.entry_price


GRID_CODEC: HashCodec[GridLevelRecord] = HashCodec(GridLevelRecord)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class GridRepository:
    def __init__(self, redis: Redis, keys: Keys, writer: EventWriter, dual_write: bool = False) -> None:
        self.redis = redis
        self.keys = keys
        self.writer = writer
        self.dual_write = dual_write  # DUAL_SCHEMA_WRITE: also write the GRID legacy key

    def key_of(self, r: GridLevelRecord) -> str:
        return self.keys.grid_level(r.user_id, r.exchange.value, r.symbol, r.level)

    def legacy_key_of(self, r: GridLevelRecord) -> str:
        return self.keys.legacy_grid_level(r.exchange.value, r.user_id, r.symbol, r.level)

    def write_for(self, r: GridLevelRecord) -> Write:
        key = self.key_of(r)
        index = self.keys.grid_index(r.user_id, r.exchange.value)
        member = self.keys.grid_index_member(r.symbol, r.level)
        fields = GRID_CODEC.encode(r)
        ops: list[IndexOp]
        if r.is_open:
            ops = [IndexOp("sadd", index, member), IndexOp("persist", key)]
            if self.dual_write:
                ops.append(IndexOp("hset_mirror", self.legacy_key_of(r), pack(grid_fields(r))))
        else:
            ops = [IndexOp("srem", index, member), IndexOp("expire", key, str(CLOSED_LEVEL_TTL_S))]
            if self.dual_write:
                ops.append(IndexOp("del", self.legacy_key_of(r)))
        return Write(
            key=key,
            user_id=r.user_id,
            set_fields=fields,
            del_fields=GRID_CODEC.absent_fields(fields),
            ops=ops,
            version_ts=_ms(r.updated_at),
        )

    async def save(self, r: GridLevelRecord) -> WriteResult:
        """Write the record (and its legacy mirror) atomically; an older `updated_at` never wins."""
        return await self.writer.apply(self.write_for(r))

    async def get(self, user_id: str, exchange: str, symbol: str, level: int) -> GridLevelRecord | None:
        key = self.keys.grid_level(user_id, exchange, symbol, level)
        raw = await self.redis.hgetall(key)
        return GRID_CODEC.decode(key, raw) if raw else None

    async def list_open(
        self, user_id: str, exchange: str, symbol: str | None = None
    ) -> list[GridLevelRecord]:
        """Open levels of a user on an exchange (optionally one symbol), by symbol and level."""
        members = [
            self.keys.split_grid_index_member(m.decode() if isinstance(m, bytes) else m)
            for m in await self.redis.smembers(self.keys.grid_index(user_id, exchange))
        ]
        wanted = sorted((s, lv) for s, lv in members if symbol is None or s == symbol)
        if not wanted:
            return []
        keys = [self.keys.grid_level(user_id, exchange, s, lv) for s, lv in wanted]
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        raws = await pipe.execute()
        records = [GRID_CODEC.decode(k, r) for k, r in zip(keys, raws, strict=True) if r]
        return [r for r in records if r.is_open]

    @staticmethod
    def closed(r: GridLevelRecord, now: datetime | None = None) -> GridLevelRecord:
        at = max(now or datetime.now(UTC), r.updated_at)
        return r.model_copy(
            update={
                "status": GridLevelStatus.CLOSED,
                "position_size": Decimal(0),
                "closed_at": at,
                "updated_at": at,
            }
        )


__all__ = ["GRID_CODEC", "MAX_LEVEL", "MIN_LEVEL", "GridLevelRecord", "GridLevelStatus", "GridRepository"]
