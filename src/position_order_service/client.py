"""The seed's Python client: subscribe to the service's events with typed callbacks, and replay gaps.

    pubsub = PubSubManager(redis)
    await pubsub.start()
    await pubsub.subscribe_to_positions("user123", "okx", "BTC-USDT-SWAP", on_position)
    ...
    await pubsub.stop()

Pub/Sub loses what is published while a subscriber is away; every user event also sits in the user's stream
under an increasing `seq`. `replay(user_id, from_seq)` reads it back, and with `track_gaps=True` the manager
notices a jump in a user's seq and replays the missing events to the callbacks before the new one.
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
from .store.keys import Channels, Keys

log = logging.getLogger(__name__)

Callback = Callable[[Any], Awaitable[None] | None]


class PubSubManager:
    def __init__(self, redis: Redis, *, prefix: str = "", track_gaps: bool = False) -> None:
        self.redis = redis
        self.keys = Keys(prefix=prefix)
        self.channels = Channels(prefix=prefix)
        self.track_gaps = track_gaps
        self._callbacks: dict[str, list[tuple[type[BaseEvent], Callback]]] = {}
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_seq: dict[str, int] = {}

    async def start(self) -> None:
        if self._pubsub is not None:
            return
        self._pubsub = self.redis.pubsub()
        self._task = spawn(self._listen(), name="pubsub-manager")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def _subscribe(self, channel: str, cls: type[BaseEvent], callback: Callback) -> None:
        if self._pubsub is None:
            raise RuntimeError("call start() before subscribing")
        first = channel not in self._callbacks
        self._callbacks.setdefault(channel, []).append((cls, callback))
        if first:
            await self._pubsub.subscribe(channel)

    async def subscribe_to_positions(
        self, user_id: str, exchange: str, symbol: str, callback: Callable[[PositionEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.positions(user_id, exchange, symbol), PositionEvent, callback)

    async def subscribe_to_orders(
        self, user_id: str, exchange: str, callback: Callable[[OrderEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.orders(user_id, exchange), OrderEvent, callback)

    async def subscribe_to_prices(
        self, exchange: str, symbol: str, callback: Callable[[PriceEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.prices(exchange, symbol), PriceEvent, callback)

    async def subscribe_to_trailing_stops(
        self, user_id: str, callback: Callable[[TrailingStopEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.trailing_stops(user_id), TrailingStopEvent, callback)

    async def subscribe_to_conditional_rules(
        self, user_id: str, callback: Callable[[ConditionalRuleEvent], Any]
    ) -> None:
        await self._subscribe(self.channels.conditional_rules(user_id), ConditionalRuleEvent, callback)

    async def unsubscribe(self, channel: str) -> None:
        self._callbacks.pop(channel, None)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def replay(
        self, user_id: str, from_seq: int, to_seq: int | None = None, count: int = 1000
    ) -> list[BaseEvent]:
        """Events of a user with from_seq <= seq (<= to_seq), oldest first, from the user's stream."""
        start = f"{max(from_seq, 1)}-0"
        end = f"{to_seq}-1" if to_seq is not None else "+"
        entries: Any = await self.redis.xrange(self.keys.event_stream(user_id), start, end, count=count)
        return [parse_event(orjson.loads(fields[b"data"])) for _, fields in entries or []]

    async def _deliver(self, channel: str, event: BaseEvent) -> None:
        for cls, callback in list(self._callbacks.get(channel, [])):
            typed = event if isinstance(event, cls) else cls.model_validate(event.model_dump())
            try:
                result = callback(typed)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event callback failed on %s", channel)

    async def _fill_gap(self, event: BaseEvent) -> None:
        user = event.user_id
        if not self.track_gaps or user is None or event.seq is None:
            return
        last = self._last_seq.get(user)
        self._last_seq[user] = max(event.seq, last or 0)
        if last is None or event.seq <= last + 1:
            return
        # seq counts every event of the user; deliver the missed ones whose channel we listen to
        for missed in await self.replay(user, last + 1, event.seq - 1):
            missed_channel = self._channel_of(missed)
            if missed_channel is not None and missed_channel in self._callbacks:
                await self._deliver(missed_channel, missed)

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

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            if not self._callbacks:
                await asyncio.sleep(0.05)
                continue
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None or msg.get("type") not in ("message", b"message"):
                continue
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
            try:
                event = parse_event(orjson.loads(msg["data"]))
            except Exception:
                log.warning("undecodable event on %s", channel)
                continue
            await self._fill_gap(event)
            await self._deliver(channel, event)
