"""Repositories: read and write positions and orders, each write one atomic step with its event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from ..domain.enums import PositionStatus
from ..domain.events import envelope, order_event_type, order_fields, position_fields
from ..domain.models import Order, Position
from ..domain.reconcile import Intent, order_progress
from . import lua
from .codec import CorruptRecord, HashCodec, enc_decimal
from .intents import IntentRepository
from .keys import Channels, Keys
from .legacy import HYPERRSI_EXCHANGE, hyperrsi_fields, pack
from .writer import Call, EventWriter, IndexOp, LuaScript, Write, WriteResult

POSITION_CODEC: HashCodec[Position] = HashCodec(Position, flatten={"pnl": "_pnl"})
ORDER_CODEC: HashCodec[Order] = HashCodec(Order)
FINISHED_ORDER_TTL_S = 7 * 24 * 3600
_ORDER_COMPUTED = set(Order.model_computed_fields)
AUTO = "auto"  # the event type follows the record: new (or reopened) vs existing, decided in the script
MARK_FIELDS = ("current_price", "unrealized_pnl")  # what a mark writes: outside the content digest


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class PositionRepository:
    def __init__(
        self, redis: Redis, keys: Keys, channels: Channels, writer: EventWriter, dual_write: bool = False
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.writer = writer
        self.dual_write = dual_write  # DUAL_SCHEMA_WRITE: also write the HYPERRSI legacy key
        self._list = LuaScript(redis, lua.LIST_INDEXED)

    def _legacy_ops(self, p: Position) -> list[IndexOp]:
        if not self.dual_write or p.exchange.value != HYPERRSI_EXCHANGE:
            return []
        key = self.keys.legacy_hyperrsi_position(p.user_id, p.symbol, p.side.value)
        if not p.is_open:
            return [IndexOp("del", key)]
        return [IndexOp("hset_mirror", key, pack(hyperrsi_fields(p)))]

    def write_for(
        self,
        p: Position,
        metadata: dict[str, Any] | None = None,
        extra_ops: Sequence[IndexOp] = (),
        *,
        event: str | None = AUTO,
        versioned: bool = True,
    ) -> Write:
        """The atomic write of a position and its event. `event`: AUTO (opened/updated/closed by what is
        stored), an explicit type, or None (a silent write). `versioned`: False for our own fields only
        (annotations): the exchange's version is neither checked nor advanced."""
        key = self.keys.position(p.user_id, p.exchange.value, p.symbol, p.side.value)
        index = self.keys.position_index(p.user_id, p.exchange.value)
        member = self.keys.position_index_member(p.symbol, p.side.value)
        fields = POSITION_CODEC.encode(p)
        is_open = p.is_open
        closed_type = "position.closed"
        auto = event == AUTO
        return Write(
            key=key,
            user_id=p.user_id,
            set_fields=fields,
            del_fields=POSITION_CODEC.absent_fields(fields),
            ops=[IndexOp("sadd" if is_open else "srem", index, member), *self._legacy_ops(p), *extra_ops],
            version_ts=_ms(p.updated_at) if versioned else None,
            channel=self.channels.positions(p.user_id, p.exchange.value, p.symbol),
            event=None
            if event is None
            else {**envelope(p.user_id, p.exchange.value, metadata), **position_fields(p)},
            event_type_new=("position.opened" if is_open else closed_type) if auto else (event or ""),
            event_type=("position.updated" if is_open else closed_type) if auto else (event or ""),
            new_again_statuses=(PositionStatus.CLOSED.value, PositionStatus.LIQUIDATED.value) if auto else (),
            digest_exclude=("updated_at", *MARK_FIELDS),
        )

    def mark_call(self, p: Position) -> Call:
        """Value an open position at its new mark (current_price and unrealized PnL only): event
        position.updated with metadata {"cause": "mark"}; never a version (store/lua.py MARK)."""
        assert p.current_price is not None
        key = self.keys.position(p.user_id, p.exchange.value, p.symbol, p.side.value)
        event = {**envelope(p.user_id, p.exchange.value, {"cause": "mark"}), **position_fields(p)}
        fields = (enc_decimal(p.current_price), enc_decimal(p.pnl.unrealized), enc_decimal(p.size))
        channel = self.channels.positions(p.user_id, p.exchange.value, p.symbol)
        return self.writer.mark_call(key, p.user_id, fields, channel, event)

    async def upsert(self, p: Position, metadata: dict[str, Any] | None = None) -> WriteResult:
        return await self.writer.apply(self.write_for(p, metadata))

    async def get(self, user_id: str, exchange: str, symbol: str, side: str) -> Position | None:
        key = self.keys.position(user_id, exchange, symbol, side)
        raw = await self.redis.hgetall(key)
        return POSITION_CODEC.decode(key, raw) if raw else None

    async def open_counts(self, accounts: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """How many open positions each (user, exchange) has, in one pipelined round trip (a cluster client
        splits it per node)."""
        if not accounts:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for user_id, exchange in accounts:
            pipe.scard(self.keys.position_index(user_id, exchange))
        return {a: int(n) for a, n in zip(accounts, await pipe.execute(), strict=True)}

    async def list(self, user_id: str, exchange: str, symbol: str | None = None) -> list[Position]:
        """Open positions of a user on an exchange (optionally one symbol), sorted by symbol and side: one
        round trip (SMEMBERS and every HGETALL in one script)."""
        index = self.keys.position_index(user_id, exchange)
        prefix = self.keys.position(user_id, exchange, "", "")[: -len(":")]  # "...:{exchange}:"
        member_filter = self.keys.position_index_member(symbol, "") if symbol is not None else ""
        flat: list[Any] = await self._list(keys=[index], args=[prefix, member_filter])
        out: list[Position] = []
        for i in range(0, len(flat), 2):
            member = flat[i].decode() if isinstance(flat[i], bytes) else flat[i]
            sym, side = self.keys.split_position_index_member(member)
            if symbol is not None and sym != symbol:
                continue
            pairs = flat[i + 1]
            raw = dict(zip(pairs[::2], pairs[1::2], strict=True))
            out.append(
                POSITION_CODEC.decode(self.keys.position(user_id, exchange, sym, side), raw, trusted=True)
            )
        return out


class OrderRepository:
    CLOSED_CAP = 1000

    def __init__(self, redis: Redis, keys: Keys, channels: Channels, writer: EventWriter) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.writer = writer

    @staticmethod
    def progress(o: Order) -> float:
        """Orders only move forward: status rank, then the filled fraction (ties on timestamps)."""
        return order_progress(o)

    def write_for(
        self,
        o: Order,
        metadata: dict[str, Any] | None = None,
        *,
        event: str | None = AUTO,
        versioned: bool = True,
    ) -> Write:
        """The atomic write of an order and its event. `event`: AUTO (order.created when new, else by status),
        an explicit type, or None (a silent write). `versioned`: False for a provisional record built from a
        command reply: no exchange version is checked or stored, so any exchange report supersedes it."""
        ex = o.exchange.value
        key = self.keys.order(o.user_id, ex, o.order_id)
        open_set = self.keys.open_orders(o.user_id, ex)
        fields = ORDER_CODEC.encode(o)
        if o.status.is_active:
            ops = [IndexOp("sadd", open_set, o.order_id), IndexOp("persist", key)]
        else:
            ops = [
                IndexOp("srem", open_set, o.order_id),
                IndexOp(
                    "lpush_capped_on_status_change",
                    self.keys.closed_orders(o.user_id, ex),
                    o.model_dump_json(exclude=_ORDER_COMPUTED),
                ),
                IndexOp("expire", key, str(FINISHED_ORDER_TTL_S)),
            ]
        etype = order_event_type(o) if event == AUTO else (event or "")
        return Write(
            key=key,
            user_id=o.user_id,
            set_fields=fields,
            del_fields=ORDER_CODEC.absent_fields(fields),
            ops=ops,
            version_ts=_ms(o.updated_at) if versioned else None,
            progress=self.progress(o),
            channel=self.channels.orders(o.user_id, ex),
            event=None if event is None else {**envelope(o.user_id, ex, metadata), **order_fields(o, fields)},
            event_type_new=("order.created" if o.status.is_active else etype) if event == AUTO else etype,
            event_type=etype,
        )

    async def upsert(self, o: Order, metadata: dict[str, Any] | None = None) -> WriteResult:
        return await self.writer.apply(self.write_for(o, metadata))

    async def get(self, user_id: str, exchange: str, order_id: str) -> Order | None:
        key = self.keys.order(user_id, exchange, order_id)
        raw = await self.redis.hgetall(key)
        return ORDER_CODEC.decode(key, raw) if raw else None

    async def known_and_intents(
        self, user_id: str, exchange: str, order_ids: Sequence[str], client_order_ids: Sequence[str]
    ) -> tuple[list[Order], dict[str, Intent]]:
        """Stored records of some orders and the intents of some client order ids, in one round trip (shared
        with the other accounts' reads and writes of the same moment)."""
        if not order_ids and not client_order_ids:
            return [], {}
        keys = [self.keys.order(user_id, exchange, i) for i in order_ids]
        intent_keys = [self.keys.client_order(user_id, exchange, cid) for cid in client_order_ids]
        # through the writer's group commit: many accounts' first sightings share one round trip
        replies = await self.writer.read_hashes(keys + intent_keys)
        orders = [ORDER_CODEC.decode(k, r) for k, r in zip(keys, replies, strict=False) if r]
        intents: dict[str, Intent] = {}
        for cid, raw in zip(client_order_ids, replies[len(keys) :], strict=True):
            intent = IntentRepository.parse({k.decode(): v.decode() for k, v in raw.items()})
            if intent is not None:
                intents[cid] = intent
        return orders, intents

    async def list_open(self, user_id: str, exchange: str, symbol: str | None = None) -> list[Order]:
        ids = sorted(
            m.decode() if isinstance(m, bytes) else m
            for m in await self.redis.smembers(self.keys.open_orders(user_id, exchange))
        )
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        keys = [self.keys.order(user_id, exchange, i) for i in ids]
        for k in keys:
            pipe.hgetall(k)
        raws = await pipe.execute()
        orders = [ORDER_CODEC.decode(k, r, trusted=True) for k, r in zip(keys, raws, strict=True) if r]
        if symbol is not None:
            orders = [o for o in orders if o.symbol == symbol]
        return sorted(orders, key=lambda o: (o.created_at, o.order_id))

    async def list_closed(self, user_id: str, exchange: str, limit: int = 100) -> list[Order]:
        key = self.keys.closed_orders(user_id, exchange)
        raws = await self.redis.lrange(key, 0, max(0, min(limit, self.CLOSED_CAP)) - 1)
        out: list[Order] = []
        for i, raw in enumerate(raws):
            try:
                out.append(Order.model_validate(orjson.loads(raw)))
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise CorruptRecord(key, f"[{i}]", f"is not a valid order: {exc}") from None
        return out

    async def emit_failed(self, user_id: str, exchange: str, fields: dict[str, Any]) -> int:
        """order.failed: a command the exchange refused or never received (it has no state of its own)."""
        return await self.writer.emit(
            user_id, self.channels.orders(user_id, exchange), "order.failed", fields, exchange
        )


__all__ = ["AUTO", "ORDER_CODEC", "POSITION_CODEC", "OrderRepository", "PositionRepository"]
