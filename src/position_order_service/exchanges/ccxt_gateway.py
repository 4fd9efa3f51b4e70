"""ExchangeGateway over ccxt.pro for OKX (swaps) and Binance USD-M, real or simulated (``base_url``).

One gateway per (user, exchange). Markets come from the shared :class:`MarketRegistry` (loaded once per
venue, handed to each client by reference). Sizes are base currency at this port and contracts on the OKX
wire. Everything read back is parsed from the exchange's raw payloads (``info``), so Decimals stay exact.

Behaviour worth knowing:
- ``create_order`` returns the accepted order with status ``open`` when the venue does not report state
  (OKX replies with ids only; Binance replies with the order). Fills arrive by ``watch_orders``/``watch_fills``.
  A network error or timeout raises ExchangeUnavailable: the outcome is unknown, resolve it with
  ``fetch_order(symbol, client_order_id=...)``, never by sending again.
- Algo orders (stop_market, stop_loss, stop_limit, take_profit, trigger, trailing_stop) go to the venue's algo
  API; ``fetch_order``/``cancel_order`` look in both books when the kind is not given, and
  ``fetch_open_orders``/``watch_orders`` include algo orders (OKX: the ``orders-algo`` channel; Binance:
  ALGO_UPDATE on the user stream).
- Hedge mode: ``OrderRequest.position_side`` is sent as posSide/positionSide (and reduceOnly dropped, the
  venues refuse it there). Without it, a hedged account (``hedged=True``, or detected once) gets the side
  derived from the order: opening buy -> long; reduce-only/protective sell -> long.
- Streams keep their ccxt watch armed between calls (see ``ccxt.streams``); a dropped socket raises
  StreamDisconnected once, the next call reconnects. Updates during the gap are not replayed: reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from ..domain.enums import Exchange, OrderSide, OrderStatus, OrderType, PositionSide
from ..domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ..domain.models import Order, Position
from .base import Credentials, ExchangeUnavailable, GatewayError, InvalidOrder, OrderNotFound
from .ccxt import binance as bn
from .ccxt import okx
from .ccxt.common import build_order, dec, ms_to_dt, utc_now, venue_client_order_id
from .ccxt.streams import MergedStream
from .errors import ccxt_error_for_code, map_ccxt_error
from .markets import MarketRegistry, MarketTable, UnknownSymbol

log = logging.getLogger(__name__)

SUPPORTED = (Exchange.OKX, Exchange.BINANCE)
_PROTECTIVE = (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP)
_FEE_MEMORY = 2000  # orders whose streamed commissions are remembered (Binance orders carry no fee)

_shared_registry: MarketRegistry | None = None


def shared_registry() -> MarketRegistry:
    """The process-wide registry used when a gateway is built without one."""
    global _shared_registry
    if _shared_registry is None:
        _shared_registry = MarketRegistry()
    return _shared_registry


@functools.cache
def _binance_linear_exceptions() -> dict[str, Any]:
    """Binance's common error table overlaid with its USD-M one. ccxt picks the USD-M table by URL prefix,
    which a loopback URL never matches; replacing ``exact`` by the USD-M table alone (as a bare override
    would) loses the common codes (-1022 bad signature, -2013 no such order, -2015 bad key)."""
    import ccxt

    template = ccxt.binanceusdm()
    linear = template.exceptions.get("linear") or {}
    return {
        "exact": {**template.exceptions.get("exact", {}), **linear.get("exact", {})},
        "broad": {**template.exceptions.get("broad", {}), **linear.get("broad", {})},
    }


class CcxtGateway:
    """The :class:`~.base.ExchangeGateway` for one user's account on OKX or Binance USD-M."""

    def __init__(
        self,
        exchange: Exchange | str,
        user_id: str,
        credentials: Credentials | None,
        base_url: str = "",
        registry: MarketRegistry | None = None,
        hedged: bool | None = None,
        *,
        timeout_ms: int = 10_000,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.exchange = Exchange(exchange)
        if self.exchange not in SUPPORTED:
            raise ValueError(f"{self.exchange.value} is not supported by the ccxt gateway")
        self.user_id = user_id
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._registry = registry if registry is not None else shared_registry()
        self._hedged = hedged
        self._timeout_ms = timeout_ms
        self._factory = client_factory
        self._client: Any = None
        self._table: MarketTable | None = self._registry.get(self.exchange, self._base_url)
        self._streams: dict[str, MergedStream] = {}
        self._fees: OrderedDict[str, tuple[Decimal, str | None, set[str]]] = OrderedDict()
        self._trailing_rates: OrderedDict[str, Decimal] = OrderedDict()
        self._leverage: dict[str, int] = {}  # Binance: positions carry no leverage (symbolConfig does)
        self._leverage_loaded = False
        self._credentials_checked = False
        self._net_sides: dict[str, PositionSide] = {}  # one-way mode: the side last seen open per symbol
        self._algo_done: OrderedDict[str, None] = OrderedDict()  # OKX algos whose final state was streamed
        self._secrets = () if credentials is None else (credentials.secret, credentials.passphrase)
        self._closed = False

    def __repr__(self) -> str:
        return f"CcxtGateway({self.exchange.value}, user={self.user_id!r}, base_url={self._base_url!r})"

    # ------------------------------------------------------------------ client and markets

    @property
    def client(self) -> Any:
        """The ccxt.pro client (created on first use, sharing the registry's market table)."""
        if self._client is None:
            if self._closed:
                raise ExchangeUnavailable("the gateway is closed")
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        factory = self._factory
        if factory is None:
            from .ccxt_factory import make_client

            factory = make_client
        creds = self._credentials
        client = factory(
            self.exchange,
            self._base_url,
            creds.api_key if creds else "",
            creds.secret if creds else "",
            creds.passphrase if creds else "",
            timeout_ms=self._timeout_ms,
            hedged=bool(self._hedged),
        )
        if self.exchange is Exchange.BINANCE:
            client.options["fetchOpenOrders"] = {
                **(client.options.get("fetchOpenOrders") or {}),
                "warnWithoutSymbol": False,
            }
            client.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
            if self._base_url:
                client.exceptions = {**client.exceptions, **_binance_linear_exceptions()}
        if self._table is not None:
            self._table.attach(client)
        from .ccxt_factory import instrument_clients, pacer_for

        instrument_clients(client, pacer_for(self.exchange, self._base_url))
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

    def _market_of(self, info: dict[str, Any], fallback: str | None = None) -> MarketInfo | None:
        table = self._table
        if table is None:
            return None
        native = info.get("instId") or info.get("s") or info.get("symbol")
        found = table.get(str(native)) if native else None
        if found is None and fallback:
            found = table.get(fallback)
        return found

    # ------------------------------------------------------------------ parsing (raw payload -> domain)

    def _parse_order(self, info: dict[str, Any], fallback_symbol: str | None = None) -> Order | None:
        market = self._market_of(info, fallback_symbol)
        if market is None:
            return None
        try:
            if self.exchange is Exchange.OKX:
                return okx.parse_order(info, market, self.user_id)
            return self._parse_binance_order(info, market)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping an order payload that does not parse (%s): %s", exc, _brief(info))
            return None

    def _parse_binance_order(self, info: dict[str, Any], market: MarketInfo) -> Order:
        if bn.is_algo_payload(info):
            order = bn.parse_algo(info, market, self.user_id)
            oid = order.exchange_order_id or ""
            if order.order_type is OrderType.TRAILING_STOP:
                if order.metadata.get("callback_rate_unknown"):
                    known = self._trailing_rates.get(oid)
                    if known is not None:
                        meta = {k: v for k, v in order.metadata.items() if k != "callback_rate_unknown"}
                        order = order.model_copy(update={"callback_rate": known, "metadata": meta})
                elif order.callback_rate is not None:
                    self._remember_rate(oid, order.callback_rate)
            return order
        oid = str(info.get("i") or info.get("orderId") or "")
        self._note_commission(oid, info)
        fee = self._fees.get(oid)
        return bn.parse_order(info, market, self.user_id, None if fee is None else (fee[0], fee[1]))

    def _remember_rate(self, algo_id: str, rate: Decimal) -> None:
        if algo_id:
            self._trailing_rates[algo_id] = rate
            while len(self._trailing_rates) > _FEE_MEMORY:
                self._trailing_rates.popitem(last=False)

    def _note_commission(self, order_id: str, raw: dict[str, Any]) -> None:
        """Accumulate a Binance order's commissions from its TRADE updates (once per trade id)."""
        if raw.get("x") != "TRADE" or not order_id:
            return
        trade_id = str(raw.get("t") or "")
        amount = dec(raw.get("n"))
        if not trade_id or amount is None:
            return
        total, ccy, seen = self._fees.get(order_id, (Decimal(0), None, set()))
        if trade_id in seen:
            return
        seen.add(trade_id)
        self._fees[order_id] = (total + amount, raw.get("N") or ccy, seen)
        self._fees.move_to_end(order_id)
        while len(self._fees) > _FEE_MEMORY:
            self._fees.popitem(last=False)

    def _parse_fill(self, info: dict[str, Any]) -> FillReport | None:
        market = self._market_of(info)
        if market is None:
            return None
        try:
            if self.exchange is Exchange.OKX:
                return okx.parse_fill(info, market)
            self._note_commission(str(info.get("i") or ""), info)
            return bn.parse_fill(info, market)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a trade payload that does not parse (%s): %s", exc, _brief(info))
            return None

    def _parse_positions(self, pos: dict[str, Any]) -> list[Position]:
        """One ccxt position -> domain positions. One-way mode gives a flat position no side (ccxt reports
        it once with no side on Binance, twice as long and short on OKX): it closes the side this gateway
        last saw open, or both sides when it never saw one."""
        info = pos.get("info") or {}
        market = self._market_of(info, pos.get("symbol"))
        if market is None:
            return []
        net = (info.get("posSide") or info.get("ps") or info.get("positionSide")) in ("net", "BOTH")
        remembered = self._net_sides.get(market.symbol) if net else None
        ccxt_side = pos.get("side") if pos.get("side") in ("long", "short") else None
        sides: list[str | None] = [ccxt_side]
        if net and ccxt_side is None:
            sides = [remembered.value] if remembered is not None else ["long", "short"]
        out: list[Position] = []
        for side in sides:
            try:
                if self.exchange is Exchange.OKX:
                    parsed = okx.parse_position(info, market, self.user_id, side)
                else:
                    lev = dec(pos.get("leverage"))
                    known = int(lev) if lev else self._leverage.get(market.symbol)
                    raw = info
                    if not info.get("updateTime") and not info.get("T") and pos.get("timestamp"):
                        # a stream row carries no time of its own: its message's (E) is the exchange's version
                        raw = {**info, "T": pos["timestamp"]}
                    parsed = bn.parse_position(raw, market, self.user_id, side, known)
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

    def _parse_ticker(self, ticker: dict[str, Any], market: MarketInfo) -> PriceTick:
        info = ticker.get("info") or {}
        if self.exchange is Exchange.OKX:
            return okx.parse_ticker(info, market)
        return bn.parse_ticker(info, market)

    def _orders_from(self, items: Sequence[Any]) -> list[Order]:
        out: list[Order] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            info = item.get("info")
            if isinstance(info, dict) and info:
                order = self._parse_order(info, item.get("symbol"))
                if order is not None:
                    out.append(order)
        return out

    # ------------------------------------------------------------------ orders

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
        cid = venue_client_order_id(self.exchange, req.client_order_id)
        ps = await self._position_side(req)
        if self.exchange is Exchange.OKX:
            ctype, amount, price, params = okx.order_params(req, market.to_contracts(qty), cid, ps)
        else:
            ctype, amount, price, params = bn.order_params(req, qty, cid, ps)
        params.update(req.extra)
        raw = await self._rest(
            client.create_order, market.unified, ctype, req.side.value, amount, price, params
        )
        info = raw.get("info") if isinstance(raw, dict) else None
        if isinstance(info, dict):
            code = info.get("sCode")
            if code not in (None, "", "0"):  # an answer of "0" overall that still refuses the item
                raise map_ccxt_error(
                    ccxt_error_for_code(client, str(code), str(info.get("sMsg") or "")), secrets=self._secrets
                )
        exchange_id = str(raw.get("id") or "") if isinstance(raw, dict) else ""
        if req.order_type is OrderType.TRAILING_STOP and req.callback_rate is not None:
            self._remember_rate(exchange_id, req.callback_rate)
        if (
            self.exchange is Exchange.BINANCE
            and isinstance(info, dict)
            and (info.get("orderId") or info.get("algoId"))
        ):
            parsed = self._parse_order(info)
            if parsed is not None and parsed.status is not OrderStatus.PENDING:
                return parsed
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
        cid = None if client_order_id is None else venue_client_order_id(self.exchange, client_order_id)
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
            order = self._parse_order(info, market.symbol)
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
                if isinstance(info, dict):
                    code = info.get("sCode")
                    if code not in (None, "", "0"):
                        raise map_ccxt_error(
                            ccxt_error_for_code(client, str(code), str(info.get("sMsg") or "")),
                            secrets=self._secrets,
                        )
            except OrderNotFound as exc:
                not_found = exc
                continue
            if isinstance(info, dict) and (info.get("status") or info.get("state") or info.get("algoStatus")):
                return self._parse_order(info, market.symbol)
            return None
        raise not_found or OrderNotFound(f"order {order_id} does not exist on {self.exchange.value}")

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        client = await self._ready()
        unified = None if symbol is None else self.market(symbol).unified
        if self.exchange is Exchange.OKX:
            calls = [client.fetch_open_orders(unified)] + [
                client.fetch_open_orders(unified, None, None, {"ordType": t}) for t in okx.OPEN_ALGO_TYPES
            ]
        else:
            calls = [
                client.fetch_open_orders(unified),
                client.fetch_open_orders(unified, None, None, {"trigger": True}),
            ]
        results = await self._rest(_gather, calls)
        seen: set[tuple[bool, str]] = set()
        out: list[Order] = []
        for batch in results:
            for order in self._orders_from(batch):
                key = (bool(order.metadata.get("algo")), order.order_id)
                if key not in seen:
                    seen.add(key)
                    out.append(order)
        return out

    # ------------------------------------------------------------------ account

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        client = await self._ready()
        unified = None if not symbols else [self.market(s).unified for s in symbols]
        if self.exchange is Exchange.BINANCE:
            await self._load_leverages(unified, force=True)
        raw = await self._rest(client.fetch_positions, unified)
        out: list[Position] = []
        for p in raw or []:
            if isinstance(p, dict):
                out.extend(x for x in self._parse_positions(p) if x.size > 0)
        return out

    async def _load_leverages(self, unified: list[str] | None = None, force: bool = False) -> None:
        """Binance: leverage per symbol from /fapi/v1/symbolConfig (position rows and ACCOUNT_UPDATE lack it)."""
        if self._leverage_loaded and not force:
            return
        try:
            raw = await self._rest(self.client.fetch_leverages, unified)
        except GatewayError as exc:
            log.info("could not read leverages on %s: %s", self.exchange.value, exc.reason)
            return
        for entry in (raw or {}).values():
            info = entry.get("info") if isinstance(entry, dict) else None
            if isinstance(info, dict):
                lev = dec(info.get("leverage"))
                if lev and info.get("symbol"):
                    self._leverage[str(info["symbol"])] = int(lev)
        self._leverage_loaded = True

    async def fetch_balance(self) -> dict[str, Decimal]:
        """Equity (wallet balance + unrealized PnL) per currency."""
        client = await self._ready()
        raw = await self._rest(client.fetch_balance)
        info = raw.get("info") if isinstance(raw, dict) else None
        return okx.parse_balance(info) if self.exchange is Exchange.OKX else bn.parse_balance(info)

    async def fetch_ticker(self, symbol: str) -> PriceTick:
        client = await self._ready()
        market = self.market(symbol)
        raw = await self._rest(client.fetch_ticker, market.unified)
        try:
            return self._parse_ticker(raw, market)
        except ValueError as exc:
            raise ExchangeUnavailable(str(exc)) from exc

    async def set_leverage(
        self, symbol: str, leverage: int, position_side: PositionSide | None = None
    ) -> None:
        client = await self._ready()
        market = self.market(symbol)
        params: dict[str, Any] = {"marginMode": "cross"} if self.exchange is Exchange.OKX else {}
        await self._rest(client.set_leverage, leverage, market.unified, params)
        self._leverage[market.symbol] = leverage

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

    # ------------------------------------------------------------------ streams

    def _stream(
        self, key: str, sources: Sequence[Callable[[], Awaitable[Any]]], conflate: bool = False
    ) -> MergedStream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = MergedStream(sources, conflate=conflate)
        return stream

    async def _private_stream_ready(self) -> Any:
        """Binance hands out a listen key for the API key alone (no signature), so with a wrong secret its
        user stream would open and stay silent forever: check the credentials with one signed call first."""
        client = await self._ready()
        if self.exchange is Exchange.BINANCE and not self._credentials_checked:
            await self.fetch_position_mode()
            self._credentials_checked = True
        return client

    async def _next(self, stream: MergedStream) -> list[Any]:
        try:
            return await stream.next()
        except asyncio.CancelledError:
            raise
        except GatewayError:
            raise
        except Exception as exc:
            raise map_ccxt_error(exc, stream=True, secrets=self._secrets) from exc

    async def streams_ready(self, within_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            clients = list((getattr(self._client, "clients", None) or {}).values())
            private = [c for c in clients if not _public_url(str(getattr(c, "url", "")))]
            if private and all(
                getattr(c, "isConnected", False) and not getattr(c, "connecting", False) for c in private
            ):
                return True
            await asyncio.sleep(0.05)
        return False

    async def watch_orders(self) -> list[Order]:
        client = await self._private_stream_ready()
        if self.exchange is Exchange.OKX:
            sources: list[Callable[[], Awaitable[Any]]] = [
                client.watch_orders,
                functools.partial(client.watch_orders, None, None, None, {"trigger": True}),
            ]
        else:  # ALGO_UPDATE arrives on the same user stream
            sources = [client.watch_orders]
        batches = await self._next(self._stream("orders", sources))
        orders = [o for batch in batches for o in self._orders_from(batch)]
        if self.exchange is Exchange.OKX:
            orders += await self._okx_parents(orders)
        return orders

    async def _okx_parents(self, orders: list[Order]) -> list[Order]:
        """OKX pushes trailing stops (move_order_stop) on ``algo-advance``, a channel ccxt does not
        subscribe: their triggering is only visible as the child order (which names its algoId). For a
        child of an algo whose final state this stream has not shown, read the algo once over REST."""
        for o in orders:
            if o.metadata.get("algo") and not o.status.is_active and o.exchange_order_id:
                self._remember(self._algo_done, o.exchange_order_id)
        out: list[Order] = []
        for o in orders:
            algo_id = o.metadata.get("algo_id")
            if not algo_id or algo_id in self._algo_done:
                continue
            self._remember(self._algo_done, algo_id)
            try:
                parent = await self.fetch_order(o.symbol, order_id=str(algo_id))
            except GatewayError as exc:  # reconciliation will catch up
                log.info("could not read algo %s of order %s: %s", algo_id, o.exchange_order_id, exc.reason)
                continue
            if parent is not None and parent.metadata.get("algo"):
                out.append(parent)
        return out

    @staticmethod
    def _remember(memory: OrderedDict[str, None], key: str) -> None:
        memory[key] = None
        memory.move_to_end(key)
        while len(memory) > _FEE_MEMORY:
            memory.popitem(last=False)

    async def watch_positions(self) -> list[Position]:
        """Every position slot's latest state, each time the positions stream pushes. ccxt resolves a watch with
        one message's positions and drops those of a message that lands before the watch is armed again (two
        pushes in one loop turn: a hedge account's long and short); its cache keeps every slot's latest, so
        that is what is read (a slot that did not change folds in as unchanged)."""
        client = await self._private_stream_ready()
        if self.exchange is Exchange.BINANCE:
            await self._load_leverages()
        await self._next(self._stream("positions", [client.watch_positions], conflate=True))
        cache = client.positions
        if isinstance(cache, dict):  # Binance: per market type
            cache = cache.get("linear")
        out: list[Position] = []
        for p in list(cache or []):
            if isinstance(p, dict):
                out.extend(self._parse_positions(p))
        return out

    async def watch_fills(self) -> list[FillReport]:
        client = await self._private_stream_ready()
        batches = await self._next(self._stream("fills", [client.watch_my_trades]))
        out: list[FillReport] = []
        for batch in batches:
            for t in batch or []:
                info = t.get("info") if isinstance(t, dict) else None
                fill = self._parse_fill(info) if isinstance(info, dict) else None
                if fill is not None:
                    out.append(fill)
        return out

    async def watch_ticker(self, symbol: str) -> PriceTick:
        client = await self._ready()
        market = self.market(symbol)
        unified = market.unified
        stream = self._stream(
            f"ticker:{market.symbol}", [functools.partial(client.watch_ticker, unified)], conflate=True
        )
        while True:
            batches = await self._next(stream)
            # the newest ticker resolved (a burst's later pushes found no future armed: ccxt_factory)
            for raw in reversed([*batches, *self._recent(client, unified, "ticker")]):
                try:
                    if _is_ticker(self.exchange, raw):
                        return self._parse_ticker(raw, market)
                except ValueError as exc:  # a ticker without a price: wait for the next one
                    log.debug("ignoring a ticker without a price: %s", exc)

    async def watch_mark_price(self, symbol: str) -> PriceTick:
        client = await self._ready()
        market = self.market(symbol)
        stream = self._stream(
            f"mark:{market.symbol}",
            [functools.partial(client.watch_mark_price, market.unified)],
            conflate=True,
        )
        while True:
            batches = await self._next(stream)
            for raw in reversed([*batches, *self._recent(client, market.unified, "mark")]):
                tick = _parse_mark(self.exchange, raw, market)
                if tick is not None:  # (Binance resolves ticker and mark watches alike: skip tickers)
                    return tick

    def _recent(self, client: Any, unified: str, kind: str) -> list[Any]:
        """Ticker/mark dicts resolved lately for `unified` (oldest first), from the remembered resolutions
        (OKX hashes `tickers::SYM` / `mark-price::SYM`; Binance `ticker:<channel>@SYM`)."""
        from .ccxt_factory import recent_resolutions_matching

        wanted = ("tickers::", "ticker:") if kind == "ticker" else ("mark-price::", "ticker:")
        out: list[Any] = []
        for resolved in recent_resolutions_matching(
            client, lambda h: h.startswith(wanted) and h.endswith(unified)
        ):
            value = resolved.get(unified) if isinstance(resolved, dict) and unified in resolved else resolved
            if isinstance(value, dict):
                out.append(value)
        out.sort(key=lambda t: t.get("timestamp") or 0)
        return out

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        self._closed = True
        streams = list(self._streams.values())
        self._streams.clear()
        for s in streams:
            await s.close()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


async def _gather(calls: list[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*calls))


def _on_grid(req: OrderRequest, market: MarketInfo) -> OrderRequest:
    """Prices already on the tick grid pass unchanged; others are rounded (stops in the safe direction)."""
    from dataclasses import replace

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


def _public_url(url: str) -> bool:
    """A market-data socket (OKX /ws/v5/public; a Binance stream of symbol@channel names)."""
    return url.endswith("/public") or "@" in url


def _is_ticker(exchange: Exchange, raw: Any) -> bool:
    """A ticker-channel dict (not a mark-price push that shares ccxt's ticker cache or hash)."""
    info = raw.get("info") if isinstance(raw, dict) else None
    if not isinstance(info, dict):
        return isinstance(raw, dict)
    if exchange is Exchange.BINANCE:
        return info.get("e") != "markPriceUpdate"
    return "last" in info or "markPx" not in info


def _parse_mark(exchange: Exchange, raw: Any, market: MarketInfo) -> PriceTick | None:
    """A mark-price push (OKX ``mark-price``: markPx; Binance ``markPriceUpdate``: p) as a tick."""
    info = raw.get("info") if isinstance(raw, dict) else None
    if not isinstance(info, dict):
        return None
    if exchange is Exchange.BINANCE:
        if info.get("e") not in (None, "markPriceUpdate") or "p" not in info:
            return None
        mark, ts = dec(info.get("p")), info.get("E") or info.get("T")
    else:
        mark, ts = dec(info.get("markPx")), info.get("ts")
    if mark is None or mark <= 0:
        return None
    return PriceTick(exchange.value, market.symbol, mark, None, None, mark, ms_to_dt(ts) or utc_now())


def _brief(info: dict[str, Any]) -> str:
    text = repr({k: info[k] for k in list(info)[:12]})
    return text[:300]
