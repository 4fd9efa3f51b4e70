"""A stand-in for a ccxt watch call whose frames our push tap takes: pending while the socket lives, failing when
the test drops it (as a dropped socket would)."""

from __future__ import annotations

import asyncio

import ccxt


class PendingWatch:
    def __init__(self) -> None:
        self.calls = 0
        self.future: asyncio.Future[None] | None = None

    async def __call__(self) -> None:
        self.calls += 1
        self.future = asyncio.get_running_loop().create_future()
        await self.future

    def drop(self, message: str) -> None:
        assert self.future is not None
        self.future.set_exception(ccxt.NetworkError(message))
