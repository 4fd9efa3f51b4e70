"""Account leases and fencing tokens (issue 14, DESIGN "Scale path"): the Redis side.

A worker holds an account while its lease key ("<token>:<worker id>", PX expiry) is its own. The token comes
from INCR of the account's fence counter when the lease is taken, so a later holder always writes with a larger
token. Every state-writing script checks the token it is given against the lease (lua.FENCE): a worker that
lost its lease (paused past its TTL, partitioned) has every write refused, counted in
`stale_writes_refused_total`. The `FenceTable` is what the writers read the token of an account from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from . import lua
from .keys import Keys

if TYPE_CHECKING:
    from .writer import LuaScript


class StaleWrite(RuntimeError):
    """A write refused by the fence: this worker's lease of the account is gone."""

    def __init__(self, user_id: str, exchange: str) -> None:
        super().__init__(f"write of {user_id}/{exchange} refused: this worker no longer holds its lease")
        self.user_id = user_id
        self.exchange = exchange


@dataclass(frozen=True, slots=True)
class Fence:
    """What a fenced write carries: the account's lease key (its last KEY) and the token (its last ARGV)."""

    user_id: str
    exchange: str
    lease_key: str
    token: int

    @property
    def arg(self) -> str:
        return f"fence={self.token}"

    def extend(self, keys: list[str], args: list[Any]) -> None:
        """Append the fence to a script call's keys and args (lua.FENCE's convention)."""
        keys.append(self.lease_key)
        args.append(self.arg)


@dataclass(slots=True)
class FenceTable:
    """The fences of the accounts this process holds (or held: a lost lease keeps its stale token here, so a
    late write of a task that has not stopped yet is refused, never sent unfenced). Empty = unfenced process
    (an api replica, a bot, tests without leases)."""

    fences: dict[tuple[str, str], Fence] = field(default_factory=dict)
    on_refused: Callable[[str, str], None] | None = None

    def of(self, user_id: str, exchange: str) -> Fence | None:
        return self.fences.get((user_id, exchange))

    def set(self, fence: Fence) -> None:
        self.fences[(fence.user_id, fence.exchange)] = fence

    def refused(self, fence: Fence) -> StaleWrite:
        """Count a refusal, tell the lease manager, and return the error to raise."""
        from .. import metrics

        metrics.stale_writes_refused.labels(exchange=fence.exchange).inc()
        if self.on_refused is not None:
            self.on_refused(fence.user_id, fence.exchange)
        return StaleWrite(fence.user_id, fence.exchange)


@dataclass(frozen=True, slots=True)
class Lease:
    user_id: str
    exchange: str
    key: str
    value: str  # "<token>:<worker id>"
    token: int

    @property
    def account(self) -> tuple[str, str]:
        return (self.user_id, self.exchange)

    def fence(self) -> Fence:
        return Fence(self.user_id, self.exchange, self.key, self.token)


class LeaseRepository:
    """The lease scripts (store/lua.py), pipelined per tick: one round trip for all accounts."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        from .writer import LuaScript

        self.redis = redis
        self.keys = keys
        self._acquire = LuaScript(redis, lua.LEASE_ACQUIRE)
        self._renew = LuaScript(redis, lua.LEASE_RENEW)
        self._release = LuaScript(redis, lua.LEASE_RELEASE)
        self._heartbeat = LuaScript(redis, lua.WORKER_HEARTBEAT)

    async def heartbeat(self, worker_id: str, ttl_ms: int) -> list[str]:
        """Register this worker as live for ttl_ms (0: leave); returns the live workers' ids."""
        out = await self._heartbeat(keys=[self.keys.live_workers()], args=[worker_id, ttl_ms])
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in out)

    async def acquire(self, worker_id: str, accounts: Iterable[tuple[str, str]], ttl_ms: int) -> list[Lease]:
        """Try to take each account's lease; returns the ones now held (with their tokens)."""
        wanted = list(accounts)
        if not wanted:
            return []
        calls = [
            ([self.keys.account_lease(u, e), self.keys.account_fence(u, e)], [worker_id, ttl_ms])
            for u, e in wanted
        ]
        held = []
        for (user_id, exchange), token in zip(wanted, await self._many(self._acquire, calls), strict=True):
            if int(token) > 0:
                key = self.keys.account_lease(user_id, exchange)
                held.append(Lease(user_id, exchange, key, f"{int(token)}:{worker_id}", int(token)))
        return held

    async def acquire_named(self, key: str, fence_key: str, worker_id: str, ttl_ms: int) -> Lease | None:
        """A lease of one global role (the history writer): the same scripts, with its own fence counter."""
        token = int(await self._acquire(keys=[key, fence_key], args=[worker_id, ttl_ms]))
        return Lease("", "", key, f"{token}:{worker_id}", token) if token > 0 else None

    async def renew(self, leases: Iterable[Lease], ttl_ms: int) -> list[Lease]:
        """Renew each lease; returns the ones LOST (expired, or taken by another worker)."""
        mine = list(leases)
        if not mine:
            return []
        replies = await self._many(self._renew, [([lease.key], [lease.value, ttl_ms]) for lease in mine])
        return [lease for lease, ok in zip(mine, replies, strict=True) if not int(ok)]

    async def release(self, leases: Iterable[Lease]) -> None:
        mine = list(leases)
        if not mine:
            return
        await self._many(self._release, [([lease.key], [lease.value]) for lease in mine])

    async def _many(self, script: LuaScript, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """One pipeline of script calls; again once after reloading a script Redis lost (SCRIPT FLUSH, a
        restart). Re-running is safe: each script is idempotent for its caller."""
        from .writer import evalsha_in

        for attempt in (1, 2):
            await script.load()
            pipe = self.redis.pipeline(transaction=False)
            for keys, args in calls:
                evalsha_in(pipe, script.sha, keys, args)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                script.forget()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def unheld(self, accounts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The accounts nobody holds a lease of, in the given order (one pipelined round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for user_id, exchange in accounts:
            pipe.exists(self.keys.account_lease(user_id, exchange))
        return [a for a, taken in zip(accounts, await pipe.execute(), strict=True) if not taken]

    async def forget_holders(self) -> int:
        """Drop every lease and the live-worker registry (not the fence counters: the next tokens stay larger
        than any a gone holder had). Only for a Redis this process has just started itself (the embedded one):
        whatever holds a lease there is a process that died with the previous instance."""
        keys = self.keys
        doomed = [keys.live_workers()]
        for pattern in (keys.account_lease("*", "*"), keys.lease("*")):
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                name = key.decode() if isinstance(key, bytes) else str(key)
                if not name.endswith(":fence"):
                    doomed.append(name)
        return int(await self.redis.unlink(*doomed))

    async def holder(self, user_id: str, exchange: str) -> str | None:
        """The worker id holding an account (tests, the status page)."""
        raw = await self.redis.get(self.keys.account_lease(user_id, exchange))
        if raw is None:
            return None
        value = raw.decode() if isinstance(raw, bytes) else str(raw)
        return value.partition(":")[2]
