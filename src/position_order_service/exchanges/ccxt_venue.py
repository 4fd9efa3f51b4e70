"""What a venue provides to the shared ccxt gateway, and the shared rules that turn its payloads into domain
objects.

A venue package subclasses the gateway (:class:`~.ccxt_base.CcxtGateway`, which is a :class:`CcxtVenue`) and
fills in the hooks below: its ccxt client and markets, its parsers, its order params, its push handling, and
its declared capabilities. The rules every venue shares (which market a payload names, skipping a payload that
does not parse, the side a flat one-way position closes) are written here once, and apply alike to REST
answers, ccxt's results and our own parsing of pushes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from ..domain.enums import Exchange, PositionSide
from ..domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ..domain.models import Order, Position
from .common import ClientIdRule, dec, ms_to_dt
from .markets import MarketTable
from .push_streams import PushHandler, Watch

log = logging.getLogger(__name__)

PushParsing = Literal["ours", "ccxt"]
FeedKind = Literal["orders", "fills", "positions", "ticker", "mark"]


def feed_key(kind: FeedKind, symbol: str | None = None) -> str:
    """The key a push handler emits under: ``orders``, ``fills``, ``positions``, ``ticker:<id>``, ``mark:<id>``."""
    return kind if symbol is None else f"{kind}:{symbol}"


class CcxtVenue:
    """Hooks and capabilities of one venue, and the payload rules shared by all (see the module docstring)."""

    exchange: Exchange  # set by each venue class
    client_ids: ClassVar[ClientIdRule]
    # -- capabilities a venue declares
    # ccxt params of each fetch_open_orders call that together list regular and algo orders
    open_order_queries: ClassVar[tuple[Mapping[str, Any], ...]] = ({}, {"trigger": True})
    # extra ccxt params of set_leverage
    leverage_params: ClassVar[Mapping[str, Any]] = {}
    # the private stream opens without a signature, so bad credentials must be caught by a signed call first
    check_credentials_before_streams: ClassVar[bool] = False
    # the account's trades (fetch_my_trades) are listed per instrument only: one request per symbol
    fills_need_symbol: ClassVar[bool] = False

    def __init__(self, user_id: str, pushes: PushParsing) -> None:
        self.user_id = user_id
        self.pushes: PushParsing = pushes
        self._table: MarketTable | None = None
        self._net_sides: dict[str, PositionSide] = {}  # one-way mode: the side last seen open per symbol

    @property
    def client(self) -> Any:
        """The ccxt.pro client (the gateway makes it)."""
        raise NotImplementedError

    def market(self, symbol: str) -> MarketInfo:
        """A market by native id or unified symbol (the gateway's loaded table)."""
        raise NotImplementedError

    # ================================================================== hooks

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

    def parse_rest_fill(self, info: dict[str, Any], market: MarketInfo) -> FillReport | None:
        """A row of the venue's REST trade list (fetch_my_trades' ``info``); by default the push's form."""
        return self.parse_fill(info, market)

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
        """The batch as the account gets it: what a read must complete first (a fired close-all algo's size,
        see :class:`~.ccxt_base.CcxtGateway`), plus orders it implies but does not carry (OKX: the trailing
        algo behind a child order). Awaited on the stream's ordered path: later pushes wait for it."""
        return orders

    def orders_need_reads(self, orders: list[Order]) -> bool:
        """Whether :meth:`after_orders` would read anything for this batch (else it returns it at once). Called
        on every batch in arrival order, before the batch is handed on: it notes what later batches may need."""
        return False

    def positions_prepared(self) -> bool:
        """Whether :meth:`prepare_positions` (not for a snapshot) would return at once."""
        return True

    # ================================================================== payloads -> domain (shared rules)

    def market_of(self, symbol: Any, fallback: str | None = None) -> MarketInfo | None:
        """The market of a payload's native symbol (or ``fallback``, a unified one); None when unknown."""
        table = self._table
        if table is None:
            return None
        found = table.get(str(symbol)) if symbol else None
        if found is None and fallback:
            found = table.get(fallback)
        return found

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

    def _rest_fills_from_ccxt(self, items: Sequence[Any]) -> list[FillReport]:
        out: list[FillReport] = []
        for item in items:
            info = item.get("info") if isinstance(item, dict) else None
            if not isinstance(info, dict) or not info:
                continue
            market = self.market_of(self.payload_symbol(info), item.get("symbol"))
            try:
                fill = None if market is None else self.parse_rest_fill(info, market)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("skipping a trade row that does not parse (%s): %s", exc, _brief(info))
                continue
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


def _brief(info: dict[str, Any]) -> str:
    text = repr({k: info[k] for k in list(info)[:12]})
    return text[:300]
