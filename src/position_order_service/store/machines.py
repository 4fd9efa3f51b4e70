"""Repositories of the service's own state machines: trailing stops and conditional rules.

Every change is a compare-and-set on the record's `version` (DESIGN invariant 5), written with its event
in one step, so a trigger fires exactly once across restarts and instances.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

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
from .leases import Fence
from .writer import EventWriter, IndexOp, LuaScript, evalsha_in, event_body, refused

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


class GlobalIndex:
    """A set of every live record's key, across users (the engines load it at start), kept OUT of the records'
    transition scripts: those touch one user's keys only, so they stay in one Redis Cluster slot.

    The set is a superset of the live records: a key is added before its transition (and again after it), and
    removed after a final one with a re-check, so a record that became live meanwhile is added back. Readers
    skip what is not live and prune it. A crash between the steps leaves at most an extra member, never a
    missing live one."""

    def __init__(self, redis: Redis, key: str, is_live: Callable[[str], Awaitable[bool]]) -> None:
        self.redis = redis
        self.key = key
        self.is_live = is_live

    async def add(self, member: str) -> None:
        await self.redis.sadd(self.key, member)

    async def discard(self, member: str) -> None:
        await self.redis.srem(self.key, member)
        if await self.is_live(member):  # made live again (a new record under the key) while we removed it
            await self.add(member)

    async def prune(self, members: set[str]) -> None:
        """Drop members found not live (gone, or final): leftovers of a crash or of a refused transition."""
        for member in members:
            await self.discard(member)


class TrailingStopRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels, writer: EventWriter) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.writer = writer
        self._raise = LuaScript(redis, lua.RAISE_EXTREME)
        self._trigger = LuaScript(redis, lua.TRIGGER)
        self._index = GlobalIndex(redis, keys.trailing_stop_index(), self._is_live)

    async def _is_live(self, key: str) -> bool:
        stop = await self.get_by_key(key)
        return stop is not None and not stop.state.is_final

    def key_of(self, stop: TrailingStop) -> str:
        return self.keys.trailing_stop(*stop.key_parts())

    async def save(self, stop: TrailingStop, expected_version: int | None, event_type: str | None) -> bool:
        """Write `stop` (whose version must be expected_version + 1) if the stored version is still
        `expected_version` (None: the record must not exist). Emits `event_type` on trailing_stops:{user}."""
        key = self.key_of(stop)
        fields = STOP_CODEC.encode(stop)
        member = f"{stop.exchange.value}:{stop.symbol}:{stop.side.value}"
        ops = [
            IndexOp("sadd", self.keys.user_trailing_stops(stop.user_id), member),
            IndexOp("expire", key, str(FINISHED_TTL_S)) if stop.state.is_final else IndexOp("persist", key),
        ]
        live = not stop.state.is_final
        if live:
            await self._index.add(key)
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
            stop.exchange.value,
        )
        if done:
            await (self._index.add(key) if live else self._index.discard(key))
        if done and event_type:
            metrics.count_outcome(event_type)  # executed | failed | cancelled
        return done

    async def trigger_many(self, triggers: Sequence[Trigger]) -> list[bool | Exception]:
        """Record triggers: each a compare-and-set to `triggered` plus its close order's intent, atomically (one
        script, store/lua.py TRIGGER); all of them in one pipelined round trip. Per trigger: True where the CAS
        won, False where the stored version was another, StaleWrite where this worker lost the account's lease,
        the error where the script failed (retry it). A lost
        connection raises (nothing known: retry all; a CAS that did win is then seen as lost and resync picks
        the triggered stop up)."""
        if not triggers:
            return []
        commands: list[tuple[Any, ...]] = []
        event_type = "trailing_stop.triggered"
        fences: list[Fence | None] = []
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
            keys = [
                key,
                self.keys.event_seq(stop.user_id),
                self.keys.event_stream(stop.user_id),
                t.intent_key,
                self.keys.user_trailing_stops(stop.user_id),
            ]
            args: list[str | int | float] = [
                str(t.expected_version),
                self.channels.trailing_stops(stop.user_id),
                event_type,
                event_body(event),
                self.writer.keep_arg(),
                INTENT_TTL_S,
                intent,
                changed,
                member,
            ]
            fence = self.writer.fences.of(stop.user_id, stop.exchange.value)
            if fence is not None:
                fence.extend(keys, args)
            fences.append(fence)
            commands.append(("EVALSHA", self._trigger.sha, len(keys), *keys, *args))
        await self._trigger.load()
        results = await self.writer.pipelined(commands)
        out: list[bool | Exception] = []
        for fence, r in zip(fences, results, strict=True):
            if fence is not None and refused(r):  # the account's lease is gone: StaleWrite (counted)
                out.append(self.writer.fences.refused(fence))
            elif isinstance(r, Exception):
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
        try:
            return await self._raise_extremes(moves)
        except (
            NoScriptError
        ):  # the server lost its scripts (a restart): load it again (raising is idempotent)
            self._raise.forget()
            return await self._raise_extremes(moves)

    async def _raise_extremes(self, moves: Sequence[TrailingStop]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        fences = []
        for stop in moves:
            assert stop.extreme_price is not None
            body = event_body({**envelope(stop.user_id, stop.exchange.value), **stop_fields(stop)})
            keys = [
                self.key_of(stop),
                self.keys.event_seq(stop.user_id),
                self.keys.event_stream(stop.user_id),
            ]
            args: list[Any] = [
                stop.side.value,
                enc_decimal(stop.extreme_price),
                stop.updated_at.isoformat(),
                self.channels.trailing_stops(stop.user_id),
                body,
                self.writer.keep_arg(),
            ]
            fence = self.writer.fences.of(stop.user_id, stop.exchange.value)
            if fence is not None:
                fence.extend(keys, args)
            fences.append(fence)
            evalsha_in(pipe, self._raise.sha, keys, args)
        await self._raise.load()
        moved = 0
        for fence, r in zip(fences, await pipe.execute(), strict=True):
            if fence is not None and refused(r):
                self.writer.fences.refused(fence)  # counted; the lease manager stops the account
            elif r:
                moved += 1
        return moved

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
        stops = await self._many(keys)
        await self._index.prune(set(keys) - {self.key_of(s) for s in stops if not s.state.is_final})
        return [s for s in stops if not s.state.is_final]


class RuleRepository:
    def __init__(self, redis: Redis, keys: Keys, channels: Channels, writer: EventWriter) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.writer = writer
        self._index = GlobalIndex(redis, keys.live_rule_index(), self._is_live)

    async def _is_live(self, key: str) -> bool:
        rules = await self._many([key])
        return bool(rules) and not rules[0].state.is_final

    async def save(self, rule: ConditionalRule, expected_version: int | None, event_type: str | None) -> bool:
        key = self.keys.conditional_rule(rule.user_id, rule.id)
        fields = RULE_CODEC.encode(rule)
        user_index = self.keys.conditional_rule_index(rule.user_id)
        live = not rule.state.is_final
        ops = [
            IndexOp("persist", key) if live else IndexOp("expire", key, str(FINISHED_TTL_S)),
            IndexOp("sadd", user_index, rule.id),
        ]
        if live:
            await self._index.add(key)
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
            rule.exchange.value,
        )
        if done:
            await (self._index.add(key) if live else self._index.discard(key))
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
        rules = await self._many(keys)
        live = {self.keys.conditional_rule(r.user_id, r.id) for r in rules if not r.state.is_final}
        await self._index.prune(set(keys) - live)
        return [r for r in rules if not r.state.is_final]
