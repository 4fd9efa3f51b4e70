"""Fills at the edges of an account's tracking, with real processes (issue 14): an OKX simulator, an api
process and worker processes (ROLE=worker) on the real Redis, each test on a deployment of its own.

- A cold start paces the private sockets (OKX: 3 connection attempts per second per IP), so the last accounts'
  sockets open many seconds after their actors' first snapshot: such an account says "starting", not
  "healthy", until its streams are open and a second snapshot has run; a fill once it says healthy is one
  event at once (not at the silent reconcile, 30 s later).
- An account moving between workers: fills the exchange makes while nobody holds it (between the old worker's
  death and the new owner's first snapshot) reach no stream; the new owner reads them back over REST from
  the account's fill mark (the exchange's time of the last fill applied) and emits each once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.support import place, venue_client
from .test_workers import (
    BTC,
    Deployment,
    _orders,
    _SimRef,
    check_events,
    deployed,
    fill_events,
    price,
    run,
    user,
    wait_all_held,
)

pytestmark = pytest.mark.timeout(300)

COLD_START_ACCOUNTS = 16  # ~40 paced sockets at 3/s: the last open ~10 s after their actors start


@pytest.fixture
def cold(real_redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    with deployed(real_redis_url, tmp_path, n_accounts=COLD_START_ACCOUNTS, workers=1) as d:
        yield d


def test_an_account_is_healthy_only_once_its_streams_are_open_and_then_each_fill_is_one_event_at_once(
    cold: Deployment,
) -> None:
    d = cold
    (worker,) = d.workers
    users = [user(i) for i in range(COLD_START_ACCOUNTS)]

    def all_healthy() -> bool:
        tracked = d.tracked(worker)
        return all(tracked.get(u, {}).get("state") == "healthy" for u in users)

    t0 = time.monotonic()
    wait(all_healthy, within=90, what="every account healthy", d=d)
    healthy_s = time.monotonic() - t0
    run(_orders(d, users))  # one market order per account, from its bot
    filled = time.monotonic()

    def missing() -> dict[str, int]:
        return {u: n for u in users if (n := d.sim_account(u)["fill_count"] - fill_events(d, u))}

    # pushed at once: well inside the 30 s after which a silent account's snapshot would read them back
    wait(
        lambda: not missing(), within=8, what=lambda: f"one fill.created per fill (missing {missing()})", d=d
    )
    print(f"cold start of {len(users)} accounts: healthy after {healthy_s:.1f} s; fills written "
          f"{time.monotonic() - filled:.2f} s after the orders")  # fmt: skip


MOVE_ACCOUNTS = 6
# longer than the fill read-back's overlap (FILLS_OVERLAP_MS, 10 s): the new owner's snapshots, from its first
# on, read fills from 10 s before that one, so the gap's fills are older than any window it reads by itself
MOVE_LEASE_TTL_S = 12


@pytest.fixture
def pair(real_redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    settings = {"LEASE_TTL_S": str(MOVE_LEASE_TTL_S)}
    with deployed(real_redis_url, tmp_path, n_accounts=MOVE_ACCOUNTS, workers=2, settings=settings) as d:
        yield d


async def _resting(d: Deployment, users: list[str], prices: list[str]) -> None:
    """Limit buys below the market on each account, from its bot."""

    async def one(u: str) -> None:
        gw = await venue_client(_SimRef(d.sim.url), d.creds[u])  # type: ignore[arg-type]
        try:
            for px in prices:
                await place(gw, BTC, "buy", "0.01", order_type="limit", price=px)
        finally:
            await gw.close()

    await asyncio.gather(*(one(u) for u in users))


def test_fills_made_while_an_account_has_no_owner_are_each_one_event_from_its_next_owner(
    pair: Deployment,
) -> None:
    d = pair
    users = [user(i) for i in range(MOVE_ACCOUNTS)]
    live = set(d.workers)
    wait_all_held(d, live, within=60)

    def missing(of: list[str]) -> dict[str, int]:
        return {u: n for u in of if (n := d.sim_account(u)["fill_count"] - fill_events(d, u))}

    def healthy() -> bool:
        states = {u: h.get("state") for w in live for u, h in d.tracked(w).items()}
        return all(states.get(u) == "healthy" for u in users)

    wait(healthy, within=30, what="every account healthy", d=d)
    run(_orders(d, users))  # a fill each while tracked: every account has a fill mark
    wait(
        lambda: not missing(users), within=10, what=lambda: f"the first fills (missing {missing(users)})", d=d
    )
    victim = max(live, key=lambda w: len(d.held_by(w)))
    (survivor,) = live - {victim}
    moved = sorted(d.held_by(victim))
    run(_resting(d, moved, ["59000", "58990"]))
    time.sleep(0.5)  # (the victim has seen them rest: not needed for the point, but the usual case)
    d.workers[victim].proc.kill()
    d.workers[victim].proc.wait(timeout=10)
    price(d, "58000")  # every resting order fills now: nobody holds those accounts until the lease expires
    assert all(d.sim_account(u)["fill_count"] == 3 for u in moved)
    wait_all_held(d, {survivor}, within=MOVE_LEASE_TTL_S + 20)
    wait(
        lambda: not missing(users), within=10, what=lambda: f"the gap's fills (missing {missing(users)})", d=d
    )
    check_events(d, users)  # each fill exactly once, seqs contiguous


def wait(check: object, *, within: float, what: object, d: Deployment) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {within} s waiting for {text}\n{d.logs()}")
        time.sleep(0.1)
