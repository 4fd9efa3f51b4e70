"""Every background task of the service runs under a Supervisor (DESIGN: no task dies silently).

A job has a name (for logs) and a kind (the `task` label of `task_failures_total`: names carry user ids, kinds
do not). A job that raises is logged with its name, counted, and started again after a backoff (tenacity's
exponential wait with jitter), the backoff resetting once a run has lasted a while; one that returns is done.
`every` is the one periodic-loop helper. `scope` makes a child supervisor (one account's tasks) that stops as
a unit, and with its parent. `stop` cancels in reverse order of start, within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .aio import Backoff, cancel_all, cancel_requested

log = logging.getLogger(__name__)

HEALTHY_RUN_S = 30.0  # a run this long resets the restart backoff


@dataclass(eq=False)
class Job:
    name: str
    kind: str
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    last_error: str | None = None
    _owner: Supervisor | None = field(default=None, repr=False)

    def done(self) -> bool:
        return self.task is None or self.task.done()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def stop(self, within_s: float = 5.0) -> None:
        await cancel_all([self.task], within_s)
        if self._owner is not None:
            self._owner._forget(self)


class Supervisor:
    def __init__(self, name: str = "service", *, kind: str | None = None, stop_within_s: float = 5.0) -> None:
        self.name = name
        self.kind = kind or name
        self.stop_within_s = stop_within_s
        self._jobs: list[Job] = []
        self._children: list[Supervisor] = []
        self._parent: Supervisor | None = None
        self._stopped = False

    # -- starting -----------------------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        kind: str | None = None,
        restart: bool = True,
        backoff: Backoff | None = None,
    ) -> Job:
        """Run `factory()` as a named task; restart it with backoff when it fails (unless `restart=False`)."""
        if self._stopped:
            raise RuntimeError(f"supervisor {self.name} is stopped: cannot start {name}")
        job = Job(self._full(name), self._kind(kind or name), _owner=self)
        runner = self._run(job, factory, restart, backoff or Backoff())
        job.task = asyncio.create_task(runner, name=job.name)
        self._jobs.append(job)
        return job

    def every(
        self,
        name: str,
        interval_s: float,
        fn: Callable[[], Awaitable[object]],
        *,
        kind: str | None = None,
        first_delay_s: float | None = None,
    ) -> Job:
        """Run `fn` every `interval_s` (after `first_delay_s`, default one interval). A failing round is logged
        and counted; the loop goes on with the next round."""
        label = self._kind(kind or name)
        full = self._full(name)

        async def loop() -> None:
            await asyncio.sleep(interval_s if first_delay_s is None else first_delay_s)
            while True:
                try:
                    await fn()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if cancel_requested():
                        raise asyncio.CancelledError from exc
                    self._failed(full, label, exc)
                await asyncio.sleep(interval_s)

        return self.spawn(name, loop, kind=kind, restart=True)

    def scope(self, name: str, *, kind: str | None = None) -> Supervisor:
        """A child supervisor: its jobs stop with `child.stop()` or with this supervisor."""
        child = Supervisor(self._full(name), kind=self._kind(kind or name), stop_within_s=self.stop_within_s)
        child._parent = self
        self._children.append(child)
        return child

    # -- stopping -----------------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop children and jobs in reverse order of start, each group within the deadline."""
        self._stopped = True
        for child in reversed(list(self._children)):
            await child.stop()
        jobs, self._jobs = list(self._jobs), []
        for job in reversed(jobs):
            await cancel_all([job.task], self.stop_within_s)
        if self._parent is not None:
            self._parent._children = [c for c in self._parent._children if c is not self]

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def all_jobs(self) -> list[Job]:
        out = list(self._jobs)
        for child in self._children:
            out += child.all_jobs()
        return out

    # -- internals ----------------------------------------------------------------------------------------
    def _full(self, name: str) -> str:
        return f"{self.name}/{name}" if self.name else name

    def _kind(self, kind: str) -> str:
        return f"{self.kind}/{kind}" if self.kind else kind

    def _forget(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)

    def _failed(self, name: str, kind: str, exc: BaseException) -> None:
        metrics.task_failures.labels(task=kind).inc()
        log.error("task %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)

    async def _run(
        self, job: Job, factory: Callable[[], Awaitable[None]], restart: bool, backoff: Backoff
    ) -> None:
        try:
            while True:
                started = time.monotonic()
                try:
                    await factory()
                    return  # finished its work
                except asyncio.CancelledError as exc:
                    if cancel_requested() or self._stopped:
                        raise
                    # nobody cancelled this task: a future it awaited was cancelled under it (a library's
                    # internals). That is a failure of the work, not a stop: it must not end it quietly
                    job.last_error = "CancelledError: cancelled from within, not stopped"
                    self._failed(job.name, job.kind, exc)
                    if not restart:
                        return
                except Exception as exc:
                    if cancel_requested():
                        raise asyncio.CancelledError from exc
                    job.last_error = f"{type(exc).__name__}: {exc}"
                    self._failed(job.name, job.kind, exc)
                    if not restart:
                        return
                if time.monotonic() - started > HEALTHY_RUN_S:
                    backoff.reset()
                job.restarts += 1
                await backoff.sleep()
        finally:
            self._forget(job)


async def run_jobs(jobs: list[Job]) -> None:
    """Wait for jobs to finish (tests: the work scheduled so far is done)."""
    tasks: list[Any] = [j.task for j in jobs if j.task is not None and not j.task.done()]
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
