"""The Supervisor (every background task named, restarted, counted, stopped in order) and the Bus (typed
events, one queue and one task per subscriber, publish never waits)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest
from tenacity import wait_fixed

from position_order_service import metrics
from position_order_service.aio import Backoff
from position_order_service.bus import Bus
from position_order_service.supervisor import Supervisor


def failures(kind: str) -> float:
    return metrics.task_failures.labels(task=kind)._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_a_failing_job_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor("t1")
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        done.set()

    before = failures("t1/flaky")
    with caplog.at_level(logging.ERROR):
        sup.spawn("flaky", flaky, backoff=Backoff(wait_fixed(0.01)))
        await asyncio.wait_for(done.wait(), 5)
    assert len(runs) == 3
    assert failures("t1/flaky") - before == 2
    assert "task t1/flaky failed: RuntimeError: boom" in caplog.text
    await sup.stop()


async def test_a_job_that_meets_a_cancellation_nobody_asked_for_is_restarted() -> None:
    """A CancelledError from inside the work (a library's internal future cancelled under it) while nobody
    cancelled the job's task is a failure: counted and restarted, not a quiet end of the task."""
    sup = Supervisor("t5")
    runs: list[int] = []
    done = asyncio.Event()

    async def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.cancel()  # someone else's future, cancelled: awaiting it raises CancelledError here
            await fut
        done.set()
        await asyncio.Event().wait()  # runs on until stopped

    before = failures("t5/work")
    job = sup.spawn("work", work, backoff=Backoff(wait_fixed(0.01)))
    await asyncio.wait_for(done.wait(), 5)
    assert len(runs) == 2 and not job.done()
    assert failures("t5/work") - before == 1
    await sup.stop()  # a real stop still stops it
    assert job.done() and len(runs) == 2


async def test_every_goes_on_after_a_failing_round() -> None:
    sup = Supervisor("t2")
    rounds: list[int] = []
    enough = asyncio.Event()

    async def round_() -> None:
        rounds.append(1)
        if len(rounds) == 2:
            raise ValueError("one bad round")
        if len(rounds) >= 4:
            enough.set()

    before = failures("t2/tick")
    sup.every("tick", 0.01, round_)
    await asyncio.wait_for(enough.wait(), 5)
    assert failures("t2/tick") - before == 1
    await sup.stop()


async def test_stop_cancels_children_and_jobs_in_reverse_order() -> None:
    sup = Supervisor("t3")
    stopped: list[str] = []

    def job(name: str) -> object:
        async def run() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(name)

        return run

    sup.spawn("first", job("first"))  # type: ignore[arg-type]
    child = sup.scope("account")
    child.spawn("inner", job("inner"))  # type: ignore[arg-type]
    sup.spawn("second", job("second"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await sup.stop()
    assert stopped == ["inner", "second", "first"]
    with pytest.raises(RuntimeError):
        sup.spawn("late", job("late"))  # type: ignore[arg-type]


async def test_a_finished_job_leaves_the_supervisor() -> None:
    sup = Supervisor("t4")

    async def quick() -> None:
        return None

    job = sup.spawn("quick", quick)
    assert job.task is not None
    await job.task
    assert sup.jobs == []
    await sup.stop()


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class Other:
    n: int


async def test_bus_delivers_in_order_per_subscriber_and_never_waits_for_one() -> None:
    sup = Supervisor("t5")
    bus = Bus(sup)
    fast: list[int] = []
    slow: list[int] = []
    release = asyncio.Event()

    async def slow_handler(e: Ping) -> None:
        await release.wait()
        slow.append(e.n)

    def failing_then_fine(e: Ping) -> None:
        if e.n == 1:
            raise RuntimeError("a bad event")
        fast.append(e.n)

    bus.subscribe("slow", slow_handler, Ping)
    bus.subscribe("fast", failing_then_fine, Ping)
    bus.subscribe("others", lambda e: None, Other)
    for n in range(5):
        bus.publish(Ping(n))  # returns at once although "slow" blocks
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(fast) == 4:
            break
    assert fast == [0, 2, 3, 4] and slow == []
    release.set()
    await asyncio.wait_for(bus.idle(), 5)
    assert slow == [0, 1, 2, 3, 4]
    await sup.stop()
