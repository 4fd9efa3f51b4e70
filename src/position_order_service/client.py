"""The seed's Python client: subscribe to the service's events with typed callbacks, and replay gaps.

    pubsub = PubSubManager(redis)
    await pubsub.start()
    await pubsub.subscribe_to_positions("user123", "okx", "BTC-USDT-SWAP", on_position)
    ...
    await pubsub.stop()

Pub/Sub loses what is published while a subscriber is away; every user event also sits in the user's stream
under an increasing `seq`. The manager keeps, per user, the last seq it delivered, and (`track_gaps`, on by
default) fills every gap from the stream before the next live event: a jump in seq, a reconnect after a Redis
restart, or after Redis dropped the subscriber for falling behind (its pubsub output-buffer limit). The
connection comes back by itself (backoff with jitter), its channels are subscribed again, and no event reaches
a callback twice. `replay(user_id, from_seq)` reads a user's stream (`from_seq` 0 or 1 = from the oldest kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from .aio import spawn
from .domain.events import (
    BaseEvent,
    ConditionalRuleEvent,
    OrderEvent,
    PositionEvent,
    PriceEvent,
    TrailingStopEvent,
    parse_event,
)
from .store.connection import is_cluster_client
from .store.keys import Channels, Keys

log = logging.getLogger(__name__)

Callback = Callable[[Any], Awaitable[None] | None]
DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError)
REPLAY_PAGE = 1000


class PubSubManager:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "",
        track_gaps: bool = True,
        reconnect_max_s: float = 5.0,
    ) -> None:
        self.redis = redis
        # on a Redis Cluster client the event streams carry the user's hash tag (store/keys.py)
        self.keys = Keys(prefix=prefix, cluster_tags=is_cluster_client(redis))
        self.channels = Channels(prefix=prefix)
        self.track_gaps = track_gaps
        self.reconnect_max_s = reconnect_max_s
        self.reconnects = 0
        self._callbacks: dict[str, list[tuple[type[BaseEvent], Callback]]] = {}
        self._users: dict[str, str | None] = {}  # channel -> the user whose stream backs it (None: prices)
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_seq: dict[str, int] = {}  # per user: the last seq delivered (or skipped as not ours)
        self._delivery = (
            asyncio.Lock()
        )  # live events and replays reach the callbacks one at a time, in seq order
        self._subscribing = asyncio.Lock()
        self._has_channels = asyncio.Event()
        self._reconnected = False

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._pubsub = self.redis.pubsub()
        self._task = spawn(self._run(), name="pubsub-manager")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a connection Redis already dropped
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    # -- subscriptions ------------------------------------------------------------------------------------
    async def _subscribe(
        self, channel: str, cls: type[BaseEvent], callback: Callback, user_id: str | None
    ) -> None:
        if self._pubsub is None:
            raise RuntimeError("call start() before subscribing")
        first = channel not in self._callbacks
        if user_id is not None and user_id not in self._last_seq:
            # where this user's stream is now: what comes after it is ours, live or replayed
            self._last_seq[user_id] = await self._newest_seq(user_id)
        self._callbacks.setdefault(channel, []).append((cls, callback))
        self._users[channel] = user_id
        if first:
            async with self._subscribing:
                try:
                    await self._pubsub.subscribe(channel)
                    self._watch(self._pubsub)
                except DISCONNECTS as exc:  # the listener resubscribes every channel when Redis is back
                    log.warning("subscribe to %s deferred: Redis unreachable (%s)", channel, exc)
            self._has_channels.set()
        if user_id is not None and self.track_gaps:
            async with self._delivery:
                await self._fill(user_id)  # anything written between the stream read and the subscription

    async def subscribe_to_positions(
        self, user_id: str, exchange: str, symbol: str, callback: Callable[[PositionEvent], Any]
    ) -> None:
        channel = self.channels.positions(user_id, exchange, symbol)
        await self._subscribe(channel, PositionEvent, callback, user_id)

    async def subscribe_to_orders(
        self, user_id: str, exchange: str, callback: Callable[[OrderEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.orders(user_id, exchange), OrderEvent, callback, user_id)

    async def subscribe_to_prices(
        self, exchange: str, symbol: str, callback: Callable[[PriceEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.prices(exchange, symbol), PriceEvent, callback, None)

    async def subscribe_to_trailing_stops(
        self, user_id: str, callback: Callable[[TrailingStopEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.trailing_stops(user_id), TrailingStopEvent, callback, user_id)

    async def subscribe_to_conditional_rules(
        self, user_id: str, callback: Callable[[ConditionalRuleEvent], Any]
    ) -> None:
        channel = self.channels.conditional_rules(user_id)
        await self._subscribe(channel, ConditionalRuleEvent, callback, user_id)

    async def unsubscribe(self, channel: str) -> None:
        self._callbacks.pop(channel, None)
        self._users.pop(channel, None)
        if self._pubsub is not None:
            with contextlib.suppress(*DISCONNECTS):
                await self._pubsub.unsubscribe(channel)

    # -- the stream ---------------------------------------------------------------------------------------
    async def replay(
        self, user_id: str, from_seq: int, to_seq: int | None = None, count: int = REPLAY_PAGE
    ) -> list[BaseEvent]:
        """Events of a user with from_seq <= seq (<= to_seq), oldest first, from the user's stream (at most
        `count`). from_seq 0 or 1: from the oldest event the stream keeps (EVENT_STREAM_RETENTION)."""
        start = f"{max(from_seq, 1)}-0"
        end = f"{to_seq}-1" if to_seq is not None else "+"
        entries: Any = await self.redis.xrange(self.keys.event_stream(user_id), start, end, count=count)
        return [parse_event(orjson.loads(fields[b"data"])) for _, fields in entries or []]

    async def _newest_seq(self, user_id: str) -> int:
        newest: Any = await self.redis.xrevrange(self.keys.event_stream(user_id), count=1)
        return int(newest[0][0].split(b"-")[0]) if newest else 0

    async def _fill(self, user_id: str, before: int | None = None) -> None:
        """Deliver the user's events after the last one delivered (and before `before`). Call with the
        delivery lock held."""
        last = self._last_seq.get(user_id, 0)
        if before is None and await self._newest_seq(user_id) < last:
            log.warning("the event stream of %s starts again (Redis lost its data): replaying it", user_id)
            last = self._last_seq[user_id] = 0
        while before is None or last + 1 < before:
            page = await self.replay(user_id, last + 1, None if before is None else before - 1)
            if not page:
                return
            for event in page:
                if event.seq is None or event.seq <= last:
                    continue
                last = self._last_seq[user_id] = event.seq
                channel = self._channel_of(event)
                if channel is not None and channel in self._callbacks:
                    await self._deliver(channel, event)
            if len(page) < REPLAY_PAGE:
                return

    async def _deliver(self, channel: str, event: BaseEvent) -> None:
        for cls, callback in list(self._callbacks.get(channel, [])):
            typed = event if isinstance(event, cls) else cls.model_validate(event.model_dump())
            try:
                result = callback(typed)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event callback failed on %s", channel)

    def _channel_of(self, e: BaseEvent) -> str | None:
        if isinstance(e, PositionEvent) and e.user_id and e.exchange:
            return self.channels.positions(e.user_id, e.exchange, e.symbol)
        if isinstance(e, OrderEvent) and e.user_id and e.exchange:
            return self.channels.orders(e.user_id, e.exchange)
        if isinstance(e, TrailingStopEvent) and e.user_id:
            return self.channels.trailing_stops(e.user_id)
        if isinstance(e, ConditionalRuleEvent) and e.user_id:
            return self.channels.conditional_rules(e.user_id)
        return None

    # -- live events ----------------------------------------------------------------------------------------
    async def _handle(self, channel: str, data: Any) -> None:
        try:
            event = parse_event(orjson.loads(data))
        except Exception:
            log.warning("undecodable event on %s", channel)
            return
        user = self._users.get(channel)
        if user is None or event.seq is None:  # prices: no seq, nothing to replay
            await self._deliver(channel, event)
            return
        async with self._delivery:
            if self.track_gaps and event.seq > self._last_seq.get(user, 0) + 1:
                await self._fill(user, before=event.seq)
            if event.seq <= self._last_seq.get(user, 0):
                return  # already delivered (from a replay)
            self._last_seq[user] = event.seq
            await self._deliver(channel, event)

    def _watch(self, pubsub: PubSub) -> None:
        """Be told when redis-py reconnects this pubsub by itself (it resubscribes; we fill the gap)."""
        if pubsub.connection is not None:
            pubsub.connection.register_connect_callback(self._on_reconnect)

    def _on_reconnect(self, connection: AbstractConnection) -> None:
        self._reconnected = True

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except DISCONNECTS as exc:
                log.warning("event subscription lost (%s): reconnecting", exc)
                await self._reconnect()

    async def _listen(self) -> None:
        while True:
            pubsub = self._pubsub
            if pubsub is None or not self._callbacks:
                self._has_channels.clear()
                await self._has_channels.wait()
                continue
            if not pubsub.subscribed or pubsub.connection is None:
                raise RedisConnectionError("not subscribed")  # a subscription deferred while Redis was down
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if self._reconnected:
                self._reconnected = False
                self.reconnects += 1
                await self._fill_all()
            if msg is None or msg.get("type") not in ("message", b"message"):
                continue
            raw = msg["channel"]
            await self._handle(raw.decode() if isinstance(raw, bytes) else raw, msg["data"])

    async def _reconnect(self) -> None:
        """A new connection with every channel subscribed again, then the gaps filled from the streams."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(DISCONNECTS),
            wait=wait_random_exponential(multiplier=0.05, max=self.reconnect_max_s),
        ):
            with attempt:
                async with self._subscribing:
                    old, self._pubsub = self._pubsub, self.redis.pubsub()
                    if old is not None:
                        with contextlib.suppress(Exception):
                            await old.aclose()  # type: ignore[no-untyped-call]
                    channels = list(self._callbacks)
                    if channels:
                        await self._pubsub.subscribe(*channels)
                        self._watch(self._pubsub)
                await self._fill_all()
        self.reconnects += 1
        self._reconnected = False

    async def _fill_all(self) -> None:
        if not self.track_gaps:
            return
        async with self._delivery:
            for user in sorted({u for u in self._users.values() if u is not None}):
                await self._fill(user)
