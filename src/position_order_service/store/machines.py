"""Repositories of the service's own state machines: trailing stops and conditional rules.

Every change is a compare-and-set on the record's `version` (DESIGN invariant 5), written with its event
in one step, so a trigger fires exactly once across restarts and instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .. import metrics
from ..domain.events import envelope
from ..domain.rules import ConditionalRule
from ..domain.rules import event_fields as rule_fields
from ..domain.trailing import TrailingStop
from ..domain.trailing import event_fields as stop_fields
from . import lua
from .codec import HashCodec, enc_decimal
from .intents import INTENT_TTL_S
from .keys import Channels, Keys
from .writer import EventWriter, IndexOp, LuaScript, event_body

STOP_CODEC: HashCodec[TrailingStop] = HashCodec(TrailingStop)
RULE_CODEC: HashCodec[ConditionalRule] = HashCodec(ConditionalRule)
FINISHED_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Trigger:
    """One trigger to record: `stop` (already `triggered`, version expected + 1) and its close order's intent."""

    stop: TrailingStop
    expected_version: int
    intent_key: str
    intent: dict[str, str]


SEP = "\x1f"
TRIGGER_FIELDS = (
    "state",
    "extreme_price",
    "trigger_price",
    "close_client_order_id",
    "owner",
    "lease_until_ms",
    "version",
    "updated_at",
)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class TrailingStopRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels, writer: EventWriter) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.writer = writer
        self._raise = LuaScript(redis, lua.RAISE_EXTREME)
        self._trigger = LuaScript(redis, lua.TRIGGER)

    def key_of(self, stop: TrailingStop) -> str:
        return self.keys.trailing_stop(*stop.key_parts())

    async def save(self, stop: TrailingStop, expected_version: int | None, event_type: str | None) -> bool:
        """Write `stop` (whose version must be expected_version + 1) if the stored version is still
        `expected_version` (None: the record must not exist). Emits `event_type` on trailing_stops:{user}."""
        key = self.key_of(stop)
        fields = STOP_CODEC.encode(stop)
        member = f"{stop.exchange.value}:{stop.symbol}:{stop.side.value}"
        if stop.state.is_final:
            ops = [
                IndexOp("srem", self.keys.trailing_stop_index(), key),
                IndexOp("sadd", self.keys.user_trailing_stops(stop.user_id), member),
                IndexOp("expire", key, str(FINISHED_TTL_S)),
            ]
        else:
            ops = [
                IndexOp("sadd", self.keys.trailing_stop_index(), key),
                IndexOp("sadd", self.keys.user_trailing_stops(stop.user_id), member),
                IndexOp("persist", key),
            ]
        event = None
        if event_type:
            event = {**envelope(stop.user_id, stop.exchange.value), **stop_fields(stop)}
        done, _ = await self.writer.transition(
            key,
            stop.user_id,
            expected_version,
            fields,
            STOP_CODEC.absent_fields(fields),
            ops,
            self.channels.trailing_stops(stop.user_id),
            event_type or "",
            event,
        )
        if done and event_type:
            metrics.count_outcome(event_type)  # executed | failed | cancelled
        return done

    async def trigger_many(self, triggers: Sequence[Trigger]) -> list[bool | Exception]:
        """Record triggers: each a compare-and-set to `triggered` plus its close order's intent, atomically (one
        script, store/lua.py TRIGGER); all of them in one pipelined round trip. Per trigger: True where the CAS
        won, False where the stored version was another, the error where the script failed (retry it). A lost
        connection raises (nothing known: retry all; a CAS that did win is then seen as lost and resync picks
        the triggered stop up)."""
        if not triggers:
            return []
        pipe = self.redis.pipeline(transaction=False)
        event_type = "trailing_stop.triggered"
        for t in triggers:
            stop = t.stop
            key = self.key_of(stop)
            # what a trigger changes (and the extreme the engine fired at); the rest is what the CAS's expected
            # version stored
            fields = STOP_CODEC.encode_some(stop, TRIGGER_FIELDS)
            member = f"{stop.exchange.value}:{stop.symbol}:{stop.side.value}"
            event = {**envelope(stop.user_id, stop.exchange.value), **stop_fields(stop)}
            intent = SEP.join(x for kv in t.intent.items() for x in kv)
            changed = SEP.join(x for kv in fields.items() for x in kv)
            if any(SEP in x for kv in (*t.intent.items(), *fields.items()) for x in kv):
                raise ValueError("a trigger's field holds the separator \\x1f")
            pipe.evalsha(
                self._trigger.sha,
                6,
                key,
                self.keys.event_seq(stop.user_id),
                self.keys.event_stream(stop.user_id),
                t.intent_key,
                self.keys.trailing_stop_index(),
                self.keys.user_trailing_stops(stop.user_id),
                str(t.expected_version),
                self.channels.trailing_stops(stop.user_id),
                event_type,
                event_body(event),
                self.writer.keep_arg(),
                INTENT_TTL_S,
                intent,
                changed,
                key,
                member,
            )
        await self._trigger.load()
        results = await pipe.execute(raise_on_error=False)
        out: list[bool | Exception] = []
        for r in results:
            if isinstance(r, Exception):
                if isinstance(
                    r, ResponseError
                ):  # e.g. NOSCRIPT after a Redis restart: loaded again next time
                    self._trigger.forget()
                out.append(r)
            else:
                out.append(int(r[0]) == 1)
        metrics.count_redis("transition", ok=True, n=sum(1 for r in out if r is True or r is False))
        metrics.count_events([event_type] * sum(1 for r in out if r is True))
        return out

    async def raise_extremes(self, moves: Sequence[TrailingStop]) -> int:
        """Persist newer extremes of active stops (already set on the given copies), pipelined."""
        if not moves:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for stop in moves:
            assert stop.extreme_price is not None
            body = event_body({**envelope(stop.user_id, stop.exchange.value), **stop_fields(stop)})
            pipe.evalsha(
                self._raise.sha,
                3,
                self.key_of(stop),
                self.keys.event_seq(stop.user_id),
                self.keys.event_stream(stop.user_id),
                stop.side.value,
                enc_decimal(stop.extreme_price),
                stop.updated_at.isoformat(),
                self.channels.trailing_stops(stop.user_id),
                body,
                self.writer.keep_arg(),
            )
        await self._raise.load()
        return sum(1 for r in await pipe.execute() if r)

    async def get(self, user_id: str, exchange: str, symbol: str, side: str) -> TrailingStop | None:
        key = self.keys.trailing_stop(user_id, exchange, symbol, side)
        raw = await self.redis.hgetall(key)
        return STOP_CODEC.decode(key, raw) if raw else None

    async def get_by_key(self, key: str) -> TrailingStop | None:
        raw = await self.redis.hgetall(key)
        return STOP_CODEC.decode(key, raw) if raw else None

    async def _many(self, keys: Sequence[str]) -> list[TrailingStop]:
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        return [STOP_CODEC.decode(k, r) for k, r in zip(keys, await pipe.execute(), strict=True) if r]

    async def list_user(self, user_id: str) -> list[TrailingStop]:
        members = sorted(_s(m) for m in await self.redis.smembers(self.keys.user_trailing_stops(user_id)))
        keys = []
        for m in members:
            exchange, _, rest = m.partition(":")
            symbol, _, side = rest.rpartition(":")
            keys.append(self.keys.trailing_stop(user_id, exchange, symbol, side))
        return await self._many(keys)

    async def list_live(self) -> list[TrailingStop]:
        keys = sorted(_s(m) for m in await self.redis.smembers(self.keys.trailing_stop_index()))
        return [s for s in await self._many(keys) if not s.state.is_final]


class RuleRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels, writer: EventWriter) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.writer = writer

    async def save(self, rule: ConditionalRule, expected_version: int | None, event_type: str | None) -> bool:
        key = self.keys.conditional_rule(rule.user_id, rule.id)
        fields = RULE_CODEC.encode(rule)
        user_index = self.keys.conditional_rule_index(rule.user_id)
        if rule.state.is_final:
            ops = [
                IndexOp("srem", self.keys.live_rule_index(), key),
                IndexOp("expire", key, str(FINISHED_TTL_S)),
            ]
        else:
            ops = [IndexOp("sadd", self.keys.live_rule_index(), key), IndexOp("persist", key)]
        ops.append(IndexOp("sadd", user_index, rule.id))
        event = None
        if event_type:
            event = {**envelope(rule.user_id, rule.exchange.value), **rule_fields(rule)}
        done, _ = await self.writer.transition(
            key,
            rule.user_id,
            expected_version,
            fields,
            RULE_CODEC.absent_fields(fields),
            ops,
            self.channels.conditional_rules(rule.user_id),
            event_type or "",
            event,
        )
        if done and event_type:
            metrics.count_outcome(event_type)  # executed | failed
        return done

    async def get(self, user_id: str, rule_id: str) -> ConditionalRule | None:
        key = self.keys.conditional_rule(user_id, rule_id)
        raw = await self.redis.hgetall(key)
        return RULE_CODEC.decode(key, raw) if raw else None

    async def _many(self, keys: Sequence[str]) -> list[ConditionalRule]:
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        return [RULE_CODEC.decode(k, r) for k, r in zip(keys, await pipe.execute(), strict=True) if r]

    async def list_user(self, user_id: str) -> list[ConditionalRule]:
        ids = sorted(_s(m) for m in await self.redis.smembers(self.keys.conditional_rule_index(user_id)))
        rules = await self._many([self.keys.conditional_rule(user_id, i) for i in ids])
        return sorted(rules, key=lambda r: r.created_at)

    async def list_live(self) -> list[ConditionalRule]:
        keys = sorted(_s(m) for m in await self.redis.smembers(self.keys.live_rule_index()))
        return [r for r in await self._many(keys) if not r.state.is_final]
