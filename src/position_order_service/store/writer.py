"""The one path by which state and its event reach Redis: the APPLY and EMIT scripts (store/lua.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .. import metrics
from . import lua
from .keys import Channels, Keys

STREAM_MAXLEN = 10_000


def event_body(fields: dict[str, Any]) -> str:
    """The payload minus its opening brace: the script prepends seq and event_type."""
    if not fields:
        raise ValueError("an event needs at least one field")
    return orjson.dumps(fields, default=str).decode()[1:]


@dataclass(slots=True)
class IndexOp:
    op: str  # sadd | srem | lpush_capped_on_status_change | del | hset_mirror
    key: str
    arg: str = ""


@dataclass(slots=True)
class Write:
    """One atomic upsert: a hash, its index ops and (optionally) its event."""

    key: str
    user_id: str
    set_fields: dict[str, str]
    del_fields: list[str] = field(default_factory=list)
    ops: list[IndexOp] = field(default_factory=list)
    version_ts: int | None = None
    progress: float = 0
    channel: str = ""
    event: dict[str, Any] | None = None
    event_type_new: str = ""
    event_type: str = ""
    new_again_statuses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteResult:
    code: int  # 1 applied, 0 unchanged, -1 stale
    seq: int
    event_type: str

    @property
    def applied(self) -> bool:
        return self.code == 1


class LuaScript:
    """EVALSHA with a reload when the server lost its script cache (a restart, SCRIPT FLUSH).

    The script is loaded before its first use rather than after a NOSCRIPT error: fakeredis' TCP server
    (the embedded fallback) drops a connection after any error reply.
    """

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._loaded = False

    async def __call__(self, keys: list[str], args: list[str | int | float]) -> Any:
        await self.load()
        try:
            return await self.redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.redis.script_load(self.source)
            return await self.redis.evalsha(self.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        if not self._loaded:
            await self.redis.script_load(self.source)
            self._loaded = True


class EventWriter:
    def __init__(
        self, redis: Redis, keys: Keys, channels: Channels, stream_maxlen: int = STREAM_MAXLEN
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.stream_maxlen = stream_maxlen
        self._apply = LuaScript(redis, lua.APPLY)
        self._emit = LuaScript(redis, lua.EMIT)
        self._emit_once = LuaScript(redis, lua.EMIT_ONCE)
        self._transition = LuaScript(redis, lua.TRANSITION)

    def _apply_args(self, w: Write) -> tuple[list[str], list[str | int | float]]:
        keys = [w.key, self.keys.event_seq(w.user_id), self.keys.event_stream(w.user_id)]
        key_index: dict[str, int] = {}
        op_args: list[str | int | float] = []
        for op in w.ops:
            if op.key not in key_index:
                keys.append(op.key)
                key_index[op.key] = len(keys)
            op_args += [op.op, key_index[op.key], op.arg]
        args: list[str | int | float] = [
            "" if w.version_ts is None else w.version_ts,
            w.progress,
            w.channel,
            event_body(w.event) if w.event is not None else "",
            w.event_type_new or w.event_type,
            w.event_type,
            "," + ",".join(w.new_again_statuses) + ",",
            self.stream_maxlen,
            len(w.set_fields),
        ]
        for k, v in w.set_fields.items():
            args += [k, v]
        args.append(len(w.del_fields))
        args += w.del_fields
        args.append(len(w.ops))
        args += op_args
        return keys, args

    async def apply(self, w: Write) -> WriteResult:
        keys, args = self._apply_args(w)
        try:
            code, seq, etype = await self._apply(keys=keys, args=args)
        except Exception:
            metrics.count_redis("apply", ok=False)
            raise
        result = WriteResult(int(code), int(seq), etype.decode() if isinstance(etype, bytes) else str(etype))
        metrics.count_redis("apply", ok=True)
        metrics.count_events([result.event_type])
        return result

    async def apply_many(self, writes: list[Write]) -> list[WriteResult]:
        """Many upserts in one round trip; each stays atomic on its own."""
        if not writes:
            return []
        await self._apply.load()
        pipe = self.redis.pipeline(transaction=False)
        for w in writes:
            keys, args = self._apply_args(w)
            pipe.evalsha(self._apply.sha, len(keys), *keys, *args)
        try:
            out = await pipe.execute()
        except Exception:
            metrics.count_redis("apply", ok=False, n=len(writes))
            raise
        results = [
            WriteResult(int(c), int(s), e.decode() if isinstance(e, bytes) else str(e)) for c, s, e in out
        ]
        metrics.count_redis("apply", ok=True, n=len(writes))
        metrics.count_events(r.event_type for r in results)
        return results

    async def emit(self, user_id: str, channel: str, event_type: str, fields: dict[str, Any]) -> int:
        metrics.count_events([event_type])
        seq = await self._emit(
            keys=[self.keys.event_seq(user_id), self.keys.event_stream(user_id)],
            args=[channel, event_type, event_body(fields), self.stream_maxlen],
        )
        return int(seq)

    async def emit_once(
        self,
        user_id: str,
        channel: str,
        event_type: str,
        fields: dict[str, Any],
        guard_key: str,
        member: str,
        guard_ttl_s: int = 7 * 24 * 3600,
    ) -> int:
        """Emit unless `member` was already emitted under `guard_key`; returns the seq, 0 if a duplicate."""
        seq = await self._emit_once(
            keys=[self.keys.event_seq(user_id), self.keys.event_stream(user_id), guard_key],
            args=[channel, event_type, event_body(fields), self.stream_maxlen, member, guard_ttl_s],
        )
        return int(seq)

    async def transition(
        self,
        key: str,
        user_id: str,
        expected_version: int | None,
        set_fields: dict[str, str],
        del_fields: list[str],
        ops: list[IndexOp],
        channel: str,
        event_type: str,
        event: dict[str, Any] | None,
    ) -> tuple[bool, int]:
        """Compare-and-set on the hash's `version` (None = must not exist). Returns (done, seq or version)."""
        keys = [key, self.keys.event_seq(user_id), self.keys.event_stream(user_id)]
        key_index: dict[str, int] = {}
        op_args: list[str | int | float] = []
        for op in ops:
            if op.key not in key_index:
                keys.append(op.key)
                key_index[op.key] = len(keys)
            op_args += [op.op, key_index[op.key], op.arg]
        args: list[str | int | float] = [
            "" if expected_version is None else str(expected_version),
            channel,
            event_type,
            event_body(event) if event is not None else "",
            self.stream_maxlen,
            len(set_fields),
        ]
        for k, v in set_fields.items():
            args += [k, v]
        args.append(len(del_fields))
        args += del_fields
        args.append(len(ops))
        args += op_args
        done, value = await self._transition(keys=keys, args=args)
        metrics.count_redis("transition", ok=True)
        if int(done) == 1 and event is not None:
            metrics.count_events([event_type])
        return int(done) == 1, int(value)
