"""The one path by which state and its event reach Redis: the APPLY and EMIT scripts (store/lua.py)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cachetools import LRUCache
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from .. import metrics
from ..aio import spawn
from . import lua
from .connection import is_cluster_client
from .keys import Channels, Keys
from .leases import Fence, FenceTable
from .pipeline import RawPipeline
from .retention import DEFAULT_COUNT, StreamRetention

log = logging.getLogger(__name__)

STREAM_MAXLEN = DEFAULT_COUNT
SCRIPT_ATTEMPTS = 3
# Group commit: one pipeline in flight; what is submitted meanwhile waits and goes in the next one, so batches
# grow with the load (many accounts' turns share one round trip) and stay single when idle. One measured best
# (bench_tracking_throughput: fewer, fuller round trips; an idle writer still sends at once).
# Delta writes: the fields this process last wrote per record (LRU). A write then sends only what changed,
# guarded by the digest the stored record must hold (APPLY answers -2 otherwise, and the write is sent whole).
WRITTEN_CACHE_SIZE = 8192


def event_body(fields: dict[str, Any]) -> str:
    """The payload minus its opening brace: the script prepends seq and event_type."""
    if not fields:
        raise ValueError("an event needs at least one field")
    return orjson.dumps(fields, default=str).decode()[1:]


@functools.lru_cache(maxsize=1024)
def _digest_order(shape: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[str, ...]:
    # a record's writes share a few shapes: sorting them again on every write cost more than hashing them
    return tuple(k for k in sorted(shape) if k not in exclude)


def content_digest(fields: dict[str, str], exclude: tuple[str, ...] = ("updated_at",)) -> str:
    """What a record says, minus when it was said (and minus what marks write, for positions): equal digests
    mean an update changes nothing. Values are canonical spellings (codec), so it compares numbers by value."""
    text = "".join([f"{k}\x00{fields[k]}\x01" for k in _digest_order(tuple(fields), exclude)])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()  # one C call: same bytes, same digest


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

    def digest(self) -> str:
        return content_digest(self.set_fields, self.digest_exclude)


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
    """A script's answer "refused by the fence" (-3, or a list starting with -3)."""
    if isinstance(reply, list):
        return bool(reply) and isinstance(reply[0], int) and reply[0] == -3
    return isinstance(reply, int) and reply == -3


@dataclass(frozen=True, slots=True)
class Read:
    """One HGETALL of a group commit: an account's reads share the round trip of other accounts' writes."""

    key: str


Item = Call | Read


@dataclass(frozen=True, slots=True)
class WriteResult:
    code: int  # 1 applied, 0 unchanged, -1 stale (-2, a delta over other content, is resent whole)
    seq: int
    event_type: str

    @property
    def applied(self) -> bool:
        return self.code == 1


# The index op that lists a finished record (at most one per write; see lua.APPLY ARGV 12-13).
LIST_OP = "lpush_capped_on_status_change"
# Index ops that change nothing when the record's previous write (of the same content's kind) made them too:
# a member already in the set, a key already without a time to live. EXPIRE is not one (it restarts the clock).
IDEMPOTENT_OPS = frozenset({"sadd", "srem", "persist"})


@dataclass(frozen=True, slots=True)
class Written:
    """A record as this process last wrote it: its digest, fields, and the idempotent index ops that write
    made (ops follow from the content, and only the record's own writes touch its index members)."""

    digest: str
    fields: dict[str, str]
    ops: frozenset[tuple[str, str, str]]
    entry: str = ""  # the record's entry in its list of finished records, as this write listed it

    @classmethod
    def of(cls, w: Write, digest: str) -> Written:
        ops = frozenset((o.op, o.key, o.arg) for o in w.ops if o.op in IDEMPOTENT_OPS)
        if w.version_ts is None:  # never listed (lua.APPLY)
            return cls(digest, w.set_fields, ops)
        return cls(digest, w.set_fields, ops, next((o.arg for o in w.ops if o.op == LIST_OP), ""))


def _result(reply: Any, w: Write) -> WriteResult:
    """An APPLY reply (one integer: see lua.APPLY) as code, seq and the event type the script chose."""
    r = int(reply)
    if r < 2:
        return WriteResult(r, 0, "")
    seq, again = divmod(r - 2, 2)
    return WriteResult(1, seq, (w.event_type_new or w.event_type) if again else w.event_type)


def evalsha_in(pipe: Any, sha: str, keys: list[str], args: list[str | int | float]) -> None:
    """Queue an EVALSHA on a pipeline. Spelled as a raw command: redis-py's cluster pipeline refuses its
    `evalsha` method, yet routes the raw command to the slot of its keys (all of one user: store/keys.py)."""
    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)


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
        self._pending: list[tuple[list[Item], asyncio.Future[list[Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._emit = LuaScript(redis, lua.EMIT)
        self._emit_once = LuaScript(redis, lua.EMIT_ONCE)
        self._mark = LuaScript(redis, lua.MARK)
        self._transition = LuaScript(redis, lua.TRANSITION)
        # record key -> the record as last written by this process (see WRITTEN_CACHE_SIZE)
        self._written: LRUCache[str, Written] = LRUCache(maxsize=WRITTEN_CACHE_SIZE)
        self.fences = FenceTable()  # the accounts this process holds by lease (empty: unfenced)
        self._raw = None if is_cluster_client(redis) else RawPipeline(redis)

    def _apply_call(self, w: Write, digest: str | None = None, base: Written | None = None) -> Call:
        """The APPLY call of a write: every field, or (`base`: the record as this process wrote it) only the
        fields that differ, the fields gone, the fields outside the digest (a mark's, updated_at) and the
        index ops the base's write did not make already, guarded by the base digest."""
        digest = digest or w.digest()
        set_fields: dict[str, str] = w.set_fields
        del_fields: list[str] = w.del_fields
        ops = w.ops
        base_digest = ""
        listed = ""
        if base is not None:
            listed = base.entry
            base_fields = base.fields
            new_fields = w.set_fields
            excluded = w.digest_exclude
            get = base_fields.get
            set_fields = {k: v for k, v in new_fields.items() if get(k) != v}
            del_fields = [k for k in base_fields if k not in new_fields]
            for k in excluded:  # sent even when unchanged (a mark may have written them since)
                if k in new_fields:
                    set_fields[k] = new_fields[k]
                elif k not in base_fields:
                    del_fields.append(k)
            base_digest = base.digest
            if base.ops:
                ops = [o for o in w.ops if (o.op, o.key, o.arg) not in base.ops]
        keys = [w.key, self.keys.event_seq(w.user_id), self.keys.event_stream(w.user_id)]
        key_index: dict[str, int] = {w.key: 1}  # expire and persist act on the state hash: KEYS[1]
        op_args: list[str | int | float] = []
        n_ops = 0
        list_at = 0
        entry = ""
        for op in ops:
            if op.key not in key_index:
                keys.append(op.key)
                key_index[op.key] = len(keys)
            if op.op == LIST_OP:  # its own arguments: the script decides with the status, before its HSET
                list_at, entry = key_index[op.key], op.arg
                continue
            op_args += [op.op, key_index[op.key], op.arg]
            n_ops += 1
        args: list[str | int | float] = [
            "" if w.version_ts is None else w.version_ts,
            w.progress,
            w.channel,
            event_body(w.event) if w.event is not None else "",
            w.event_type_new or w.event_type,
            w.event_type,
            "," + ",".join(w.new_again_statuses) + "," if w.new_again_statuses else "",
            self.keep_arg(),
            digest,
            base_digest,
            w.set_fields.get("status", ""),
            list_at,
            entry,
            listed,
            len(set_fields),
        ]
        for k, v in set_fields.items():
            args += [k, v]
        args.append("\x1f".join(del_fields))
        args.append(n_ops)
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
        digests = [w.digest() for w in writes]
        written = [Written.of(w, d) for w, d in zip(writes, digests, strict=True)]
        calls = []
        ahead: dict[str, Written] = {}  # an earlier write of the same record in this batch
        for w, d, done in zip(writes, digests, written, strict=True):
            calls.append(self._apply_call(w, d, ahead.get(w.key) or self._written.get(w.key)))
            ahead[w.key] = done
        try:
            replies = await self.submit(calls)
        except BaseException:
            for w in writes:
                self._written.pop(w.key, None)
            raise
        results = [_result(r, w) for r, w in zip(replies, writes, strict=True)]
        whole = [i for i, r in enumerate(results) if r.code == -2]
        if whole:  # the stored record is not what this process last wrote: send those writes whole
            again = await self.submit([self._apply_call(writes[i], digests[i]) for i in whole])
            for i, r in zip(whole, again, strict=True):
                results[i] = _result(r, writes[i])
        for w, done, r in zip(writes, written, results, strict=True):
            if r.code >= 0:  # applied, or already this content: the record holds these fields
                self._written[w.key] = done
            else:
                self._written.pop(w.key, None)
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
        """Group commit of script calls: each atomic on its own; the calls submitted while the previous
        pipelines are in flight share the next round trip. Raises the first error of `calls` (a connection
        error: none of them is known to have run)."""
        return await self._enqueue(calls)

    async def read_hashes(self, keys: list[str]) -> list[dict[bytes, bytes]]:
        """HGETALL of each key, in the same group commit as the writes (an empty dict: no such hash)."""
        return await self._enqueue([Read(k) for k in keys])

    async def _enqueue(self, items: list[Any]) -> list[Any]:
        if not items:
            return []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((items, done))
        flusher = self._flusher
        # a flusher that is done (cancelled before its first step) or of a stopped loop (tests) sends nothing
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            task = spawn(self._flush_all(), name="store-group-commit")
            self._flusher = task
            self._flushes.add(task)
            task.add_done_callback(self._flush_ended)
        return await done

    async def _flush_all(self) -> None:
        """The group commit: one pipeline in flight; what is submitted meanwhile goes in the next. One task
        sends batches while there are any (a task per batch cost a task and two loop turns per round trip).
        Its first step comes a loop turn after the submission that started it: that turn's calls join.
        If it ends early (cancelled, or a failure while answering), every caller it has not answered gets
        the reason, never a wait without end."""
        me = asyncio.current_task()
        batch: list[tuple[list[Item], asyncio.Future[list[Any]]]] = []
        error: Exception = ConnectionError("the store's group commit was cancelled")
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._answer(batch)
                batch = []
                # one turn for the callers just answered: their next calls go in the next round trip
                await asyncio.sleep(0)
        except Exception as exc:
            log.exception("the store's group commit failed; its callers get the error")
            error = exc
        finally:
            if self._flusher is me:
                self._flusher = None
            self._fail_unanswered([*batch, *self._pending], error)
            self._pending = []

    def _flush_ended(self, task: asyncio.Task[None]) -> None:
        """A flusher cancelled before its first step never ran its own clean-up: its callers are told here."""
        self._flushes.discard(task)
        if self._flusher is task:
            self._flusher = None
            left, self._pending = self._pending, []
            self._fail_unanswered(left, ConnectionError("the store's group commit was cancelled"))

    @staticmethod
    def _fail_unanswered(batch: list[tuple[list[Item], asyncio.Future[list[Any]]]], error: Exception) -> None:
        for _, done in batch:
            if not done.done():
                done.set_exception(error)

    async def _run_pipeline(self, batch: list[tuple[list[Item], Any]]) -> list[Any]:
        return await self.pipelined(
            [
                ("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
                if isinstance(c, Call)
                else ("HGETALL", c.key)
                for items, _ in batch
                for c in items
            ]
        )

    async def pipelined(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One round trip for `commands` (EVALSHA, HGETALL); replies in order, an error reply as its exception.
        Raises when the round trip fails (a lost connection: none of the replies is known)."""
        if self._raw is not None:
            return await self._raw.execute(commands)
        pipe = self.redis.pipeline(transaction=False)  # a cluster's: each command to its slot's node
        for cmd in commands:
            pipe.execute_command(*cmd)
        out: list[Any] = await pipe.execute(raise_on_error=False)
        return out

    async def _execute_batch(self, batch: list[tuple[list[Item], Any]]) -> list[Any]:
        """One pipeline for the batch; again (up to SCRIPT_ATTEMPTS) after reloading a script Redis had lost
        (a restart, SCRIPT FLUSH; fakeredis even drops the connection). Re-running is safe: a write already
        applied is unchanged the second time and emits nothing; a read is a read."""
        scripts = {id(c.script): c.script for items, _ in batch for c in items if isinstance(c, Call)}
        for attempt in range(1, SCRIPT_ATTEMPTS + 1):
            last = attempt >= SCRIPT_ATTEMPTS
            try:
                for script in scripts.values():
                    if not script._loaded:
                        await script.load()
                out = await self._run_pipeline(batch)
            except (NoScriptError, RedisConnectionError):
                for script in scripts.values():
                    script.forget()  # the reload itself may meet a connection the server just closed
                if last:
                    raise
                continue
            if not last and any(isinstance(r, NoScriptError) for r in out):
                for script in scripts.values():
                    script.forget()
                continue
            return out
        raise AssertionError("unreachable")

    async def _answer(self, batch: list[tuple[list[Item], asyncio.Future[list[Any]]]]) -> None:
        n = sum(len(items) for items, _ in batch)
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
        # the common case, every call answered and none refused: no per-caller search for an error
        if not any(isinstance(r, Exception) or refused(r) for r in out):
            i = 0
            for items, done in batch:
                if not done.done():
                    done.set_result(out[i : i + len(items)])
                i += len(items)
            metrics.count_redis("apply", ok=True, n=n)
            return
        i = 0
        failed = 0
        for items, done in batch:
            replies = out[i : i + len(items)]
            i += len(items)
            error: Exception | None = next((r for r in replies if isinstance(r, Exception)), None)
            stale = next(
                (
                    c.fence
                    for c, r in zip(items, replies, strict=True)
                    if isinstance(c, Call) and c.fence and refused(r)
                ),
                None,
            )
            if error is None and stale is not None:
                error = self.fences.refused(stale)
            if error is not None:
                failed += len(items)
                if not done.done():
                    done.set_exception(error)
                continue
            if not done.done():
                done.set_result(replies)
        if failed:
            metrics.count_redis("apply", ok=False, n=failed)
        if n > failed:
            metrics.count_redis("apply", ok=True, n=n - failed)

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
        if fence is not None and int(done) == -3:
            raise self.fences.refused(fence)
        metrics.count_redis("transition", ok=True)
        if int(done) == 1 and event is not None:
            metrics.count_events([event_type])
        return int(done) == 1, int(value)
