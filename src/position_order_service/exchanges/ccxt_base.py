"""The shared ccxt gateway: one user's account on a ccxt.pro venue, behind the ExchangeGateway port.

Venue packages (``okx``, ``binance``) subclass :class:`CcxtGateway`. What differs between venues is an
override or a declared capability on the subclass, never a condition on the exchange here. Markets come from
the shared :class:`MarketRegistry` (loaded once per venue, handed to each client by reference). Sizes are base
currency at this port; a venue converts to its wire unit in its own order params and parsers.

Behaviour worth knowing:
- ``create_order`` returns the accepted order; when the venue's reply carries no order state (OKX replies with
  ids only) the status is ``open`` and ``metadata.state_unknown`` says so. Fills arrive by
  ``watch_orders``/``watch_fills``. A network error or timeout raises ExchangeUnavailable: the outcome is
  unknown, resolve it with ``fetch_order(symbol, client_order_id=...)``, never by sending again.
- Algo orders (stop_market, stop_loss, stop_limit, take_profit, trigger, trailing_stop) go to the venue's algo
  API; ``fetch_order``/``cancel_order`` look in both books when the kind is not given, and
  ``fetch_open_orders``/``watch_orders`` include algo orders.
- Hedge mode: ``OrderRequest.position_side`` is sent as the venue's position side (and reduceOnly dropped, the
  venues refuse it there). Without it, a hedged account (``hedged=True``, or detected once) gets the side
  derived from the order: opening buy -> long; reduce-only/protective sell -> long.
- Streams: a dropped socket raises StreamDisconnected once, the next call reconnects. Updates during the gap
  are not replayed: reconcile.

Pushes become domain objects one of two ways (``pushes``):
- ``"ours"`` (the default, the hot path): the venue client's push tap hands each frame of the channels we parse
  to the venue's push handlers, which build Orders, FillReports, Positions and PriceTicks from the decoded
  frame (Decimals from its strings); ccxt.pro keeps connecting, logging in, pinging, reconnecting and
  re-subscribing (see :mod:`.push_streams`).
- ``"ccxt"``: ccxt.pro parses and caches the frames and the gateway maps the raw ``info`` of ccxt's results.
  Kept so that the equivalence tests can run both paths on the same frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from ..domain.enums import Exchange, OrderSide, OrderStatus, OrderType, PositionSide
from ..domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ..domain.models import Order, Position
from .base import Credentials, ExchangeUnavailable, GatewayError, InvalidOrder, OrderNotFound
from .common import ClientIdRule, build_order, dec, ms_to_dt, utc_now
from .errors import ccxt_error_for_code, map_ccxt_error
from .markets import MarketRegistry, MarketTable, UnknownSymbol
from .push_streams import Feed, PushHandler, Subscription, Watch
from .streams import MergedStream

log = logging.getLogger(__name__)

PushParsing = Literal["ours", "ccxt"]
FeedKind = Literal["orders", "fills", "positions", "ticker", "mark"]
_PROTECTIVE = (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP)
_CONFLATED = ("ticker", "mark")

_shared_registry: MarketRegistry | None = None


def shared_registry() -> MarketRegistry:
    """The process-wide registry used when a gateway is built without one."""
    global _shared_registry
    if _shared_registry is None:
        _shared_registry = MarketRegistry()
    return _shared_registry


def feed_key(kind: FeedKind, symbol: str | None = None) -> str:
    """The key a push handler emits under: ``orders``, ``fills``, ``positions``, ``ticker:<id>``, ``mark:<id>``."""
    return kind if symbol is None else f"{kind}:{symbol}"


class CcxtGateway:
    """The :class:`~.base.ExchangeGateway` for one user's account on a ccxt.pro venue (subclassed per venue)."""

    exchange: Exchange  # set by each venue class
    client_ids: ClassVar[ClientIdRule]
    # -- capabilities a venue declares
    # ccxt params of each fetch_open_orders call that together list regular and algo orders
    open_order_queries: ClassVar[tuple[Mapping[str, Any], ...]] = ({}, {"trigger": True})
    # extra ccxt params of set_leverage
    leverage_params: ClassVar[Mapping[str, Any]] = {}
    # the private stream opens without a signature, so bad credentials must be caught by a signed call first
    check_credentials_before_streams: ClassVar[bool] = False

    def __init__(
        self,
        user_id: str,
        credentials: Credentials | None,
        base_url: str = "",
        registry: MarketRegistry | None = None,
        hedged: bool | None = None,
        *,
        timeout_ms: int = 10_000,
        pushes: PushParsing = "ours",
    ) -> None:
        self.user_id = user_id
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._registry = registry if registry is not None else shared_registry()
        self._hedged = hedged
        self._timeout_ms = timeout_ms
        self.pushes: PushParsing = pushes
        self._client: Any = None
        self._table: MarketTable | None = self._registry.get(self.exchange, self._base_url)
        self._streams: dict[str, MergedStream] = {}  # pushes="ccxt"
        self._subscriptions: dict[str, Subscription] = {}  # pushes="ours"
        self._feeds: dict[str, Feed[Any]] = {}
        self._credentials_checked = False
        self._net_sides: dict[str, PositionSide] = {}  # one-way mode: the side last seen open per symbol
        self._secrets = () if credentials is None else (credentials.secret, credentials.passphrase)
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(user={self.user_id!r}, base_url={self._base_url!r}, pushes={self.pushes})"
        )

    # ================================================================== what a venue provides

    @classmethod
    def make_client(
        cls,
        base_url: str,
        api_key: str = "",
        secret: str = "",
        passphrase: str = "",
        *,
        timeout_ms: int = 10_000,
        hedged: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """The venue's ccxt.pro client (with its push tap); ``base_url`` empty = the real exchange."""
        raise NotImplementedError

    @classmethod
    def market_info(cls, ccxt_market: Mapping[str, Any]) -> MarketInfo | None:
        """The domain view of one ccxt market; None for one the service does not trade."""
        raise NotImplementedError

    def configure_client(self, client: Any) -> None:
        """Adjust a freshly made client for this gateway (options, and for ``pushes="ours"`` the tap's
        handlers: see :meth:`push_routes`)."""
        if self.pushes == "ours":
            client.push_handlers.update(self.push_routes())

    def payload_symbol(self, info: dict[str, Any]) -> str | None:
        """The native symbol a payload names (OKX ``instId``, Binance ``s``/``symbol``)."""
        raise NotImplementedError

    def parse_order(self, info: dict[str, Any], market: MarketInfo) -> Order:
        """A regular or algo order payload (REST answer, ccxt ``info`` or push entry)."""
        raise NotImplementedError

    def parse_fill(self, info: dict[str, Any], market: MarketInfo) -> FillReport | None:
        raise NotImplementedError

    def parse_position(
        self,
        info: dict[str, Any],
        market: MarketInfo,
        side: str | None,
        leverage: Decimal | None,
        event_time: datetime | None,
    ) -> Position | None:
        """A position payload; ``side`` names the side of a flat one-way position, ``leverage`` is the one ccxt
        reported, ``event_time`` the time of the push that carried it."""
        raise NotImplementedError

    def is_net_position(self, info: dict[str, Any]) -> bool:
        """True for a one-way (net) mode position payload."""
        raise NotImplementedError

    def parse_ticker(self, info: dict[str, Any], market: MarketInfo) -> PriceTick:
        raise NotImplementedError

    def parse_mark_price(self, info: dict[str, Any], market: MarketInfo) -> PriceTick:
        raise NotImplementedError

    def parse_balance(self, info: Any) -> dict[str, Decimal]:
        raise NotImplementedError

    def order_params(
        self,
        req: OrderRequest,
        market: MarketInfo,
        quantity: Decimal,
        client_order_id: str,
        side: PositionSide | None,
    ) -> tuple[str, str, str | None, dict[str, Any]]:
        """(ccxt type, amount, price, params) of ``create_order`` for a base-currency ``quantity``."""
        raise NotImplementedError

    def push_routes(self) -> dict[str, PushHandler]:
        """The push tap's handlers for ``pushes="ours"``: route key (OKX channel, Binance event type) -> handler."""
        raise NotImplementedError

    def push_subscriptions(self, kind: FeedKind, market: MarketInfo | None) -> list[tuple[str, Watch]]:
        """For ``pushes="ours"``: the ccxt.pro watch calls that subscribe what a feed needs, each named (feeds
        that need the same channel share it)."""
        raise NotImplementedError

    def ccxt_sources(self, kind: FeedKind, market: MarketInfo | None) -> list[Watch]:
        """For ``pushes="ccxt"``: the ccxt.pro watch calls whose results a stream maps."""
        client = self.client
        if kind == "orders":
            return [client.watch_orders]
        if kind == "fills":
            return [client.watch_my_trades]
        if kind == "positions":
            return [client.watch_positions]
        assert market is not None
        watch = client.watch_ticker if kind == "ticker" else client.watch_mark_price
        return [functools.partial(watch, market.unified)]

    def refused_item(self, info: dict[str, Any]) -> tuple[str, str] | None:
        """(code, message) when a reply that succeeded overall refused the one item sent; None otherwise."""
        return None

    def order_from_reply(self, info: dict[str, Any], market: MarketInfo) -> Order | None:
        """The order an order or cancel reply describes, when the venue reports its state there."""
        return None

    def on_order_accepted(self, exchange_order_id: str, request: OrderRequest) -> None:
        """Remember what the venue will not echo back (Binance: a trailing stop's callback rate)."""

    async def prepare_positions(self, unified: list[str] | None, *, snapshot: bool) -> None:
        """Load what position payloads lack before they are parsed (Binance: leverage per symbol)."""

    async def after_orders(self, orders: list[Order]) -> list[Order]:
        """Orders a batch implies but does not carry (OKX: the trailing algo behind a child order)."""
        return []

    # ================================================================== client and markets

    @property
    def client(self) -> Any:
        """The ccxt.pro client (created on first use, sharing the registry's market table)."""
        if self._client is None:
            if self._closed:
                raise ExchangeUnavailable("the gateway is closed")
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        creds = self._credentials
        args = (
            self._base_url,
            creds.api_key if creds else "",
            creds.secret if creds else "",
            creds.passphrase if creds else "",
        )
        client = self.make_client(*args, timeout_ms=self._timeout_ms, hedged=bool(self._hedged))
        self.configure_client(client)
        if self._table is not None:
            self._table.attach(client)
        return client

    async def load_markets(self) -> dict[str, MarketInfo]:
        table = await self._rest(self._registry.load, self.exchange, self._base_url)
        self._table = table
        if self._client is not None:
            table.attach(self._client)
        return dict(table.markets)

    @property
    def markets(self) -> MarketTable | None:
        return self._table

    def market(self, symbol: str) -> MarketInfo:
        table = self._table or self._registry.get(self.exchange, self._base_url)
        if table is None:
            raise UnknownSymbol(
                f"{self.exchange.value} markets are not loaded yet: await load_markets() first"
            )
        self._table = table
        return table[symbol]

    def market_of(self, symbol: Any, fallback: str | None = None) -> MarketInfo | None:
        """The market of a payload's native symbol (or ``fallback``, a unified one); None when unknown."""
        table = self._table
        if table is None:
            return None
        found = table.get(str(symbol)) if symbol else None
        if found is None and fallback:
            found = table.get(fallback)
        return found

    async def _ready(self) -> Any:
        if self._table is None:
            await self.load_markets()
        return self.client

    async def _rest(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await fn(*args)
        except asyncio.CancelledError:
            raise
        except GatewayError:
            raise
        except Exception as exc:
            raise map_ccxt_error(exc, secrets=self._secrets) from exc

    def _raise_refused(self, client: Any, info: Any) -> None:
        refused = self.refused_item(info) if isinstance(info, dict) else None
        if refused is not None:
            code, message = refused
            raise map_ccxt_error(ccxt_error_for_code(client, code, message), secrets=self._secrets)

    # ================================================================== payloads -> domain (shared rules)

    def order_of(self, info: dict[str, Any], fallback_symbol: str | None = None) -> Order | None:
        market = self.market_of(self.payload_symbol(info), fallback_symbol)
        return None if market is None else self.order_in(info, market)

    def order_in(self, info: dict[str, Any], market: MarketInfo) -> Order | None:
        """An order payload of ``market``; None (logged) when it does not parse."""
        try:
            return self.parse_order(info, market)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping an order payload that does not parse (%s): %s", exc, _brief(info))
            return None

    def fill_of(self, info: dict[str, Any], market: MarketInfo) -> FillReport | None:
        try:
            return self.parse_fill(info, market)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a trade payload that does not parse (%s): %s", exc, _brief(info))
            return None

    def positions_of(
        self,
        info: dict[str, Any],
        market: MarketInfo,
        reported_side: str | None,
        leverage: Decimal | None = None,
        event_time: datetime | None = None,
    ) -> list[Position]:
        """One position payload -> domain positions. ``reported_side`` is the side the payload states (long or
        short; None for a flat one-way position). A flat one-way position closes the side this gateway last
        saw open, or both sides when it never saw one."""
        net = self.is_net_position(info)
        remembered = self._net_sides.get(market.symbol) if net else None
        sides: list[str | None] = [reported_side]
        if net and reported_side is None:
            sides = [remembered.value] if remembered is not None else ["long", "short"]
        out: list[Position] = []
        for side in sides:
            try:
                parsed = self.parse_position(info, market, side, leverage, event_time)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("skipping a position payload that does not parse (%s): %s", exc, _brief(info))
                continue
            if parsed is None:
                continue
            if net:
                if parsed.size > 0:
                    self._net_sides[market.symbol] = parsed.side
                elif remembered is not None and parsed.side is not remembered:
                    continue
            out.append(parsed)
        return out

    def tick_of(self, kind: FeedKind, info: dict[str, Any], market: MarketInfo) -> PriceTick | None:
        try:
            if kind == "mark":
                return self.parse_mark_price(info, market)
            return self.parse_ticker(info, market)
        except (ValueError, KeyError, TypeError) as exc:  # a ticker without a price: wait for the next one
            log.debug("ignoring a %s push without a price: %s", kind, exc)
            return None

    # ---------------------------------------------------------------- ccxt's results -> domain

    def _orders_from_ccxt(self, items: Sequence[Any]) -> list[Order]:
        out: list[Order] = []
        for item in items:
            info = item.get("info") if isinstance(item, dict) else None
            if isinstance(info, dict) and info:
                order = self.order_of(info, item.get("symbol"))
                if order is not None:
                    out.append(order)
        return out

    def _fills_from_ccxt(self, items: Sequence[Any]) -> list[FillReport]:
        out: list[FillReport] = []
        for item in items:
            info = item.get("info") if isinstance(item, dict) else None
            if not isinstance(info, dict) or not info:
                continue
            market = self.market_of(self.payload_symbol(info))
            fill = None if market is None else self.fill_of(info, market)
            if fill is not None:
                out.append(fill)
        return out

    def _positions_from_ccxt(self, pos: dict[str, Any]) -> list[Position]:
        info = pos.get("info") or {}
        market = self.market_of(self.payload_symbol(info), pos.get("symbol"))
        if market is None:
            return []
        side = pos.get("side") if pos.get("side") in ("long", "short") else None
        return self.positions_of(info, market, side, dec(pos.get("leverage")), ms_to_dt(pos.get("timestamp")))

    def _from_ccxt(self, kind: FeedKind, batches: list[Any], market: MarketInfo | None) -> list[Any]:
        if kind == "orders":
            return [o for batch in batches for o in self._orders_from_ccxt(batch)]
        if kind == "fills":
            return [f for batch in batches for f in self._fills_from_ccxt(batch or [])]
        if kind == "positions":
            return [p for batch in batches for pos in batch or [] for p in self._positions_from_ccxt(pos)]
        assert market is not None
        info = batches[-1].get("info") if isinstance(batches[-1], dict) else None
        tick = self.tick_of(kind, info, market) if isinstance(info, dict) else None
        return [] if tick is None else [tick]

    # ================================================================== orders

    async def _position_side(self, req: OrderRequest) -> PositionSide | None:
        if req.position_side is not None:
            return req.position_side
        hedged = self._hedged
        if hedged is None:
            hedged = await self.fetch_position_mode()
        if not hedged:
            return None
        buy = req.side is OrderSide.BUY
        closing = req.reduce_only or req.order_type in _PROTECTIVE
        if closing:  # a closing buy reduces a short
            return PositionSide.SHORT if buy else PositionSide.LONG
        return PositionSide.LONG if buy else PositionSide.SHORT

    async def create_order(self, request: OrderRequest) -> Order:
        client = await self._ready()
        market = self.market(request.symbol)
        qty = market.round_size(request.quantity)
        if qty <= 0 or qty < market.min_size:
            raise InvalidOrder(
                f"quantity {request.quantity} is below the minimum {market.min_size} {market.base} of {market.symbol}"
            )
        req = _on_grid(request, market)
        cid = self.client_ids.apply(req.client_order_id)
        ps = await self._position_side(req)
        ctype, amount, price, params = self.order_params(req, market, qty, cid, ps)
        params.update(req.extra)
        raw = await self._rest(
            client.create_order, market.unified, ctype, req.side.value, amount, price, params
        )
        info = raw.get("info") if isinstance(raw, dict) else None
        self._raise_refused(client, info)
        exchange_id = str(raw.get("id") or "") if isinstance(raw, dict) else ""
        self.on_order_accepted(exchange_id, req)
        if isinstance(info, dict):
            reported = self.order_from_reply(info, market)
            if reported is not None:
                return reported
        return build_order(
            exchange_order_id=exchange_id or None,
            client_order_id=cid,
            user_id=self.user_id,
            exchange=self.exchange,
            symbol=market.symbol,
            side=req.side,
            order_type=req.order_type,
            quantity=qty,
            price=req.price,
            trigger_price=req.trigger_price,
            callback_rate=req.callback_rate,
            status=OrderStatus.OPEN,
            reduce_only=req.reduce_only or (ps is not None and req.side is ps.exit_order_side),
            post_only=req.post_only,
            time_in_force=req.time_in_force,
            position_side=ps,
            metadata={"algo": True, "state_unknown": True}
            if req.order_type.is_algo
            else {"state_unknown": True},
            created_at=utc_now(),
        )

    async def fetch_order(
        self, symbol: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order | None:
        if order_id is None and client_order_id is None:
            raise ValueError("order_id or client_order_id is required")
        client = await self._ready()
        market = self.market(symbol)
        cid = None if client_order_id is None else self.client_ids.apply(client_order_id)
        for algo in (False, True):
            params: dict[str, Any] = {}
            if cid is not None:
                params["clientOrderId"] = cid
            if algo:
                params["trigger"] = True
            try:
                raw = await self._rest(client.fetch_order, order_id or "", market.unified, params)
            except OrderNotFound:
                continue
            info = raw.get("info") if isinstance(raw, dict) else None
            if not isinstance(info, dict) or not info:
                continue  # an empty answer: not in this book
            order = self.order_of(info, market.symbol)
            if order is not None:
                return order
        return None

    async def cancel_order(self, symbol: str, order_id: str, is_algo: bool | None = None) -> Order | None:
        client = await self._ready()
        market = self.market(symbol)
        kinds = (False, True) if is_algo is None else (is_algo,)
        not_found: OrderNotFound | None = None
        for algo in kinds:
            try:
                raw = await self._rest(
                    client.cancel_order, order_id, market.unified, {"trigger": True} if algo else {}
                )
                info = raw.get("info") if isinstance(raw, dict) else None
                self._raise_refused(client, info)
            except OrderNotFound as exc:
                not_found = exc
                continue
            return self.order_from_reply(info, market) if isinstance(info, dict) else None
        raise not_found or OrderNotFound(f"order {order_id} does not exist on {self.exchange.value}")

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        client = await self._ready()
        unified = None if symbol is None else self.market(symbol).unified
        calls = [client.fetch_open_orders(unified, None, None, dict(q)) for q in self.open_order_queries]
        results = await self._rest(_gather, calls)
        seen: set[tuple[bool, str]] = set()
        out: list[Order] = []
        for batch in results:
            for order in self._orders_from_ccxt(batch):
                key = (bool(order.metadata.get("algo")), order.order_id)
                if key not in seen:
                    seen.add(key)
                    out.append(order)
        return out

    # ================================================================== account

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        client = await self._ready()
        unified = None if not symbols else [self.market(s).unified for s in symbols]
        await self.prepare_positions(unified, snapshot=True)
        raw = await self._rest(client.fetch_positions, unified)
        out: list[Position] = []
        for p in raw or []:
            if isinstance(p, dict):
                out.extend(x for x in self._positions_from_ccxt(p) if x.size > 0)
        return out

    async def fetch_balance(self) -> dict[str, Decimal]:
        """Equity (wallet balance + unrealized PnL) per currency."""
        client = await self._ready()
        raw = await self._rest(client.fetch_balance)
        return self.parse_balance(raw.get("info") if isinstance(raw, dict) else None)

    async def fetch_ticker(self, symbol: str) -> PriceTick:
        client = await self._ready()
        market = self.market(symbol)
        raw = await self._rest(client.fetch_ticker, market.unified)
        try:
            return self.parse_ticker((raw.get("info") if isinstance(raw, dict) else None) or {}, market)
        except ValueError as exc:
            raise ExchangeUnavailable(str(exc)) from exc

    async def set_leverage(
        self, symbol: str, leverage: int, position_side: PositionSide | None = None
    ) -> None:
        client = await self._ready()
        market = self.market(symbol)
        await self._rest(client.set_leverage, leverage, market.unified, dict(self.leverage_params))

    async def set_position_mode(self, hedged: bool) -> None:
        client = await self._ready()
        await self._rest(client.set_position_mode, hedged)
        self._set_hedged(hedged)

    async def fetch_position_mode(self) -> bool:
        client = await self._ready()
        raw = await self._rest(client.fetch_position_mode)
        hedged = bool(raw.get("hedged")) if isinstance(raw, dict) else False
        self._set_hedged(hedged)
        return hedged

    def _set_hedged(self, hedged: bool) -> None:
        self._hedged = hedged
        if self._client is not None:
            self._client.options["hedged"] = hedged

    # ================================================================== streams

    async def _private_stream_ready(self) -> Any:
        client = await self._ready()
        if self.check_credentials_before_streams and not self._credentials_checked:
            await self.fetch_position_mode()
            self._credentials_checked = True
        return client

    def wants(self, key: str) -> bool:
        """Whether someone watches what a push handler would emit under ``key`` (else it can skip parsing)."""
        return key in self._feeds

    def emit(self, key: str, items: list[Any]) -> None:
        """Called by the venue's push handlers with the domain objects one frame produced."""
        feed = self._feeds.get(key)
        if feed is not None and items:
            feed.put(items)

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
        return orders + await self.after_orders(orders)

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

    # ================================================================== lifecycle

    async def close(self) -> None:
        self._closed = True
        streams = list(self._streams.values())
        subscriptions = list(self._subscriptions.values())
        self._streams.clear()
        self._subscriptions.clear()
        self._feeds.clear()
        for s in streams:
            await s.close()
        for sub in subscriptions:
            await sub.close()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


async def _gather(calls: list[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*calls))


def _on_grid(req: OrderRequest, market: MarketInfo) -> OrderRequest:
    """Prices already on the tick grid pass unchanged; others are rounded (stops in the safe direction)."""

    def off(p: Decimal | None) -> bool:
        return p is not None and p % market.tick_size != 0

    if not (off(req.price) or off(req.trigger_price) or off(req.activation_price)):
        return req
    protects = PositionSide.LONG if req.side is OrderSide.SELL else PositionSide.SHORT
    trigger = req.trigger_price
    if off(trigger):
        assert trigger is not None
        trigger = (
            market.stop_price(trigger, protects)
            if req.order_type in (OrderType.STOP_LOSS, OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
            else market.round_price(trigger)
        )
    return replace(
        req,
        price=market.round_price(req.price) if off(req.price) and req.price is not None else req.price,
        trigger_price=trigger,
        activation_price=(
            market.round_price(req.activation_price)
            if off(req.activation_price) and req.activation_price is not None
            else req.activation_price
        ),
    )


def _brief(info: dict[str, Any]) -> str:
    text = repr({k: info[k] for k in list(info)[:12]})
    return text[:300]
