"""Prices: one ticker stream per (exchange, symbol) shared by every user who needs it.

In-process listeners (trailing stops, position marks) see every tick at once; the Redis channel
`prices:{exchange}:{symbol}` gets at most `max_hz` events per symbol, always ending on the latest price.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..aio import cancel_all, cancel_requested
from ..domain.events import PriceEvent, dec, envelope
from ..domain.market import PriceTick
from ..exchanges.base import GatewayError
from ..store import Store
from .gateways import GatewayProvider

log = logging.getLogger(__name__)

TickListener = Callable[[PriceTick], None]


@dataclass
class _Feed:
    exchange: str
    symbol: str
    holders: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    last: PriceTick | None = None
    last_published: float = 0.0
    pending_flush: asyncio.TimerHandle | None = None
    errors: int = 0


class PriceHub:
    def __init__(self, store: Store, gateways: GatewayProvider, max_hz: float = 4.0) -> None:
        self.store = store
        self.gateways = gateways
        self.min_interval = 1.0 / max_hz if max_hz > 0 else 0.0
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._listeners: list[TickListener] = []
        self._publish_tasks: set[asyncio.Task[None]] = set()

    def listen(self, callback: TickListener) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def last(self, exchange: str, symbol: str) -> PriceTick | None:
        feed = self._feeds.get((exchange, symbol))
        return feed.last if feed else None

    def subscriptions(self) -> list[dict[str, object]]:
        return [
            {"exchange": f.exchange, "symbol": f.symbol, "holders": len(f.holders), "errors": f.errors}
            for f in self._feeds.values()
        ]

    async def hold(self, exchange: str, symbol: str, holder: str) -> None:
        """Keep (exchange, symbol) streaming while anyone holds it."""
        key = (exchange, symbol)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(exchange, symbol)
            feed.task = asyncio.create_task(self._run(feed), name=f"prices:{exchange}:{symbol}")
        feed.holders.add(holder)

    async def release(self, exchange: str, symbol: str, holder: str) -> None:
        feed = self._feeds.get((exchange, symbol))
        if feed is None:
            return
        feed.holders.discard(holder)
        if not feed.holders:
            del self._feeds[(exchange, symbol)]
            await self._stop(feed)

    async def _stop(self, feed: _Feed) -> None:
        if feed.pending_flush:
            feed.pending_flush.cancel()
        await cancel_all([feed.task])

    async def close(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        for f in feeds:
            await self._stop(f)
        await cancel_all(list(self._publish_tasks))

    def ingest(self, tick: PriceTick) -> None:
        """Take a tick (from a stream, or pushed by a test or another source)."""
        feed = self._feeds.get((tick.exchange, tick.symbol))
        if feed is not None:
            feed.last = tick
        for listener in list(self._listeners):
            try:
                listener(tick)
            except Exception:
                log.exception("price listener failed", extra={"symbol": tick.symbol})
        if feed is not None:
            self._maybe_publish(feed)

    def _maybe_publish(self, feed: _Feed) -> None:
        now = time.monotonic()
        wait = feed.last_published + self.min_interval - now
        if wait <= 0:
            feed.last_published = now
            self._spawn_publish(feed)
        elif feed.pending_flush is None:
            feed.pending_flush = asyncio.get_running_loop().call_later(wait, self._flush, feed)

    def _flush(self, feed: _Feed) -> None:
        feed.pending_flush = None
        feed.last_published = time.monotonic()
        self._spawn_publish(feed)

    def _spawn_publish(self, feed: _Feed) -> None:
        tick = feed.last
        if tick is None:
            return
        task = asyncio.create_task(self._publish(tick))
        self._publish_tasks.add(task)
        task.add_done_callback(self._publish_tasks.discard)

    async def _publish(self, tick: PriceTick) -> None:
        event = {
            "seq": None,
            "event_type": "price.updated",
            **envelope(None, tick.exchange),
            "symbol": tick.symbol,
            "price": dec(tick.last),
            "bid": dec(tick.bid),
            "ask": dec(tick.ask),
            "source": "ticker",
        }
        event["timestamp"] = tick.timestamp.isoformat()
        payload = PriceEvent.model_validate(event).model_dump_json()
        keys, channels = self.store.keys, self.store.channels
        fields = {"price": dec(tick.last) or "", "timestamp": tick.timestamp.isoformat()}
        if tick.bid is not None:
            fields["bid"] = dec(tick.bid) or ""
        if tick.ask is not None:
            fields["ask"] = dec(tick.ask) or ""
        try:
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.hset(keys.last_price(tick.exchange, tick.symbol), mapping=fields)  # type: ignore[arg-type]
            pipe.publish(channels.prices(tick.exchange, tick.symbol), payload)
            await pipe.execute()
        except Exception:
            log.warning("could not publish price", extra={"symbol": tick.symbol}, exc_info=True)

    async def _run(self, feed: _Feed) -> None:
        delay = 0.5
        while True:
            try:
                gateway = await self.gateways.public(feed.exchange)
                tick = await gateway.watch_ticker(feed.symbol)
                delay = 0.5
                self.ingest(tick)
            except asyncio.CancelledError:
                raise
            except (GatewayError, Exception) as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                feed.errors += 1
                log.warning(
                    "price stream %s:%s failed: %s",
                    feed.exchange,
                    feed.symbol,
                    exc,
                    extra={"symbol": feed.symbol},
                )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)
