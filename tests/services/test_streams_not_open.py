"""An account whose private sockets are not open after its first snapshot: held back by the connection pacer
(a cold start), or refused by the venue. Over the real ccxt client and the Binance wire front of the simulator:
the service's pacer admits 1 attempt per 5 minutes (sockets held back), or the simulator refuses the upgrade
(429) until its limit is lifted."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import CodeType
from typing import Any

import aiohttp
import pytest

from position_order_service.api.auth import Caller
from position_order_service.api.dashboard import accounts_of
from position_order_service.services.account import AccountActor
from position_order_service.store import Store

from .harness import Harness, eventually, make_harness

HELD_ACCOUNTS = 8
_WATCHED = ("services/account/feeds.py", "exchanges/ccxt_streams.py")


@pytest.fixture
async def held(store: Store) -> AsyncIterator[Harness]:
    """Binance over ccxt; the service paces its own attempts at 1 per 5 minutes: one socket opens, the rest
    wait at the pacer as the last accounts of a cold start do."""
    h = await make_harness(store, via="ccxt", venue="binance", binance_ws_connects_per_5min=1)
    h.accounts.options = replace(h.accounts.options, streams_ready_s=0.3)
    yield h
    await h.close()


@pytest.fixture
async def refusing(store: Store) -> AsyncIterator[Harness]:
    h = await make_harness(store, via="ccxt", venue="binance")
    h.accounts.options = replace(h.accounts.options, streams_ready_s=0.3, streams_late_s=1.5)
    yield h
    await h.close()


@contextmanager
def resumes() -> Iterator[list[int]]:
    """Counts the coroutine resumptions (task wake-ups, one per frame of the awaiting chain) of the account's
    feeds and the gateway's streams while the block runs."""
    mon = sys.monitoring
    tool = mon.PROFILER_ID
    count = [0]

    def on_resume(code: CodeType, _offset: int) -> Any:
        if code.co_filename.endswith(_WATCHED):
            count[0] += 1
            return None
        return mon.DISABLE

    mon.use_tool_id(tool, "resume-count")
    mon.register_callback(tool, mon.events.PY_RESUME, on_resume)
    mon.set_events(tool, mon.events.PY_RESUME)
    try:
        yield count
    finally:
        mon.set_events(tool, 0)
        mon.register_callback(tool, mon.events.PY_RESUME, None)
        mon.free_tool_id(tool)
        mon.restart_events()


async def _start(h: Harness, users: list[str]) -> list[AccountActor]:
    actors = []
    for u in users:
        actor = await h.accounts.start(u, h.venue)
        assert actor is not None
        actors.append(actor)
    return actors


async def test_accounts_whose_sockets_are_held_back_do_not_wake_up_to_poll_them(held: Harness) -> None:
    h = held
    users = [f"u{i}" for i in range(HELD_ACCOUNTS)]
    for u in users:
        h.account(u)
    h.price("60000")
    actors = await _start(h, users)
    await eventually(lambda: _all_reconciled(actors), within=10)
    waiting = [a for a in actors if a.health.state == "starting"]
    assert len(waiting) >= HELD_ACCOUNTS - 1  # (one socket was admitted)
    window_s = 2.0
    with resumes() as count:
        await asyncio.sleep(window_s)
    per_account_per_s = count[0] / len(waiting) / window_s
    # was ~80 (20 polls a second, 4 frames each); an account waiting on its sockets' futures wakes ~never
    assert per_account_per_s < 2, per_account_per_s


async def test_the_second_snapshot_follows_the_sockets_opening_at_once(store: Store) -> None:
    """A cold start paced at 2 attempts/s (OKX, /private + /business per account): each account says healthy
    a fraction of a second after its last private socket opened, not at a poll."""
    h = await make_harness(store, via="ccxt", okx_ws_connects_per_s=2)
    try:
        h.accounts.options = replace(h.accounts.options, streams_ready_s=0.3)
        users = [f"u{i}" for i in range(4)]
        for u in users:
            h.account(u)
        h.price("60000")
        actors = await _start(h, users)

        async def all_healthy() -> bool:
            return all(a.health.state == "healthy" for a in actors)

        await eventually(all_healthy, within=15)
        lags = [await _second_snapshot_lag_s(h, a) for a in actors]
        assert max(lags) < 0.5, lags
    finally:
        await h.close()


async def _second_snapshot_lag_s(h: Harness, actor: AccountActor) -> float:
    """From the account's last private socket opening to its last snapshot (the second, or the only one)."""
    gateway: Any = await h.gateways.for_user(actor.user_id, h.venue)
    client = await gateway._ready()
    opened_ms = max(
        ws.connectionEstablished
        for url, ws in client.clients.items()
        if "/private" in url or "/business" in url
    )
    assert actor.health.last_reconcile_at is not None
    return actor.health.last_reconcile_at.timestamp() - opened_ms / 1000


async def _all_reconciled(actors: list[AccountActor]) -> bool:
    return all(a.reconciled.is_set() for a in actors)


async def _limits(h: Harness, body: dict[str, Any]) -> None:
    assert h.sim is not None
    async with aiohttp.ClientSession() as http:
        async with http.post(h.sim.url + "/sim/limits", json=body) as resp:
            assert resp.status == 200, await resp.text()
        if body.get("enabled"):  # use up the window's one attempt: every other one is refused (429)
            async with http.ws_connect(h.sim.url.replace("http", "ws", 1) + "/ws"):
                pass


async def test_an_account_whose_sockets_are_refused_says_why_then_healthy_once_they_open(
    refusing: Harness,
) -> None:
    h = refusing
    h.account("u1")
    h.price("60000")
    await _limits(h, {"enabled": True, "binance_ws_connects_per_5min": 1})
    (actor,) = await _start(h, ["u1"])
    assert await actor.wait_reconciled(5)
    t0 = time.monotonic()
    states: list[str] = []

    async def says_why() -> bool:
        states.append(actor.health.state)
        return actor.health.state == "reconnecting" and "not open" in (actor.health.last_error or "")

    await eventually(says_why, within=5)
    # past the bound it says so and stays so (the snapshots the failing pumps ask for do not say "starting")
    for _ in range(20):
        await asyncio.sleep(0.1)
        assert actor.health.state == "reconnecting", actor.health.as_dict()
    last_error = actor.health.last_error or ""
    assert "orders" in last_error and "fills" in last_error, last_error
    await _limits(h, {"enabled": False})
    opened = time.monotonic()

    async def healthy() -> bool:
        return actor.health.state == "healthy"

    await eventually(healthy, within=10)
    print(
        f"reason shown {opened - t0:.1f} s; healthy {time.monotonic() - opened:.1f} s after the sockets may open"
    )


QUEUED_ACCOUNTS = 4


async def test_an_account_queued_at_our_own_pacer_says_starting_and_how_many_are_ahead(store: Store) -> None:
    """A cold start paced at 1 attempt/s (OKX, /private + /business per account: ~8 s for 4 accounts) with
    the lateness bound at 1.5 s: the last accounts wait at the service's own pacer well past it. Waiting there is
    no sign of the venue or the network: they say `starting` (never `reconnecting`, the simulator refuses
    nothing here) with a detail naming the queue, on the actor and on /status and the dashboard, then
    `healthy` once their sockets open."""
    h = await make_harness(store, via="ccxt", okx_ws_connects_per_s=1)
    try:
        h.accounts.options = replace(h.accounts.options, streams_ready_s=0.3, streams_late_s=1.5)
        users = [f"u{i}" for i in range(QUEUED_ACCOUNTS)]
        for u in users:
            h.account(u)
        h.price("60000")
        t0 = time.monotonic()
        actors = await _start(h, users)
        seen: dict[str, list[str]] = {u: [] for u in users}  # the detail each account showed, in order
        reconnecting: list[tuple[float, str, dict[str, Any]]] = []
        shown: list[dict[str, Any]] = []  # a queued account as /status and the dashboard show it

        async def all_healthy() -> bool:
            for a in actors:
                health = a.health.as_dict()
                if health["state"] == "reconnecting":
                    reconnecting.append((time.monotonic() - t0, a.user_id, health))
                if health.get("detail") is not None:
                    assert health["state"] == "starting", health
                    seen[a.user_id].append(health["detail"])
                    if not shown and time.monotonic() - t0 > 2.5:
                        status = await h.services.status()
                        (row,) = [u for u in status["users"] if u["user_id"] == a.user_id]
                        (card,) = [
                            c.model_dump() for c in await accounts_of(h.services, Caller(None))
                            if c.user_id == a.user_id
                        ]  # fmt: skip
                        shown.extend((row, card))
            return all(a.health.state == "healthy" for a in actors)

        await eventually(all_healthy, within=30, every=0.1)
        assert reconnecting == [], reconnecting[:3]
        last = seen[users[-1]]
        assert last, seen  # the last account waited at the pacer, and said so
        ahead = [_ahead(d) for d in last]
        assert all(re.fullmatch(_QUEUED, d) for d in last), last[:3]
        assert ahead[0] >= 4 and ahead[-1] <= 1 and ahead == sorted(ahead, reverse=True), ahead
        # past the lateness bound (counted from the first snapshot) and still queued: starting, not late
        assert len(shown) == 2, "no account was still queued 2.5 s in"
        for view in shown:
            assert view["state"] == "starting" and re.fullmatch(_QUEUED, view["detail"]), view
        assert all(a.health.as_dict().get("detail") is None for a in actors)
        print(f"{users[-1]}: {last[0]!r} .. {last[-1]!r}; all healthy {time.monotonic() - t0:.1f} s in")
    finally:
        await h.close()


_QUEUED = r"waiting for a connection slot: \d+ ahead \(1/s for okx 127\.0\.0\.1:\d+\), ~\d+ s"


def _ahead(detail: str) -> int:
    found = re.search(r"(\d+) ahead", detail)
    assert found is not None, detail
    return int(found.group(1))
