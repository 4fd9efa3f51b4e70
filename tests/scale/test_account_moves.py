"""Fills at the edges of an account's tracking, with real processes (issue 14): an OKX simulator, an api
process and worker processes (ROLE=worker) on the real Redis, each test on a deployment of its own.

- A cold start paces the private sockets (OKX: 3 connection attempts per second per IP), so the last accounts'
  sockets open many seconds after their actors' first snapshot: such an account says "starting", not
  "healthy", until its streams are open and a second snapshot has run; a fill once it says healthy is one
  event at once (not at the silent reconcile, 30 s later).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_workers import Deployment, _orders, deployed, fill_events, run, user

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


def wait(check: object, *, within: float, what: object, d: Deployment) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {within} s waiting for {text}\n{d.logs()}")
        time.sleep(0.1)
