"""What the wire fronts and the control API share for one simulated venue."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import web

from .engine import SimEngine


@dataclass
class Faults:
    """Fault injection driven by POST /sim/faults (tests of unknown outcomes).

    drop_order_responses: the next N order-placing requests are carried out by the engine, but the HTTP
    connection is closed before the reply is sent: the client sees a network error and cannot know the outcome.
    delay_ms: extra latency before every REST reply.
    """

    drop_order_responses: int = 0
    delay_ms: int = 0


@dataclass
class SimContext:
    engine: SimEngine
    venue: str
    faults: Faults = field(default_factory=Faults)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    feeds: dict[str, asyncio.Task[None]] = field(default_factory=dict)

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
