"""The set of running trackers: start and stop one per (user, exchange) without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..store import Store
from .gateways import GatewayProvider
from .prices import PriceHub
from .tracker import OrderListener, PositionListener, TrackerOptions, UserTracker

log = logging.getLogger(__name__)


class TrackingService:
    def __init__(
        self, store: Store, gateways: GatewayProvider, prices: PriceHub, options: TrackerOptions | None = None
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.prices = prices
        self.options = options or TrackerOptions()
        self.trackers: dict[tuple[str, str], UserTracker] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()
        # every tracker calls these (trailing stops and rules react to orders and positions)
        self.order_listeners: list[OrderListener] = []
        self.position_listeners: list[PositionListener] = []

    def get(self, user_id: str, exchange: str) -> UserTracker | None:
        return self.trackers.get((user_id, exchange))

    async def start(self, user_id: str, exchange: str) -> UserTracker | None:
        async with self._lock:
            key = (user_id, exchange)
            if key in self.trackers:
                return self.trackers[key]
            try:
                gateway = await self.gateways.for_user(user_id, exchange)
            except Exception as exc:
                # e.g. no credentials: the user shows as unhealthy, the others go on
                self.failures[key] = str(exc)
                log.warning("cannot track %s on %s: %s", user_id, exchange, exc, extra={"user_id": user_id})
                return None
            self.failures.pop(key, None)
            tracker = UserTracker(user_id, exchange, gateway, self.store, self.prices, self.options)
            tracker.order_listeners = self.order_listeners
            tracker.position_listeners = self.position_listeners
            self.trackers[key] = tracker
            tracker.start()
            log.info("tracking %s on %s", user_id, exchange, extra={"user_id": user_id, "exchange": exchange})
            return tracker

    async def stop(self, user_id: str, exchange: str) -> None:
        async with self._lock:  # forget it at once; the slow part (closing sockets) runs outside the lock
            key = (user_id, exchange)
            self.failures.pop(key, None)
            tracker = self.trackers.pop(key, None)
            gateway = self.gateways.detach(user_id, exchange)  # a restart right after gets a fresh one
        if tracker is not None:
            await tracker.stop()
        if gateway is not None:
            with contextlib.suppress(Exception):
                await gateway.close()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(u, e) for u, e in list(self.trackers)), return_exceptions=True)

    def tracked(self) -> set[tuple[str, str]]:
        return set(self.trackers)

    def health(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"user_id": u, "exchange": e, **t.health.as_dict()} for (u, e), t in sorted(self.trackers.items())
        ]
        out += [
            {"user_id": u, "exchange": e, "state": "error", "healthy": False, "last_error": reason}
            for (u, e), reason in sorted(self.failures.items())
        ]
        return out
