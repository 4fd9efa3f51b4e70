"""Prices: one ticker feed and one mark-price feed per (exchange, symbol), shared by everyone who holds it.

In-process listeners (trailing stops, rules, position marks) see every tick at once, as one merged PriceTick
(last, bid, ask from the ticker stream; mark from the mark-price stream). The Redis channel
`prices:{exchange}:{symbol}` gets at most `max_hz` price.updated events per symbol, always ending on the
latest price. A symbol whose feeds have both been silent for `silent_s` is reconnected (the exchange's public
connection is rebuilt) and counted in `price_feed_silent_total{exchange}`; `price_feeds_silent{exchange}`
says how many are silent right now. Feeds run as supervised jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import metrics
from ..aio import Backoff, cancel_requested
from ..domain.events import PriceEvent, dec, envelope
from ..domain.market import PriceTick
from ..exchanges.base import ExchangeGateway
from ..store import Store
from ..supervisor import Job, Supervisor
from .gateways import GatewayProvider

log = logging.getLogger(__name__)

TickListener = Callable[[PriceTick], None]


@dataclass(eq=False)
class _Feed:
    exchange: str
    symbol: str
    holders: set[str] = field(default_factory=set)
    jobs: list[Job] = field(default_factory=list)
    last: PriceTick | None = None  # merged: ticker fields and the latest mark
    mark: PriceTick | None = None
    heard_at: float = field(default_factory=time.monotonic)  # last message of either stream
    last_published: float = 0.0
    pending_flush: asyncio.TimerHandle | None = None
    errors: int = 0
    silent: bool = False


class PriceHub:
    def __init__(
        self,
        store: Store,
        gateways: GatewayProvider,
        supervisor: Supervisor,
        max_hz: float = 4.0,
        *,
        silent_s: float = 60.0,
    ) -> None:
        self.store = store
        self.gateways = gateways
        self.supervisor = supervisor.scope("prices")
        self.min_interval = 1.0 / max_hz if max_hz > 0 else 0.0
        self.silent_s = silent_s
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._listeners: list[TickListener] = []
        self._watchdog: Job | None = None

    def start(self) -> None:
        self._watchdog = self.supervisor.every("silence", max(0.2, self.silent_s / 4), self.check_silence)

    def listen(self, callback: TickListener) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def last(self, exchange: str, symbol: str) -> PriceTick | None:
        feed = self._feeds.get((exchange, symbol))
        return feed.last if feed else None

    def subscriptions(self) -> list[dict[str, object]]:
        return [
            {
                "exchange": f.exchange,
                "symbol": f.symbol,
                "holders": len(f.holders),
                "errors": f.errors,
                "silent": f.silent,
            }
            for f in self._feeds.values()
        ]

    # -- who needs which prices -------------------------------------------------------------------------
    def hold(self, exchange: str, symbol: str, holder: str) -> None:
        """Keep (exchange, symbol) streaming (ticker and mark price) while anyone holds it."""
        key = (exchange, symbol)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(exchange, symbol)
            self._start(feed)
        feed.holders.add(holder)

    def release(self, exchange: str, symbol: str, holder: str) -> None:
        feed = self._feeds.get((exchange, symbol))
        if feed is None:
            return
        feed.holders.discard(holder)
        if not feed.holders:
            del self._feeds[(exchange, symbol)]
            self._stop(feed)

    def _start(self, feed: _Feed) -> None:
        name = f"{feed.exchange}:{feed.symbol}"
        feed.jobs = [
            self.supervisor.spawn(f"{name}:ticker", lambda: self._run(feed, "ticker"), kind="ticker"),
            self.supervisor.spawn(f"{name}:mark", lambda: self._run(feed, "mark"), kind="mark"),
        ]

    def _stop(self, feed: _Feed) -> None:
        if feed.pending_flush:
            feed.pending_flush.cancel()
        for job in feed.jobs:
            job.cancel()
        if feed.silent:
            feed.silent = False
            self._count_silent(feed.exchange)

    async def close(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        for f in feeds:
            self._stop(f)
        await self.supervisor.stop()

    # -- ticks ------------------------------------------------------------------------------------------
    def ingest(self, tick: PriceTick) -> None:
        """A ticker tick (from the stream, or pushed by a test or another source)."""
        feed = self._feeds.get((tick.exchange, tick.symbol))
        if feed is not None:
            if tick.mark is None and feed.mark is not None:
                tick = dataclasses.replace(tick, mark=feed.mark.mark)
            feed.last = tick
            self._heard(feed)
        self._notify(tick)
        if feed is not None:
            self._maybe_publish(feed)

    def ingest_mark(self, tick: PriceTick) -> None:
        """A mark-price tick: merged into the symbol's last tick (listeners hear it once a ticker exists)."""
        feed = self._feeds.get((tick.exchange, tick.symbol))
        if feed is None:
            return
        feed.mark = tick
        self._heard(feed)
        if feed.last is not None:
            feed.last = dataclasses.replace(
                feed.last, mark=tick.mark, timestamp=max(feed.last.timestamp, tick.timestamp)
            )
            self._notify(feed.last)

    def _notify(self, tick: PriceTick) -> None:
        for listener in list(self._listeners):
            try:
                listener(tick)
            except Exception:
                log.exception("price listener failed", extra={"symbol": tick.symbol})

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
        if tick is not None:
            self.supervisor.spawn(f"{feed.exchange}:{feed.symbol}:publish", lambda: self._publish(tick),
                                  kind="publish", restart=False)  # fmt: skip

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
        fields = {"price": dec(tick.last) or "", "timestamp": tick.timestamp.isoformat()}
        if tick.bid is not None:
            fields["bid"] = dec(tick.bid) or ""
        if tick.ask is not None:
            fields["ask"] = dec(tick.ask) or ""
        try:
            await self.store.prices.publish(tick.exchange, tick.symbol, fields, payload)
        except Exception:  # the next tick publishes again; a price event is not state
            log.warning("could not publish price", extra={"symbol": tick.symbol}, exc_info=True)

    async def _run(self, feed: _Feed, kind: str) -> None:
        backoff = Backoff()
        while True:
            try:
                gateway = await self.gateways.public(feed.exchange)
                watch: Callable[[str], Awaitable[PriceTick]] = _watcher(gateway, kind)
                tick = await watch(feed.symbol)
                backoff.reset()
                if kind == "ticker":
                    self.ingest(tick)
                else:
                    self.ingest_mark(tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                feed.errors += 1
                log.warning("%s stream %s:%s failed: %s", kind, feed.exchange, feed.symbol, exc,
                            extra={"symbol": feed.symbol})  # fmt: skip
                await backoff.sleep()

    # -- silence ------------------------------------------------------------------------------------------
    async def check_silence(self) -> None:
        """Feeds silent longer than `silent_s`: counted, and their exchange's public connection rebuilt (the
        feed stays flagged silent until it is heard again)."""
        now = time.monotonic()
        reconnect: set[str] = set()
        for feed in list(self._feeds.values()):
            if now - feed.heard_at > self.silent_s:
                metrics.price_feed_silent.labels(exchange=feed.exchange).inc()
                log.warning("price feed %s:%s silent for %.0f s: reconnecting", feed.exchange, feed.symbol,
                            now - feed.heard_at)  # fmt: skip
                feed.silent = True
                feed.heard_at = now  # the new connection gets its own silent_s
                reconnect.add(feed.exchange)
        for exchange in reconnect:
            self._count_silent(exchange)
            await self.gateways.reset_public(exchange)
            for feed in list(self._feeds.values()):
                if feed.exchange == exchange:
                    for job in feed.jobs:
                        job.cancel()
                    self._start(feed)

    def _heard(self, feed: _Feed) -> None:
        feed.heard_at = time.monotonic()
        if feed.silent:
            feed.silent = False
            self._count_silent(feed.exchange)

    def _count_silent(self, exchange: str) -> None:
        n = sum(1 for f in self._feeds.values() if f.exchange == exchange and f.silent)
        metrics.price_feeds_silent_now.labels(exchange=exchange).set(n)


def _watcher(gateway: ExchangeGateway, kind: str) -> Callable[[str], Awaitable[PriceTick]]:
    return gateway.watch_ticker if kind == "ticker" else gateway.watch_mark_price
