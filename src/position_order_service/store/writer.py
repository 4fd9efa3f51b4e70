"""The one path by which state and its event reach Redis: the APPLY and EMIT scripts (store/lua.py)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from .. import metrics
from . import lua
from .keys import Channels, Keys
from .retention import DEFAULT_COUNT, StreamRetention

STREAM_MAXLEN = DEFAULT_COUNT
SCRIPT_ATTEMPTS = 3


def event_body(fields: dict[str, Any]) -> str:
    """The payload minus its opening brace: the script prepends seq and event_type."""
    if not fields:
        raise ValueError("an event needs at least one field")
    return orjson.dumps(fields, default=str).decode()[1:]


def content_digest(fields: dict[str, str]) -> str:
    """What a record says, minus when it was said: equal digests mean an update changes nothing."""
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(fields):
        if k != "updated_at":
            h.update(k.encode())
            h.update(b"\x00")
            h.update(fields[k].encode())
            h.update(b"\x01")
    return h.hexdigest()


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

    def forget(self) -> None:
        self._loaded = False

    async def load(self) -> None:
        if not self._loaded:
            await self.redis.script_load(self.source)
            self._loaded = True


class EventWriter:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        channels: Channels,
        stream_maxlen: int = STREAM_MAXLEN,
        retention: StreamRetention | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = channels
        self.stream_maxlen = stream_maxlen
        # EVENT_STREAM_RETENTION; without one, the count `stream_maxlen`
        self.retention = retention or StreamRetention(max_len=stream_maxlen)
        self._apply = LuaScript(redis, lua.APPLY)
        self._pending: list[tuple[list[Write], asyncio.Future[list[WriteResult]]]] = []
        self._flush_scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
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
            self.keep_arg(),
            content_digest(w.set_fields),
            len(w.set_fields),
        ]
        for k, v in w.set_fields.items():
            args += [k, v]
        args.append(len(w.del_fields))
        args += w.del_fields
        args.append(len(w.ops))
        args += op_args
        return keys, args

    def keep_arg(self) -> str:
        """What every XADD keeps of the stream (the scripts' `xadd_kept` argument)."""
        return self.retention.script_arg()

    async def apply(self, w: Write) -> WriteResult:
        return (await self.apply_many([w]))[0]

    async def apply_many(self, writes: list[Write]) -> list[WriteResult]:
        """Upserts, each atomic on its own. Group commit: every call made in the same event-loop turn (many
        trackers handling their users' messages together) goes to Redis in one pipelined round trip."""
        if not writes:
            return []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[WriteResult]] = loop.create_future()
        self._pending.append((writes, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._start_flush)
        return await done

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _execute_batch(self, batch: list[tuple[list[Write], Any]]) -> list[Any]:
        """One pipeline for the batch; again (tenacity, up to SCRIPT_ATTEMPTS) after reloading the script if
        Redis had lost it (a restart, SCRIPT FLUSH; fakeredis even drops the connection). Re-running is safe:
        a write already applied is unchanged the second time and emits nothing."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(SCRIPT_ATTEMPTS),
            retry=retry_if_exception_type((NoScriptError, RedisConnectionError)),
            reraise=True,
        ):
            with attempt:
                try:
                    await self._apply.load()
                    pipe = self.redis.pipeline(transaction=False)
                    for writes, _ in batch:
                        for w in writes:
                            keys, args = self._apply_args(w)
                            pipe.evalsha(self._apply.sha, len(keys), *keys, *args)
                    out: list[Any] = await pipe.execute(raise_on_error=False)
                except (NoScriptError, RedisConnectionError):
                    self._apply.forget()  # the reload itself may meet a connection the server just closed
                    raise
                last = attempt.retry_state.attempt_number >= SCRIPT_ATTEMPTS
                if not last and any(isinstance(r, NoScriptError) for r in out):
                    self._apply.forget()
                    raise NoScriptError("the APPLY script was lost: reloading it")
                return out
        raise AssertionError("unreachable")

    async def _flush(self, batch: list[tuple[list[Write], asyncio.Future[list[WriteResult]]]]) -> None:
        n = sum(len(writes) for writes, _ in batch)
        try:
            out = await self._execute_batch(batch)
        except BaseException as exc:
            metrics.count_redis("apply", ok=False, n=n)
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        i = 0
        for writes, done in batch:
            replies = out[i : i + len(writes)]
            i += len(writes)
            error = next((r for r in replies if isinstance(r, Exception)), None)
            if error is not None:
                metrics.count_redis("apply", ok=False, n=len(writes))
                if not done.done():
                    done.set_exception(error)
                continue
            results = [
                WriteResult(int(c), int(s), e.decode() if isinstance(e, bytes) else str(e))
                for c, s, e in replies
            ]
            metrics.count_redis("apply", ok=True, n=len(writes))
            metrics.count_events(r.event_type for r in results)
            if not done.done():
                done.set_result(results)

    async def emit(self, user_id: str, channel: str, event_type: str, fields: dict[str, Any]) -> int:
        metrics.count_events([event_type])
        seq = await self._emit(
            keys=[self.keys.event_seq(user_id), self.keys.event_stream(user_id)],
            args=[channel, event_type, event_body(fields), self.keep_arg()],
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
            args=[channel, event_type, event_body(fields), self.keep_arg(), member, guard_ttl_s],
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
            self.keep_arg(),
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
