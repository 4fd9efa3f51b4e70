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
- A close-all algo (OKX closeFraction=1, Binance closePosition) reports no size: a fired one whose report does
  not say what it sent is never handed on as filled with the minimum standing in (``reconcile.SIZE_UNKNOWN``).
  Its size is its child order's: the child's own report when this stream showed it already, else a read of the
  child over REST (retried with backoff); failing that, the algo is handed on still open, claiming no fill, and
  the child's report completes it in the account. On the stream this is an awaited step of the ordered path
  (``after_orders``): pushes behind it wait for it. ``fetch_order`` does the same.

Pushes become domain objects one of two ways (``pushes``):
- ``"ours"`` (the default, the hot path): the venue client's push tap hands each frame of the channels we parse
  to the venue's push handlers, which build Orders, FillReports, Positions and PriceTicks from the decoded
  frame (Decimals from its strings); ccxt.pro keeps connecting, logging in, pinging, reconnecting and
  re-subscribing (see :mod:`.push_streams`).
- ``"ccxt"``: ccxt.pro parses and caches the frames and the gateway maps the raw ``info`` of ccxt's results.
  Kept so that the equivalence tests can run both paths on the same frame.

The class is layered: :class:`~.ccxt_venue.CcxtVenue` (what a venue provides, shared payload rules) <
:class:`~.ccxt_streams.CcxtStreams` (the watch calls) < :class:`CcxtGateway` (client, markets, REST calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar

from ..domain.enums import OrderSide, OrderStatus, OrderType, PositionSide
from ..domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ..domain.models import Order, Position
from ..domain.reconcile import ChildOutcome, close_all_size, needs_size, size_pending
from .base import Credentials, ExchangeUnavailable, GatewayError, InvalidOrder, OrderNotFound
from .ccxt_factory import pace_connections, pacer_for
from .ccxt_streams import CcxtStreams
from .ccxt_venue import FeedKind, PushParsing, feed_key
from .common import build_order, utc_now
from .errors import ccxt_error_for_code, map_ccxt_error
from .markets import MarketRegistry, MarketTable, UnknownSymbol

__all__ = ["CcxtGateway", "FeedKind", "PushParsing", "feed_key", "shared_registry"]

log = logging.getLogger(__name__)

FILL_PAGE = 100  # trades per fetch_my_trades request (OKX's most)
FILL_PAGES = 20  # requests per symbol and call at most
_PROTECTIVE = (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP)
_CHILDREN_KEPT = (
    256  # how the last orders that ended did, by exchange id (a close-all algo's child among them)
)

_shared_registry: MarketRegistry | None = None


def shared_registry() -> MarketRegistry:
    """The process-wide registry used when a gateway is built without one."""
    global _shared_registry
    if _shared_registry is None:
        _shared_registry = MarketRegistry()
    return _shared_registry


class CcxtGateway(CcxtStreams):
    """The :class:`~.base.ExchangeGateway` for one user's account on a ccxt.pro venue (subclassed per venue)."""

    # waits before each read of a fired close-all algo's child order (the first at once): ~1.7 s in all
    child_read_delays_s: ClassVar[tuple[float, ...]] = (0.0, 0.2, 0.5, 1.0)

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
        secrets = () if credentials is None else (credentials.secret, credentials.passphrase)
        super().__init__(user_id, pushes, secrets)
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._registry = registry if registry is not None else shared_registry()
        self._hedged = hedged
        self._timeout_ms = timeout_ms
        self._client: Any = None
        self._table = self._registry.get(self.exchange, self._base_url)
        self._closed = False
        self._done_children: OrderedDict[str, ChildOutcome] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(user={self.user_id!r}, base_url={self._base_url!r}, pushes={self.pushes})"
        )

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
        pace_connections(client, pacer_for(self.exchange, self._base_url), exchange=self.exchange)
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

    def _built_client(self) -> Any:
        return self._client

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
                return await self._sized(order) if needs_size(order) else order
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

    # ================================================================== close-all algos: their size

    def orders_need_reads(self, orders: list[Order]) -> bool:
        self._note_children(orders)
        return any(needs_size(o) for o in orders)

    async def after_orders(self, orders: list[Order]) -> list[Order]:
        if not self.orders_need_reads(orders):
            return orders
        return [await self._sized(o) if needs_size(o) else o for o in orders]

    def _note_children(self, orders: list[Order]) -> None:
        """Orders that ended (a close-all algo's child among them): an algo reported after its child takes the
        child's outcome from here, without a read. Kept small (how each ended, not the order), since any
        order may be a child: Binance's child reports do not name their algo."""
        for o in orders:
            if o.status.is_terminal and not o.metadata.get("algo"):
                oid = o.exchange_order_id
                if oid:
                    self._done_children[oid] = ChildOutcome.of(o)
                    self._done_children.move_to_end(oid)
                    if len(self._done_children) > _CHILDREN_KEPT:
                        self._done_children.popitem(last=False)

    async def _sized(self, algo: Order) -> Order:
        """A fired close-all algo with the size its child order filled (cancelled with nothing filled when the
        child ended without a fill); still open without a fill claim when the child cannot be read or is not
        done yet (its own report completes it in the account)."""
        child_id = algo.metadata.get("child_order_id")
        child = self._done_children.get(str(child_id)) if child_id else None
        if child is None and child_id:
            child = await self._read_child(algo, str(child_id))
        sized = None if child is None else close_all_size(algo, child)
        if sized is not None:
            return sized
        log.warning(
            "%s: close-all algo %s of %s fired, its size is unknown (child order %s not read or not done): "
            "handed on still open, its child's report completes it",
            self.exchange.value, algo.exchange_order_id, self.user_id, child_id,
        )  # fmt: skip
        return size_pending(algo)

    async def _read_child(self, algo: Order, child_id: str) -> ChildOutcome | None:
        """How the child order ended, over REST, retried with backoff; None when it is not done (or not read)."""
        for attempt, delay in enumerate(self.child_read_delays_s, 1):
            if delay:
                await asyncio.sleep(delay)
            try:
                child = await self.fetch_order(algo.symbol, order_id=child_id)
            except GatewayError as exc:
                log.info("%s: reading child order %s of algo %s (attempt %d) failed: %s",
                         self.exchange.value, child_id, algo.exchange_order_id, attempt, exc.reason)  # fmt: skip
                continue
            if child is not None and child.status.is_terminal:
                return ChildOutcome.of(child)
        return None

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

    async def fetch_fills(self, since_ms: int, symbols: Sequence[str] = ()) -> list[FillReport]:
        client = await self._ready()
        targets: list[str | None] = (
            [self.market(s).unified for s in dict.fromkeys(symbols)] if self.fills_need_symbol else [None]
        )
        found: dict[tuple[str, str], FillReport] = {}
        for unified in targets:
            # A full page covers [lo, hi] of the window: the oldest trades from `since` on (Binance) or the
            # newest up to `until` (OKX). What lies on either side of it is asked for again, so the whole
            # window is read whichever end a venue pages from.
            windows: list[tuple[int, int | None]] = [(since_ms, None)]
            pages = 0
            while windows and pages < FILL_PAGES:
                since, until = windows.pop()
                pages += 1
                params = {} if until is None else {"until": until}
                raw = await self._rest(client.fetch_my_trades, unified, since, FILL_PAGE, params)
                rows = [t for t in raw or [] if isinstance(t, dict)]
                for fill in self._rest_fills_from_ccxt(rows):
                    found[(fill.symbol, fill.trade_id)] = fill
                stamps = [int(t["timestamp"]) for t in rows if t.get("timestamp") is not None]
                if len(rows) < FILL_PAGE or not stamps:
                    continue
                lo, hi = min(stamps), max(stamps)
                if lo > since:
                    windows.append((since, lo))
                if until is None or hi < until:
                    windows.append((hi, until))
            if windows:
                log.warning("%s: more than %d trades since %d: the oldest may not be read back",
                            self.exchange.value, FILL_PAGE * FILL_PAGES, since_ms)  # fmt: skip
        return sorted(found.values(), key=lambda f: (f.timestamp, f.trade_id))

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

    # ================================================================== lifecycle

    async def close(self) -> None:
        self._closed = True
        await self._close_streams()
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
