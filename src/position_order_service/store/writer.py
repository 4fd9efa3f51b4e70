"""The one path by which state and its event reach Redis: the APPLY and EMIT scripts (store/lua.py)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from .. import metrics
from ..aio import spawn
from . import lua
from .keys import Channels, Keys
from .leases import Fence, FenceTable
from .retention import DEFAULT_COUNT, StreamRetention

STREAM_MAXLEN = DEFAULT_COUNT
SCRIPT_ATTEMPTS = 3


def event_body(fields: dict[str, Any]) -> str:
    """The payload minus its opening brace: the script prepends seq and event_type."""
    if not fields:
        raise ValueError("an event needs at least one field")
    return orjson.dumps(fields, default=str).decode()[1:]


def content_digest(fields: dict[str, str], exclude: tuple[str, ...] = ("updated_at",)) -> str:
    """What a record says, minus when it was said (and minus what marks write, for positions): equal digests
    mean an update changes nothing. Values are canonical spellings (codec), so it compares numbers by value."""
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(fields):
        if k not in exclude:
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
    digest_exclude: tuple[str, ...] = ("updated_at",)
    fence: Fence | None = None  # the writing worker's lease of the account (None: unfenced)


@dataclass(slots=True)
class Call:
    """One script call of a group commit."""

    script: LuaScript
    keys: list[str]
    args: list[str | int | float]
    fence: Fence | None = None  # set by `fenced`: a refusal fails the caller with StaleWrite

    def fenced(self, fence: Fence | None) -> Call:
        """This call, carrying `fence` (lua.FENCE: the lease key as last KEY, the token as last ARGV)."""
        if fence is not None and self.fence is None:
            fence.extend(self.keys, self.args)
            self.fence = fence
        return self


def refused(reply: Any) -> bool:
    """A script's answer "refused by the fence" (-2, or a list starting with -2)."""
    if isinstance(reply, list):
        return bool(reply) and isinstance(reply[0], int) and reply[0] == -2
    return isinstance(reply, int) and reply == -2


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
        self._pending: list[tuple[list[Call], asyncio.Future[list[Any]]]] = []
        self._flush_scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._emit = LuaScript(redis, lua.EMIT)
        self._emit_once = LuaScript(redis, lua.EMIT_ONCE)
        self._mark = LuaScript(redis, lua.MARK)
        self._transition = LuaScript(redis, lua.TRANSITION)
        self.fences = FenceTable()  # the accounts this process holds by lease (empty: unfenced)

    def _apply_call(self, w: Write) -> Call:
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
            content_digest(w.set_fields, w.digest_exclude),
            len(w.set_fields),
        ]
        for k, v in w.set_fields.items():
            args += [k, v]
        args.append(len(w.del_fields))
        args += w.del_fields
        args.append(len(w.ops))
        args += op_args
        return Call(self._apply, keys, args).fenced(w.fence)

    def keep_arg(self) -> str:
        """What every XADD keeps of the stream (the scripts' `xadd_kept` argument)."""
        return self.retention.script_arg()

    async def apply(self, w: Write) -> WriteResult:
        return (await self.apply_many([w]))[0]

    async def apply_many(self, writes: list[Write]) -> list[WriteResult]:
        """Upserts, each atomic on its own. Group commit: every call made in the same event-loop turn (many
        accounts handling their messages together) goes to Redis in one pipelined round trip."""
        if not writes:
            return []
        replies = await self.submit([self._apply_call(w) for w in writes])
        results = [
            WriteResult(int(c), int(s), e.decode() if isinstance(e, bytes) else str(e)) for c, s, e in replies
        ]
        metrics.count_events(r.event_type for r in results)
        return results

    def mark_call(
        self,
        key: str,
        user_id: str,
        fields: tuple[str, str, str],
        channel: str,
        event: dict[str, Any],
        fence: Fence | None = None,
    ) -> Call:
        """A MARK script call (store/lua.py): fields = (current_price, unrealized_pnl, size it was valued at)."""
        keys = [key, self.keys.event_seq(user_id), self.keys.event_stream(user_id)]
        return Call(self._mark, keys, [*fields, channel, event_body(event), self.keep_arg()]).fenced(fence)

    async def submit(self, calls: list[Call]) -> list[Any]:
        """Group commit of script calls: each atomic on its own; all calls of one loop turn in one round trip.
        Raises the first error of `calls` (a connection error: none of them is known to have run)."""
        if not calls:
            return []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((calls, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._start_flush)
        return await done

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        task = spawn(self._flush(batch), name="store-group-commit")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _execute_batch(self, batch: list[tuple[list[Call], Any]]) -> list[Any]:
        """One pipeline for the batch; again (tenacity, up to SCRIPT_ATTEMPTS) after reloading a script Redis
        had lost (a restart, SCRIPT FLUSH; fakeredis even drops the connection). Re-running is safe: a write
        already applied is unchanged the second time and emits nothing."""
        scripts = {id(c.script): c.script for calls, _ in batch for c in calls}

        def forget() -> None:
            for script in scripts.values():
                script.forget()

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(SCRIPT_ATTEMPTS),
            retry=retry_if_exception_type((NoScriptError, RedisConnectionError)),
            reraise=True,
        ):
            with attempt:
                try:
                    for script in scripts.values():
                        await script.load()
                    pipe = self.redis.pipeline(transaction=False)
                    for calls, _ in batch:
                        for c in calls:
                            pipe.evalsha(c.script.sha, len(c.keys), *c.keys, *c.args)
                    out: list[Any] = await pipe.execute(raise_on_error=False)
                except (NoScriptError, RedisConnectionError):
                    forget()  # the reload itself may meet a connection the server just closed
                    raise
                last = attempt.retry_state.attempt_number >= SCRIPT_ATTEMPTS
                if not last and any(isinstance(r, NoScriptError) for r in out):
                    forget()
                    raise NoScriptError("a script was lost: reloading it")
                return out
        raise AssertionError("unreachable")

    async def _flush(self, batch: list[tuple[list[Call], asyncio.Future[list[Any]]]]) -> None:
        n = sum(len(calls) for calls, _ in batch)
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
        for calls, done in batch:
            replies = out[i : i + len(calls)]
            i += len(calls)
            error: Exception | None = next((r for r in replies if isinstance(r, Exception)), None)
            stale = next(
                (c.fence for c, r in zip(calls, replies, strict=True) if c.fence and refused(r)), None
            )
            if error is None and stale is not None:
                error = self.fences.refused(stale)
            if error is not None:
                metrics.count_redis("apply", ok=False, n=len(calls))
                if not done.done():
                    done.set_exception(error)
                continue
            metrics.count_redis("apply", ok=True, n=len(calls))
            if not done.done():
                done.set_result(replies)

    async def emit(
        self, user_id: str, channel: str, event_type: str, fields: dict[str, Any], exchange: str = ""
    ) -> int:
        metrics.count_events([event_type])
        call = Call(
            self._emit,
            [self.keys.event_seq(user_id), self.keys.event_stream(user_id)],
            [channel, event_type, event_body(fields), self.keep_arg()],
        ).fenced(self.fences.of(user_id, exchange))
        seq = await self._emit(keys=call.keys, args=call.args)
        if call.fence is not None and refused(seq):
            raise self.fences.refused(call.fence)
        return int(seq)

    def emit_once_call(
        self,
        user_id: str,
        channel: str,
        event_type: str,
        fields: dict[str, Any],
        guard_key: str,
        member: str,
        guard_ttl_s: int = 7 * 24 * 3600,
        fence: Fence | None = None,
    ) -> Call:
        """An EMIT_ONCE call: emits unless `member` was emitted under `guard_key` within the ttl."""
        keys = [self.keys.event_seq(user_id), self.keys.event_stream(user_id), guard_key]
        now_ms = int(time.time() * 1000)  # ages the guard's members (memory), never a version of state
        args: list[str | int | float] = [
            channel,
            event_type,
            event_body(fields),
            self.keep_arg(),
            member,
            guard_ttl_s,
            now_ms,
        ]
        return Call(self._emit_once, keys, args).fenced(fence)

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
        call = self.emit_once_call(user_id, channel, event_type, fields, guard_key, member, guard_ttl_s)
        (seq,) = await self.submit([call])
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
        exchange: str = "",
    ) -> tuple[bool, int]:
        """Compare-and-set on the hash's `version` (None = must not exist). Returns (done, seq or version).
        Fenced by this process' lease of (user_id, exchange) when it holds (or held) one: StaleWrite."""
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
        fence = self.fences.of(user_id, exchange)
        if fence is not None:
            fence.extend(keys, args)
        done, value = await self._transition(keys=keys, args=args)
        if fence is not None and int(done) == -2:
            raise self.fences.refused(fence)
        metrics.count_redis("transition", ok=True)
        if int(done) == 1 and event is not None:
            metrics.count_events([event_type])
        return int(done) == 1, int(value)
