"""The lease manager on the real Redis: fair shares, graceful release, takeover of a lapsed lease (issue 14).

The account registry is a stand-in that records which actors run (starting real actors is the process tests'
job, tests/scale/); the leases, tokens and fences are the real scripts on the real Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

from position_order_service.services.leases import LeaseManager
from position_order_service.store import Store
from position_order_service.supervisor import Supervisor

ACCOUNTS = {(f"u{i}", "okx") for i in range(10)}


class Actors:
    """Which accounts have a running actor (AccountRegistry's start/stop/failures)."""

    def __init__(self) -> None:
        self.running: set[tuple[str, str]] = set()
        self.failures: dict[tuple[str, str], str] = {}

    async def start(self, user_id: str, exchange: str) -> None:
        await asyncio.sleep(0.01)
        self.running.add((user_id, exchange))

    async def stop(self, user_id: str, exchange: str) -> None:
        self.running.discard((user_id, exchange))


def manager(store: Store, name: str, ttl_s: float = 2.0) -> tuple[LeaseManager, Actors]:
    """A worker: a store of its own (its own fence table) on the shared Redis and key prefix."""
    actors = Actors()
    own = Store.create(store.redis, prefix=store.keys.prefix)
    m = LeaseManager(own, actors, Supervisor(name), worker_id=name, ttl_s=ttl_s)  # type: ignore[arg-type]
    m.wanted = set(ACCOUNTS)
    return m, actors


async def tick(*managers: LeaseManager) -> None:
    for m in managers:
        await m._keepalive()
    for m in managers:
        await m.tick()


async def test_workers_share_the_accounts_and_a_new_one_gets_its_part(store: Store) -> None:
    m1, a1 = manager(store, "w1")
    await tick(m1)
    assert a1.running == ACCOUNTS  # alone: all of them (cap = 10 + 1)
    m2, a2 = manager(store, "w2")
    await tick(m2, m1)  # w1 sees w2 and releases what is over ceil(10 / 2) + 1
    await tick(m2, m1)  # w2 claims what is free
    assert a1.running | a2.running == ACCOUNTS and not a1.running & a2.running
    assert len(a1.running) <= 6 and len(a2.running) >= 4
    assert set(m1.held) == a1.running and set(m2.held) == a2.running
    assert all(m1.evaluates(*a) != m2.evaluates(*a) for a in ACCOUNTS)  # the engines follow the leases


async def test_a_graceful_stop_releases_every_lease_at_once(store: Store) -> None:
    m1, a1 = manager(store, "w1")
    m2, a2 = manager(store, "w2")
    await tick(m1, m2)
    await tick(m1, m2)
    await m1.stop()
    assert not a1.running and not m1.held
    await tick(m2)  # no waiting for an expiry
    assert a2.running == ACCOUNTS


async def test_a_lapsed_lease_is_taken_and_its_old_holder_stops_writing(store: Store) -> None:
    m1, a1 = manager(store, "w1", ttl_s=1.0)
    await tick(m1)
    assert a1.running == ACCOUNTS
    old = m1.fences.of("u1", "okx")
    await asyncio.sleep(1.2)  # w1 paused past its lease
    m2, a2 = manager(store, "w2", ttl_s=1.0)
    await tick(m2)
    assert a2.running == ACCOUNTS
    await tick(m1)  # w1 runs again: its renewals fail, its actors stop, it claims nothing held
    assert not a1.running and not m1.held
    assert m1.fences.of("u1", "okx") == old  # its stale token stays: a late write is refused
    new = m2.fences.of("u1", "okx")
    assert old is not None and new is not None and new.token > old.token


async def test_a_refused_write_stops_the_account_at_the_next_pass(store: Store) -> None:
    m1, a1 = manager(store, "w1")
    await tick(m1)
    seen: list[Any] = []
    m1.listeners.append(lambda: asyncio.sleep(0, seen.append(1)))
    m1.fences.on_refused and m1.fences.on_refused("u1", "okx")  # what the writer calls on a refusal
    await m1.tick()
    assert ("u1", "okx") not in a1.running and ("u1", "okx") not in m1.held and seen
