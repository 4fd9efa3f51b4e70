"""The gateway's streams: orders, fills, positions, tickers and mark prices, either from our own parsing of
pushes (``pushes="ours"``: feeds filled by the venue's push handlers, kept alive by ccxt.pro subscriptions, see
:mod:`.push_streams`) or from ccxt.pro's parsed results (``pushes="ccxt"``: merged watch calls, see
:mod:`.streams`, mapped by the shared payload rules). A dropped socket raises StreamDisconnected once; the next
call reconnects. Updates during the gap are not replayed: reconcile.

With our own parsing, the consumer of a private stream may divert its batches (:meth:`CcxtStreams.divert`):
they are then handed to its callback from inside the push handler, and the watch call returns only what could
not take that path (a batch behind a drop, or one that needs an awaited step first: the size of a fired
close-all algo, OKX's algo read-back, Binance's leverages not loaded yet) and raises the drops as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..domain.market import FillReport, MarketInfo, PriceTick
from ..domain.models import Order, Position
from .base import GatewayError, SocketsPending
from .ccxt_factory import paced_sockets
from .ccxt_venue import CcxtVenue, FeedKind, PushParsing, feed_key
from .errors import map_ccxt_error
from .push_streams import Feed, Sink, Subscription
from .streams import MergedStream

_CONFLATED = ("ticker", "mark")
_LOOK_AGAIN_S = (0.05, 2.0)  # first and longest interval between two looks at the private sockets
_DIVERTIBLE: dict[str, FeedKind] = {
    "watch_orders": "orders",
    "watch_fills": "fills",
    "watch_positions": "positions",
}


class CcxtStreams(CcxtVenue):
    """The watch_* half of the gateway (the REST half is :class:`~.ccxt_base.CcxtGateway`)."""

    def __init__(self, user_id: str, pushes: PushParsing, secrets: tuple[str, ...]) -> None:
        super().__init__(user_id, pushes)
        self._secrets = secrets
        self._streams: dict[str, MergedStream] = {}  # pushes="ccxt"
        self._subscriptions: dict[str, Subscription] = {}  # pushes="ours"
        self._feeds: dict[str, Feed[Any]] = {}
        self._sinks: dict[str, Sink] = {}  # feed key -> a consumer's diverted path (see divert)
        self._credentials_checked = False

    async def _ready(self) -> Any:
        raise NotImplementedError

    def _built_client(self) -> Any:
        """The ccxt.pro client if it has been built (None: not yet), without building it."""
        raise NotImplementedError

    async def fetch_position_mode(self) -> bool:
        raise NotImplementedError

    async def _private_stream_ready(self) -> Any:
        client = await self._ready()
        if self.check_credentials_before_streams and not self._credentials_checked:
            await self.fetch_position_mode()
            self._credentials_checked = True
        return client

    async def streams_ready(self, within_s: float) -> bool:
        """True once the private sockets are open (the watches subscribe on them right after), waiting up to
        `within_s`: an account takes its first snapshot then, so the stream shows whatever follows it.

        A socket being opened (held at the connection pacer, say) is waited for on its client's `connected`
        future: this wakes when it opens, not 20 times a second, and looks again every 2 s (ccxt replaces the
        client of a failed attempt, whose future never resolves). With no socket under way (no watch yet, or
        one between a failed attempt and the next) it looks again less and less often."""
        client = await self._ready()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        step = _LOOK_AGAIN_S[0]
        while True:
            sockets = list((getattr(client, "clients", None) or {}).values())
            private = [ws for ws in sockets if _private_url(str(getattr(ws, "url", "")))]
            if private and all(
                getattr(ws, "isConnected", False) and not getattr(ws, "connecting", False) for ws in private
            ):
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            opening = [
                f
                for ws in private
                if isinstance(f := getattr(ws, "connected", None), asyncio.Future) and not f.done()
            ]
            # looked at again after a while all the same: a failed attempt leaves its future pending for good
            if opening:
                await asyncio.wait(opening, timeout=min(left, _LOOK_AGAIN_S[1]))
            else:
                await asyncio.sleep(min(step, left))
                step = min(step * 2, _LOOK_AGAIN_S[1])

    def sockets_pending(self) -> SocketsPending:
        """The private sockets not open yet: where those waiting at our connection pacer stand in its queue, and
        when the earliest of them ever attempted was first attempted (the venue or the network has had it
        since; a socket waiting again after a failed attempt counts as attempted)."""
        client = self._built_client()
        paced = paced_sockets(client)
        if paced is None:
            return SocketsPending()
        not_open = [
            url
            for url, ws in list((getattr(client, "clients", None) or {}).items())
            if _private_url(str(url))
            and not (getattr(ws, "isConnected", False) and not getattr(ws, "connecting", False))
        ]
        attempted = [t for url in not_open if (t := paced.first_attempt(url)) is not None]
        return SocketsPending(paced.queue(not_open), min(attempted, default=None))

    def wants(self, key: str) -> bool:
        """Whether someone watches what a push handler would emit under ``key`` (else it can skip parsing)."""
        return key in self._feeds

    def emit(self, key: str, items: list[Any]) -> None:
        """Called by the venue's push handlers with the domain objects one frame produced."""
        feed = self._feeds.get(key)
        if feed is not None and items:
            feed.put(items)

    def divert(self, method: str, take: Callable[[list[Any]], None]) -> Callable[[], None] | None:
        """Hand the batches ``method`` (``watch_orders``, ``watch_fills``, ``watch_positions``) would return to
        ``take`` as they are parsed, while its caller waits in that method; None when this gateway cannot
        (ccxt's parsing). Returns the undo."""
        kind = _DIVERTIBLE.get(method)
        if kind is None or self.pushes != "ours":
            return None
        ready = self._divert_ready(kind)

        def sink(items: list[Any]) -> bool:
            if not ready(items):
                return False
            take(items)
            return True

        self._sinks[kind] = sink
        feed = self._feeds.get(kind)
        if feed is not None:
            feed.set_sink(sink)

        def undo() -> None:
            if self._sinks.get(kind) is sink:
                del self._sinks[kind]
                found = self._feeds.get(kind)
                if found is not None:
                    found.set_sink(None)

        return undo

    def _divert_ready(self, kind: FeedKind) -> Callable[[list[Any]], bool]:
        """Whether a batch may skip the awaited steps of its watch method (they would do nothing for it)."""
        if kind == "orders":
            return lambda orders: not self.orders_need_reads(orders)
        if kind == "positions":
            return lambda _positions: self.positions_prepared()
        return lambda _items: True

    def _feed(self, kind: FeedKind, market: MarketInfo | None) -> Feed[Any]:
        key = feed_key(kind, None if market is None else market.symbol)
        feed = self._feeds.get(key)
        if feed is None:
            subs = []
            for name, watch in self.push_subscriptions(kind, market):
                sub = self._subscriptions.get(name)
                if sub is None:
                    sub = self._subscriptions[name] = Subscription(name, watch)
                subs.append(sub)
            feed = self._feeds[key] = Feed(subs, conflate=kind in _CONFLATED)
            feed.set_sink(self._sinks.get(key))
        return feed

    def _ccxt_stream(self, kind: FeedKind, market: MarketInfo | None) -> MergedStream:
        key = feed_key(kind, None if market is None else market.symbol)
        stream = self._streams.get(key)
        if stream is None:
            sources = self.ccxt_sources(kind, market)
            stream = self._streams[key] = MergedStream(sources, conflate=kind in _CONFLATED)
        return stream

    async def _watch(self, kind: FeedKind, market: MarketInfo | None = None) -> list[Any]:
        """The next batch of ``kind`` (waits for at least one item); StreamDisconnected after a drop."""
        while True:
            try:
                if self.pushes == "ours":
                    return await self._feed(kind, market).next()
                batches = await self._ccxt_stream(kind, market).next()
            except asyncio.CancelledError:
                raise
            except GatewayError:
                raise
            except Exception as exc:
                raise map_ccxt_error(exc, stream=True, secrets=self._secrets) from exc
            items = self._from_ccxt(kind, batches, market)
            if items:
                return items

    async def watch_orders(self) -> list[Order]:
        await self._private_stream_ready()
        orders: list[Order] = await self._watch("orders")
        return await self.after_orders(orders)

    async def watch_positions(self) -> list[Position]:
        await self._private_stream_ready()
        await self.prepare_positions(None, snapshot=False)
        positions: list[Position] = await self._watch("positions")
        return positions

    async def watch_fills(self) -> list[FillReport]:
        await self._private_stream_ready()
        fills: list[FillReport] = await self._watch("fills")
        return fills

    async def watch_ticker(self, symbol: str) -> PriceTick:
        await self._ready()
        ticks: list[PriceTick] = await self._watch("ticker", self.market(symbol))
        return ticks[-1]

    async def watch_mark_price(self, symbol: str) -> PriceTick:
        await self._ready()
        ticks: list[PriceTick] = await self._watch("mark", self.market(symbol))
        return ticks[-1]

    async def _close_streams(self) -> None:
        streams = list(self._streams.values())
        subscriptions = list(self._subscriptions.values())
        self._streams.clear()
        self._subscriptions.clear()
        self._feeds.clear()
        for s in streams:
            await s.close()
        for sub in subscriptions:
            await sub.close()


def _private_url(url: str) -> bool:
    """An account socket: OKX /ws/v5/private and /ws/v5/business, Binance /private/ws?listenKey=..."""
    return "/private" in url or "/business" in url or "listenKey=" in url
