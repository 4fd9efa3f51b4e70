"""Active User Manager: who is tracked (SPEC section 10).

A user is tracked on an exchange when they are in `active_users:position_order_service` or their
`user:{id}:bot:status` is "enabled", and the exchange is in `user:{id}:bot:exchanges`; the activate/deactivate
API writes the same keys. A deactivation sticks: the user is remembered as deactivated so a later scan of
bot statuses does not bring them back until they are activated again.
"""

from __future__ import annotations

import asyncio
import logging

from ..aio import cancel_all, cancel_requested
from ..domain.enums import Exchange
from ..store import Store
from .tracking import TrackingService

log = logging.getLogger(__name__)

SUPPORTED_EXCHANGES = (Exchange.OKX.value, Exchange.BINANCE.value)


class ActiveUserManager:
    def __init__(
        self,
        store: Store,
        tracking: TrackingService,
        *,
        user_rescan_s: float = 300.0,
        symbol_rescan_s: float = 60.0,
        default_exchanges: tuple[str, ...] = ("okx",),
    ) -> None:
        self.store = store
        self.tracking = tracking
        self.user_rescan_s = user_rescan_s
        self.symbol_rescan_s = symbol_rescan_s
        self.default_exchanges = default_exchanges
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.rescan_users()
        self._tasks = [
            asyncio.create_task(self._loop(self.rescan_users, self.user_rescan_s), name="user-rescan"),
            asyncio.create_task(self._loop(self.rescan_symbols, self.symbol_rescan_s), name="symbol-rescan"),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _loop(self, fn: object, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await fn()  # type: ignore[operator]
            except asyncio.CancelledError:
                raise
            except Exception:
                if cancel_requested():
                    raise
                log.exception("rescan failed")

    # -- the desired set -------------------------------------------------------------------------------
    async def _decode_set(self, key: str) -> set[str]:
        return {m.decode() if isinstance(m, bytes) else str(m) for m in await self.store.redis.smembers(key)}

    async def active_user_ids(self) -> set[str]:
        keys = self.store.keys
        users = await self._decode_set(keys.active_users())
        prefix, suffix = keys.bot_status("\x00").split("\x00")
        async for key in self.store.redis.scan_iter(match=keys.bot_status_pattern(), count=500):
            k = key.decode() if isinstance(key, bytes) else key
            user_id = k[len(prefix) : len(k) - len(suffix)]
            status = await self.store.redis.get(k)
            if status in (b"enabled", "enabled"):
                users.add(user_id)
        return users - await self._decode_set(keys.deactivated_users())

    async def exchanges_of(self, user_id: str) -> set[str]:
        keys = self.store.keys
        names = await self._decode_set(keys.tracked_exchanges(user_id))
        names |= await self._decode_set(keys.bot_exchanges(user_id))
        names = names or set(self.default_exchanges)
        return {n for n in names if n in SUPPORTED_EXCHANGES}

    async def desired(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for user_id in await self.active_user_ids():
            out |= {(user_id, ex) for ex in await self.exchanges_of(user_id)}
        return out

    async def rescan_users(self) -> None:
        async with self._lock:
            want = await self.desired()
            have = self.tracking.tracked() | set(self.tracking.failures)
            for user_id, exchange in sorted(want - have):
                await self.tracking.start(user_id, exchange)
            for user_id, exchange in sorted(have - want):
                await self.tracking.stop(user_id, exchange)
            # retry users that failed (e.g. credentials added since)
            for user_id, exchange in sorted(set(self.tracking.failures) & want):
                self.tracking.failures.pop((user_id, exchange), None)
                await self.tracking.start(user_id, exchange)

    async def rescan_symbols(self) -> None:
        for (user_id, exchange), tracker in list(self.tracking.trackers.items()):
            watch = await self._decode_set(self.store.keys.watchlist(user_id, exchange))
            await tracker.set_watchlist(watch)

    # -- the API ---------------------------------------------------------------------------------------
    async def activate(self, user_id: str, exchanges: list[str]) -> None:
        keys = self.store.keys
        pipe = self.store.redis.pipeline(transaction=True)
        # the bot's own keys (bot:status, bot:exchanges) are read, never written: they steer the bots
        pipe.sadd(keys.active_users(), user_id)
        pipe.srem(keys.deactivated_users(), user_id)
        pipe.delete(keys.tracked_exchanges(user_id))
        pipe.sadd(keys.tracked_exchanges(user_id), *exchanges)
        await pipe.execute()
        await self.rescan_users()

    async def deactivate(self, user_id: str) -> bool:
        keys = self.store.keys
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.srem(keys.active_users(), user_id)
        pipe.sadd(keys.deactivated_users(), user_id)
        removed, *_ = await pipe.execute()
        await self.rescan_users()
        return bool(removed)

    async def list_active(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for user_id in sorted(await self.active_user_ids()):
            exchanges = sorted(await self.exchanges_of(user_id))
            out.append(
                {
                    "user_id": user_id,
                    "exchanges": exchanges,
                    "tracked": sorted(ex for ex in exchanges if self.tracking.get(user_id, ex)),
                }
            )
        return out
