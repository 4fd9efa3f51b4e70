"""Which accounts this worker tracks: leases in Redis, a fair share each (issue 14, DESIGN "Scale path").

Every `interval_s` (a third of the lease TTL) the manager, in one supervised job:
1. heartbeats into the live-worker registry (a global sorted set, Redis' clock) and reads who is alive;
2. renews the leases it holds (one pipelined round trip); a lease found lost (this process was paused or cut
   off past its TTL, and another worker took the account) stops that account's actor at once; its stale token
   stays in the fence table, so a write still in flight is refused by the scripts (stale_writes_refused_total);
3. releases the accounts over its cap, cap = ceil(wanted / live workers) + margin, the ones it ranks lowest
   first (rendezvous hashing: every worker ranks the accounts the same way, so shares settle in one pass);
4. claims free accounts up to its cap, its own first: the actor starts with the account's fence set, and
   an actor begins with a REST reconcile before it acts on triggers (services/account).
A new worker gets accounts within two ticks of the others seeing it; a dead worker's leases expire after one
TTL and are claimed at the next tick; a graceful stop releases everything at once. The trailing-stop and rule
engines ask `owns` and follow the leases (engines' `owns` hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable

from .. import metrics
from ..aio import cancel_all, spawn
from ..store import Store
from ..store.leases import Lease, LeaseRepository
from ..supervisor import Job, Supervisor
from .account.registry import AccountRegistry

log = logging.getLogger(__name__)
Account = tuple[str, str]


async def _run(job: Callable[[], Awaitable[None]]) -> None:
    await job()


def rank(worker_id: str, account: Account) -> int:
    """Rendezvous weight of a worker for an account (higher = preferred): the same on every worker."""
    h = hashlib.blake2b(f"{worker_id}\x00{account[0]}\x00{account[1]}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


class LeaseManager:
    def __init__(
        self,
        store: Store,
        accounts: AccountRegistry,
        supervisor: Supervisor,
        *,
        worker_id: str,
        ttl_s: float = 10.0,
        margin: int = 1,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.supervisor = supervisor.scope("leases")
        self.worker_id = worker_id
        self.ttl_ms = max(int(ttl_s * 1000), 300)
        self.margin = margin
        self.repo = LeaseRepository(store.redis, store.keys)
        self.fences = store.writer.fences
        self.fences.on_refused = self._refused
        self.held: dict[Account, Lease] = {}
        self.wanted: set[Account] = set()
        self.live: list[str] = [worker_id]
        self.listeners: list[Callable[[], Awaitable[None]]] = []  # holdings changed (the engines resync)
        self._wake = asyncio.Event()
        self._next_pass: asyncio.Future[None] | None = None  # done when the loop's next pass is
        self._refusals: set[Account] = set()
        self._lost: dict[Account, Lease] = {}
        self._job: Job | None = None
        self._keepalive_job: Job | None = None
        self._stopped = False

    @property
    def interval_s(self) -> float:
        return self.ttl_ms / 3000

    def owns(self, user_id: str, exchange: str) -> bool:
        return (user_id, exchange) in self.held

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self, own_redis: bool = False) -> None:
        """`own_redis`: Redis was started by this process (the embedded one): the leases it holds belong to
        the process that ran it before (a kill -9 leaves them until they expire); they are dropped, so its
        accounts are tracked again at once instead of a lease period later."""
        if own_redis:
            dropped = await self.repo.forget_holders()
            if dropped:
                log.info("worker %s: dropped the leases of the process that ran this Redis before",
                         self.worker_id)  # fmt: skip
        self.live = await self.repo.heartbeat(self.worker_id, self.ttl_ms)
        log.info("worker %s: lease TTL %.1f s; live workers: %s", self.worker_id, self.ttl_ms / 1000,
                 ", ".join(self.live))  # fmt: skip
        self._next_pass = asyncio.get_running_loop().create_future()
        self._job = self.supervisor.spawn("loop", self._run, kind="leases")
        # renewal runs apart from the loop, so a slow start of many actors never lets a held lease lapse
        self._keepalive_job = self.supervisor.every("renew", self.interval_s, self._keepalive)

    async def _keepalive(self) -> None:
        """Heartbeat and renew every held lease (one round trip each); a lost one wakes the loop."""
        live = await self.repo.heartbeat(self.worker_id, self.ttl_ms)
        self.live = live if self.worker_id in live else [*live, self.worker_id]
        lost = await self.repo.renew(list(self.held.values()), self.ttl_ms)
        for lease in lost:
            if self.held.get(lease.account) is lease:
                self._lost[lease.account] = lease
        if lost:
            self._wake.set()

    async def _run(self) -> None:
        """The one task that changes what this worker holds: a tick every interval, or at once when woken."""
        while True:
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            done, self._next_pass = self._next_pass, asyncio.get_running_loop().create_future()
            try:
                await self.tick()
            finally:
                if done is not None and not done.done():
                    done.set_result(None)

    async def stop(self) -> None:
        """Graceful stop: stop the actors, then release every lease at once and leave the registry."""
        self._stopped = True
        for job in (self._job, self._keepalive_job):
            if job is not None:
                await job.stop()
        # the loop is stopped: nothing else changes `held`
        held = list(self.held.values())
        await asyncio.gather(*(self.accounts.stop(*lease.account) for lease in held), return_exceptions=True)
        try:
            await self.repo.release(held)
            await self.repo.heartbeat(self.worker_id, 0)
        except Exception as exc:  # Redis away: the leases expire on their own within one TTL
            log.warning("worker %s: leases not released (%s): they expire within %.1f s", self.worker_id,
                        exc, self.ttl_ms / 1000)  # fmt: skip
        metrics.lease_moves.labels(action="released").inc(len(held))
        self.held.clear()
        metrics.leases_held.set(0)
        await self.supervisor.stop()

    async def set_wanted(self, wanted: Iterable[Account], within_s: float = 10.0) -> None:
        """The accounts that should be tracked by someone (the active-user scan). Wakes the loop and waits
        (at most `within_s`) for its pass over them, so an activation is tracked when this returns."""
        self.wanted = set(wanted)
        done = self._next_pass
        if done is None or self._job is None or self._job.done():
            return
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await asyncio.shield(done)

    def evaluates(self, user_id: str, exchange: str) -> bool:
        """Whether this worker runs the account's trailing stops and rules: it holds the lease; for an account
        nobody tracks (not active), the live worker that ranks it first."""
        account = (user_id, exchange)
        if account in self.held:
            return True
        if account in self.wanted:
            return False
        return max(self.live, key=lambda w: rank(w, account)) == self.worker_id

    # -- the tick ---------------------------------------------------------------------------------------
    async def tick(self) -> None:
        """One pass (the loop's; tests call it directly)."""
        if self._stopped:
            return
        changed = await self._tick()
        metrics.leases_held.set(len(self.held))
        if changed:
            for listener in self.listeners:
                await listener()

    async def _tick(self) -> bool:
        changed = False
        refused, self._refusals = self._refusals, set()
        found, self._lost = self._lost, {}
        lost = [lease for a, lease in found.items() if self.held.get(a) is lease]
        lost += [self.held[a] for a in refused if a in self.held and a not in found]
        for lease in lost:
            metrics.leases_lost.inc()
            log.warning("worker %s lost the lease of %s/%s (expired or taken over): stopping it",
                        self.worker_id, lease.user_id, lease.exchange)  # fmt: skip
            await self._drop(lease, release=False)
            changed = True
        for account in set(self.held) - self.wanted:
            await self._drop(self.held[account], release=True)
            changed = True
        cap = math.ceil(len(self.wanted) / len(self.live)) + self.margin if self.wanted else 0
        if len(self.held) > cap:
            surplus = sorted(self.held, key=self._preference)[: len(self.held) - cap]
            for account in surplus:
                await self._drop(self.held[account], release=True)
            changed = True
        room = cap - len(self.held)
        if room > 0:
            changed |= await self._claim(room)
        await self._retry_failed()
        return changed

    def _preference(self, account: Account) -> tuple[int, int]:
        """Sort key: accounts this worker ranks first among the live ones come LAST (kept longest, claimed
        first when reversed)."""
        mine = rank(self.worker_id, account)
        better = sum(1 for w in self.live if w != self.worker_id and rank(w, account) > mine)
        return (-better, mine)

    async def _claim(self, room: int) -> bool:
        candidates = sorted(self.wanted - set(self.held), key=self._preference, reverse=True)
        if not candidates:
            return False
        free = (await self.repo.unheld(candidates))[:room]
        if not free:
            return False
        got = await self.repo.acquire(self.worker_id, free, self.ttl_ms)
        for lease in got:  # held (so renewed) before any actor starts: starting many takes a while
            self.held[lease.account] = lease
            self.fences.set(lease.fence())
            metrics.lease_moves.labels(action="taken").inc()
            log.info("worker %s took %s/%s (token %d)", self.worker_id, lease.user_id, lease.exchange,
                     lease.token)  # fmt: skip
        for lease in got:
            if self.held.get(lease.account) is lease:  # (not lost meanwhile)
                await self.accounts.start(lease.user_id, lease.exchange)
        return bool(got)

    async def _drop(self, lease: Lease, *, release: bool) -> None:
        """Stop the account's actor first (nothing more is written), then release its lease if still ours.
        The fence keeps the old token: a late write of this process is refused."""
        self.held.pop(lease.account, None)
        self.fences.set(lease.fence())  # (a re-take of the same account by this worker sets the new one)
        await self.accounts.stop(lease.user_id, lease.exchange)
        if release:
            await self.repo.release([lease])
            metrics.lease_moves.labels(action="released").inc()

    async def _retry_failed(self) -> None:
        for account in sorted(set(self.accounts.failures) & set(self.held)):
            self.accounts.failures.pop(account, None)
            await self.accounts.start(*account)

    async def run_as_singleton(
        self, name: str, job: Callable[[], Awaitable[None]], stop: Callable[[], None]
    ) -> None:
        """Run `job` only while this worker holds the global lease `name` (one active history writer among
        the workers): wait for the lease, run, renew it every tick; `stop()` it as soon as the lease is lost."""
        keys = self.store.keys
        key, fence_key = keys.lease(name), keys.lease(f"{name}:fence")
        while True:
            lease = await self.repo.acquire_named(key, fence_key, self.worker_id, self.ttl_ms)
            if lease is None:
                await asyncio.sleep(self.interval_s)
                continue
            log.info("worker %s runs the %s (lease token %d)", self.worker_id, name, lease.token)
            task: asyncio.Task[None] = spawn(_run(job), name=name)
            lost = False
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=self.interval_s)
                    if not task.done() and await self.repo.renew([lease], self.ttl_ms):
                        log.warning("worker %s lost the %s lease: stopping it", self.worker_id, name)
                        lost = True
                        break
            finally:
                stop()
                await cancel_all([task], within_s=5.0)
                if not lost:
                    await self.repo.release([lease])  # stopped or failed here: another worker may take it
            if not lost:
                task.result()  # the job ended (stopped) or failed (raised: the supervisor restarts this)
                return

    def _refused(self, user_id: str, exchange: str) -> None:
        """A script refused a write of ours: the lease is gone; the loop stops the account at once."""
        self._refusals.add((user_id, exchange))
        self._wake.set()
