"""What the wire fronts and the control API share for one simulated venue."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import web

from .engine import FaultSet, SimEngine
from .limits import ConnectionLimits


@dataclass
class SimContext:
    engine: SimEngine
    venue: str
    limits: ConnectionLimits = field(init=False)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    feeds: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server shuts down: replies held back by a fault stop waiting."""

    def __post_init__(self) -> None:
        self.limits = ConnectionLimits(self.venue)

    @property
    def faults(self) -> FaultSet:
        """The venue's injected faults (the engine's: a paper gateway on the same engine shares them)."""
        return self.engine.faults

    def track(self, ws: web.WebSocketResponse) -> None:
        self.sockets.add(ws)

    def untrack(self, ws: web.WebSocketResponse) -> None:
        self.sockets.discard(ws)

    async def drop_all_sockets(self) -> int:
        """Close every WebSocket at once, as an exchange outage would."""
        sockets = list(self.sockets)
        self.sockets.clear()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close(code=1012, message=b"simulated disconnect")
        return len(sockets)

    async def stop_feeds(self) -> None:
        tasks = list(self.feeds.values())
        self.feeds.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


CTX_KEY: web.AppKey[SimContext] = web.AppKey("sim_ctx", SimContext)
