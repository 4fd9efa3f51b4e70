"""ExchangeGateway over the simulator engine, in process (no sockets): the fast gateway for tests and dry runs.

Same port, same domain mapping and error classes as the ccxt gateway: sizes in base currency (OKX venue:
contracts inside the engine), EngineError codes mapped to GatewayError classes, streams fed from
``engine.subscribe`` events. One engine listener serves every paper gateway on that engine (events are routed
by account), so a thousand users do not mean a thousand listeners per event.

Fault injection mirrors the simulator's control API: ``gateway.faults`` is the engine's
:class:`~..sim.engine.FaultSet` (shared with a wire front serving the same engine), of which the paper
gateway applies ``drop_order_responses`` (the order is placed, the reply is "lost": ExchangeUnavailable),
``ws_drop``/``ws_duplicate``/``ws_reorder`` (one push stream per account and one per symbol, as one socket
each), and through the engine ``clock_offset_ms`` and ``visibility_lag_ms``. Set them from Python, e.g.
``gateway.faults.update({"ws_drop": {"count": 1, "channels": ["orders"]}})``.
:meth:`PaperGateway.simulate_disconnect`: pending and next watches raise StreamDisconnected; events until
the next watch are lost, as on a real socket drop.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from ..domain.enums import (
    Exchange,
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    PositionStatus,
    TimeInForce,
)
from ..domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ..domain.models import Order, PnLInfo, Position
from ..domain.reconcile import needs_size, size_pending
from ..sim.engine import (
    AccountConfigEvent,
    AlgoEvent,
    AlgoOrder,
    BalanceEvent,
    EngineError,
    FaultSet,
    Fill,
    Instrument,
    OrderEvent,
    PositionEvent,
    PositionMode,
    SimEngine,
    TickerEvent,
    push_names,
)
from ..sim.engine import Order as SimOrder
from ..sim.engine import Position as SimPosition
from ..sim.engine.enums import CancelSource, OrderState, OrdType, PosSide
from ..sim.engine.events import Event
from ..sim.engine.prices import Ticker
from ..sim.push_faults import PushShaper
from .base import (
    AuthenticationFailed,
    ExchangeUnavailable,
    GatewayError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    SocketsPending,
    StreamDisconnected,
)
from .binance.params import CLIENT_IDS as BINANCE_CLIENT_IDS
from .common import ZERO, ClientIdRule, build_order, clean, fmt, ms_to_dt, utc_now
from .markets import MarketTable
from .okx import parse as okx_payloads
from .okx.params import CLIENT_IDS as OKX_CLIENT_IDS

log = logging.getLogger(__name__)

T = TypeVar("T")

_ENGINE_ERRORS: dict[str, type[GatewayError]] = {
    "unknown_account": AuthenticationFailed,
    "insufficient_margin": InsufficientFunds,
    "order_not_found": OrderNotFound,
    "algo_not_found": OrderNotFound,
    "invalid_request": InvalidOrder,
    "unknown_instrument": InvalidOrder,
    "invalid_size": InvalidOrder,
    "invalid_price": InvalidOrder,
    "min_notional": InvalidOrder,
    "no_market_price": InvalidOrder,
    "post_only_would_take": InvalidOrder,
    "reduce_only_rejected": InvalidOrder,
    "duplicate_client_order_id": InvalidOrder,
    "invalid_leverage": InvalidOrder,
    "invalid_pos_side": InvalidOrder,
    "invalid_trigger_price": InvalidOrder,
}
_PROTECTIVE = (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.TRAILING_STOP)


def map_engine_error(exc: EngineError) -> GatewayError:
    """The gateway error for an engine error (its message is the "exchange's reason", its code the code)."""
    return _ENGINE_ERRORS.get(exc.code, GatewayError)(exc.message, exc.code)


def market_from_instrument(inst: Instrument) -> MarketInfo:
    ct = inst.contract_value
    return MarketInfo(
        symbol=inst.inst_id,
        unified=inst.ccxt_symbol,
        base=inst.base,
        quote=inst.quote,
        settle=inst.settle,
        tick_size=clean(inst.tick_size),
        lot_size=clean(inst.lot_size * ct),
        min_size=clean(inst.min_size * ct),
        contract_value=clean(ct),
        min_notional=inst.min_notional,
        max_leverage=inst.max_leverage,
    )


# ---------------------------------------------------------------- engine objects -> domain

_ORDER_STATUS = {
    OrderState.LIVE: OrderStatus.OPEN,
    OrderState.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    OrderState.FILLED: OrderStatus.FILLED,
    OrderState.CANCELED: OrderStatus.CANCELLED,
}
_TIF = {
    OrdType.POST_ONLY: TimeInForce.POST_ONLY,
    OrdType.IOC: TimeInForce.IOC,
    OrdType.FOK: TimeInForce.FOK,
}


def _dt(ms: int | None) -> datetime:
    return ms_to_dt(ms) or utc_now()


def _ps(pos_side: PosSide) -> PositionSide | None:
    return None if pos_side is PosSide.NET else PositionSide(pos_side.value)


def order_to_domain(o: SimOrder, m: MarketInfo, user_id: str, exchange: Exchange) -> Order:
    ct = m.contract_value
    status = _ORDER_STATUS[o.state]
    if (
        status is OrderStatus.CANCELLED
        and exchange is Exchange.BINANCE
        and o.cancel_source
        not in (
            None,
            CancelSource.USER,
        )
    ):
        status = OrderStatus.EXPIRED  # Binance reports venue-side cancels (IOC/FOK remainder) as EXPIRED
    meta: dict[str, Any] = {"venue_type": o.ord_type.value, "venue_state": o.state.value}
    if o.algo_id:
        meta["algo_id"] = o.algo_id
    if o.algo_client_id:
        meta["algo_client_order_id"] = o.algo_client_id
    if o.cancel_source is not None:
        meta["cancel_source"] = o.cancel_source.value
    market = o.ord_type is OrdType.MARKET
    return build_order(
        exchange_order_id=o.order_id,
        client_order_id=o.client_order_id,
        user_id=user_id,
        exchange=exchange,
        symbol=o.inst_id,
        side=OrderSide(o.side.value),
        order_type=OrderType.MARKET if market else OrderType.LIMIT,
        quantity=clean(o.sz * ct),
        price=None if market else o.px,
        filled_qty=clean(o.filled_sz * ct),
        avg_fill_price=o.avg_px if o.avg_px else None,
        status=status,
        reduce_only=o.reduce_only,
        post_only=o.post_only,
        time_in_force=_TIF.get(o.ord_type, TimeInForce.GTC),
        position_side=_ps(o.pos_side),
        fee=max(o.fee, ZERO),
        fee_currency=o.fee_ccy,
        metadata=meta,
        created_at=_dt(o.created_ms),
        updated_at=_dt(o.updated_ms),
    )


def _s(v: Decimal | None) -> str:
    return "" if v is None else fmt(v)


def algo_to_domain(
    a: AlgoOrder, m: MarketInfo, user_id: str, exchange: Exchange, actual_sz: Decimal | None = None
) -> Order:
    """Through the OKX algo mapping: the engine's algo model is OKX's (conditional/oco/trigger/move_order_stop).
    ``actual_sz``: what a fired close-all algo's child filled (contracts), as OKX's actualSz."""
    raw: dict[str, Any] = {
        "algoId": a.algo_id,
        "algoClOrdId": a.client_algo_id or "",
        "instId": a.inst_id,
        "ordType": a.algo_type.value,
        "side": a.side.value,
        "posSide": a.pos_side.value,
        "sz": _s(a.sz),
        "state": a.state.value,
        "reduceOnly": "true" if a.reduce_only else "false",
        "slTriggerPx": _s(a.sl_trigger_px),
        "slOrdPx": _s(a.sl_ord_px) or ("-1" if a.sl_trigger_px is not None else ""),
        "tpTriggerPx": _s(a.tp_trigger_px),
        "tpOrdPx": _s(a.tp_ord_px) or ("-1" if a.tp_trigger_px is not None else ""),
        "triggerPx": _s(a.trigger_px),
        "ordPx": _s(a.order_px) or ("-1" if a.trigger_px is not None else ""),
        "callbackRatio": _s(a.callback_ratio),
        "callbackSpread": _s(a.callback_spread),
        "activePx": _s(a.active_px),
        "moveTriggerPx": _s(a.stop_px),
        "ordId": a.order_id or "",
        "failCode": a.fail_code or "",
        "actualSide": "" if a.triggered_leg is None else a.triggered_leg.value,
        "triggerTime": str(a.triggered_ms or ""),
        "actualSz": _s(actual_sz),
        "cTime": str(a.created_ms),
        "uTime": str(a.updated_ms),
    }
    order = okx_payloads.parse_algo(raw, m, user_id, exchange)
    if a.fail_reason:
        order = order.model_copy(update={"metadata": {**order.metadata, "fail_reason": a.fail_reason}})
    return order


def position_to_domain(
    p: SimPosition, m: MarketInfo, user_id: str, exchange: Exchange, side: PositionSide
) -> Position:
    size = clean(abs(p.qty) * m.contract_value)
    is_open = size > 0
    updated = _dt(p.updated_ms)
    return Position(
        user_id=user_id,
        exchange=exchange,
        symbol=p.inst_id,
        side=side,
        size=size,
        entry_price=p.avg_px if is_open else ZERO,
        current_price=p.mark_px if p.mark_px > 0 else None,
        leverage=min(max(p.leverage, 1), 125),
        margin_mode=MarginMode(p.margin_mode.value),
        liquidation_price=p.liq_px if is_open and p.liq_px and p.liq_px > 0 else None,
        pnl=PnLInfo(realized=p.realized_pnl, unrealized=p.upl if is_open else ZERO, fees=max(p.fee, ZERO)),
        status=PositionStatus.OPEN if is_open else PositionStatus.CLOSED,
        metadata={"venue_position_id": p.pos_id},
        created_at=_dt(p.created_ms),
        updated_at=updated,
        closed_at=None if is_open else updated,
    )


def fill_to_domain(f: Fill, m: MarketInfo, exchange: Exchange) -> FillReport:
    return FillReport(
        exchange=exchange.value,
        symbol=f.inst_id,
        trade_id=f.trade_id,
        order_id=f.order_id,
        client_order_id=f.client_order_id,
        side=OrderSide(f.side.value),
        price=f.px,
        size=clean(f.sz * m.contract_value),
        fee=f.fee,
        fee_currency=f.fee_ccy,
        liquidity=f.liquidity.value,
        position_side=_ps(f.pos_side),
        timestamp=_dt(f.ts),
    )


def mark_to_domain(t: Ticker, exchange: Exchange) -> PriceTick:
    """The engine's mark price as a mark-price tick (last and mark both the mark, as the venues' channels)."""
    return PriceTick(
        exchange=exchange.value,
        symbol=t.inst_id,
        last=t.mark,
        bid=None,
        ask=None,
        mark=t.mark,
        timestamp=_dt(t.ts),
    )


def tick_to_domain(t: Ticker, exchange: Exchange) -> PriceTick:
    return PriceTick(
        exchange=exchange.value,
        symbol=t.inst_id,
        last=t.last,
        bid=t.bid,
        ask=t.ask,
        mark=t.mark,
        timestamp=_dt(t.ts),
    )


_CLIENT_IDS: dict[Exchange, ClientIdRule] = {
    Exchange.OKX: OKX_CLIENT_IDS,
    Exchange.BINANCE: BINANCE_CLIENT_IDS,
}


# ---------------------------------------------------------------- event routing and streams


class _Stream(Generic[T]):
    """Domain items converted from engine events, queued for the next watch call."""

    def __init__(self, convert: Callable[[Event], list[T]], conflate: bool = False) -> None:
        self._convert = convert
        self._conflate = conflate
        self._items: list[T] = []
        self._error: BaseException | None = None
        self._wakeup = asyncio.Event()
        self.subscribed = False

    def push(self, event: Event) -> None:
        try:
            items = self._convert(event)
        except Exception:  # never let one odd event break the engine's caller
            log.exception("paper gateway could not convert %s", type(event).__name__)
            return
        if items:
            if self._conflate:
                self._items[:] = items[-1:]
            else:
                self._items.extend(items)
            self._wakeup.set()

    def disconnect(self, reason: str) -> None:
        self._items.clear()
        self._error = StreamDisconnected(reason)
        self._wakeup.set()

    async def next(self) -> list[T]:
        while True:
            if self._error is not None:
                error, self._error = self._error, None
                self._wakeup.clear()
                raise error
            if self._items:
                out, self._items = self._items, []
                self._wakeup.clear()
                return out
            self._wakeup.clear()
            await self._wakeup.wait()


_PUSH_NAMES: dict[type, frozenset[str]] = {
    OrderEvent: push_names("orders"),
    AlgoEvent: push_names("ALGO_UPDATE"),
    PositionEvent: push_names("positions"),
    BalanceEvent: push_names("account"),
    AccountConfigEvent: push_names("ACCOUNT_CONFIG_UPDATE"),
    TickerEvent: push_names("tickers") | push_names("mark-price"),
}


class _Hub:
    """The one engine listener of all paper gateways on an engine; routes events by account and symbol.

    Each account's events, and each symbol's ticks, pass through one push shaper (the paper counterpart of a
    socket), so the engine's push faults drop, duplicate or reorder them for every stream of that account."""

    def __init__(self, engine: SimEngine) -> None:
        self.accounts: dict[str, set[_Stream[Any]]] = {}
        self.tickers: dict[str, set[_Stream[Any]]] = {}
        self._faults = engine.faults
        self._shapers: dict[tuple[int, str], PushShaper[Event]] = {}
        engine.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if type(event) is TickerEvent:
            table, key = self.tickers, event.ticker.inst_id
        else:
            table, key = self.accounts, getattr(event, "account_id", "")
        if key not in table:
            return
        shaper = self._shapers.get((id(table), key))
        if shaper is None:
            kind = "ticker" if table is self.tickers else "account"
            shaper = PushShaper(self._faults, f"paper:{kind}:{key}", lambda ev: self._deliver(table, key, ev))
            self._shapers[(id(table), key)] = shaper
        shaper.send(event, _PUSH_NAMES.get(type(event), frozenset()))

    @staticmethod
    def _deliver(table: dict[str, set[_Stream[Any]]], key: str, event: Event) -> None:
        for sink in tuple(table.get(key, ())):
            sink.push(event)

    def add(self, table: dict[str, set[_Stream[Any]]], key: str, stream: _Stream[Any]) -> None:
        table.setdefault(key, set()).add(stream)
        stream.subscribed = True

    def remove(self, table: dict[str, set[_Stream[Any]]], key: str, stream: _Stream[Any]) -> None:
        sinks = table.get(key)
        if sinks is not None:
            sinks.discard(stream)
            if not sinks:
                del table[key]
                shaper = self._shapers.pop((id(table), key), None)
                if shaper is not None:
                    shaper.close()
        stream.subscribed = False


_HUBS: weakref.WeakKeyDictionary[SimEngine, _Hub] = weakref.WeakKeyDictionary()


def _hub(engine: SimEngine) -> _Hub:
    hub = _HUBS.get(engine)
    if hub is None:
        hub = _HUBS[engine] = _Hub(engine)
    return hub


# ---------------------------------------------------------------- the gateway


class PaperGateway:
    """The :class:`~.base.ExchangeGateway` for one simulator account (``api_key``; None = public data only)."""

    def __init__(
        self,
        engine: SimEngine,
        user_id: str,
        api_key: str | None,
        venue: Exchange | str | None = None,
    ) -> None:
        self.exchange = Exchange(venue or engine.venue)
        if self.exchange.value != engine.venue:
            raise ValueError(f"engine simulates {engine.venue}, not {self.exchange.value}")
        self.engine = engine
        self.user_id = user_id
        self._api_key = api_key
        self._client_ids = _CLIENT_IDS[self.exchange]  # the venue's own rule, so ids match its ccxt gateway
        self._table = MarketTable(
            self.exchange, f"paper:{id(engine)}", [market_from_instrument(i) for i in engine.instruments()]
        )
        self._hub = _hub(engine)
        self._account_id: str | None = None
        self._streams: dict[str, tuple[dict[str, set[_Stream[Any]]], str, _Stream[Any]]] = {}
        self._net_sides: dict[str, PositionSide] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"PaperGateway({self.exchange.value}, user={self.user_id!r})"

    @property
    def faults(self) -> FaultSet:
        """The engine's injected faults (shared by every gateway and wire front on this engine)."""
        return self.engine.faults

    # ------------------------------------------------------------------ helpers

    def _key(self) -> str:
        if self._closed:
            raise ExchangeUnavailable("the gateway is closed")
        if self._api_key is None:
            raise AuthenticationFailed("this gateway has no credentials (public data only)")
        return self._api_key

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except EngineError as exc:
            raise map_engine_error(exc) from None

    def _account(self) -> str:
        if self._account_id is None:
            self._account_id = self._call(self.engine.account_by_key, self._key()).account_id
        return self._account_id

    def _hedged(self) -> bool:
        return self._call(self.engine.account_by_key, self._key()).position_mode is PositionMode.LONG_SHORT

    def _order(self, o: SimOrder) -> Order:
        return order_to_domain(o, self._table[o.inst_id], self.user_id, self.exchange)

    def _algo(self, a: AlgoOrder) -> Order:
        """A fired close-all algo has its child's filled size; with none yet it is handed on still open, without
        a fill claim (never the minimum standing in: see reconcile.SIZE_UNKNOWN); the child's report completes it."""
        actual = self._child_filled(a) if a.sz is None and a.order_id else None
        order = algo_to_domain(a, self._table[a.inst_id], self.user_id, self.exchange, actual)
        return size_pending(order) if needs_size(order) else order

    def _child_filled(self, a: AlgoOrder) -> Decimal | None:
        try:
            child = self.engine.get_order(self._key(), order_id=a.order_id)
        except EngineError:
            return None
        done = child.state in (OrderState.FILLED, OrderState.CANCELED)  # before that its size is not final
        return child.filled_sz if done and child.filled_sz > 0 else None

    def _positions(self, p: SimPosition) -> list[Position]:
        m = self._table[p.inst_id]
        if p.pos_side is not PosSide.NET:
            return [position_to_domain(p, m, self.user_id, self.exchange, PositionSide(p.pos_side.value))]
        if p.qty != 0:
            side = PositionSide.LONG if p.qty > 0 else PositionSide.SHORT
            self._net_sides[p.inst_id] = side
            return [position_to_domain(p, m, self.user_id, self.exchange, side)]
        last = self._net_sides.get(p.inst_id)  # flat in net mode: close the side that was open
        sides = [last] if last is not None else [PositionSide.LONG, PositionSide.SHORT]
        return [position_to_domain(p, m, self.user_id, self.exchange, s) for s in sides]

    # ------------------------------------------------------------------ markets

    async def load_markets(self) -> dict[str, MarketInfo]:
        return dict(self._table.markets)

    @property
    def markets(self) -> MarketTable:
        return self._table

    def market(self, symbol: str) -> MarketInfo:
        return self._table[symbol]

    # ------------------------------------------------------------------ orders

    def _position_side(self, req: OrderRequest) -> PositionSide | None:
        if req.position_side is not None:
            return req.position_side
        if not self._hedged():
            return None
        buy = req.side is OrderSide.BUY
        if req.reduce_only or req.order_type in _PROTECTIVE:
            return PositionSide.SHORT if buy else PositionSide.LONG
        return PositionSide.LONG if buy else PositionSide.SHORT

    async def create_order(self, request: OrderRequest) -> Order:
        # the request is on its way: as over a socket, the sender's other work goes on while the exchange
        # (here the engine, in this process) matches it; orders sent together all leave before the first match
        await asyncio.sleep(0)
        key = self._key()
        m = self.market(request.symbol)
        qty = m.round_size(request.quantity)
        if qty <= 0 or qty < m.min_size:
            raise InvalidOrder(
                f"quantity {request.quantity} is below the minimum {m.min_size} {m.base} of {m.symbol}"
            )
        sz = clean(m.to_contracts(qty))
        cid = self._client_ids.apply(request.client_order_id)
        ps = self._position_side(request)
        pos_side = None if ps is None else ps.value
        side = request.side.value
        t = request.order_type
        e = self.engine
        if t in (OrderType.MARKET, OrderType.LIMIT):
            if t is OrderType.MARKET:
                ord_type = OrdType.MARKET
            elif request.post_only or request.time_in_force is TimeInForce.POST_ONLY:
                ord_type = OrdType.POST_ONLY
            else:
                ord_type = {TimeInForce.IOC: OrdType.IOC, TimeInForce.FOK: OrdType.FOK}.get(
                    request.time_in_force, OrdType.LIMIT
                )
            batch = self._call(e.place_order, key, m.symbol, side, sz, ord_type=ord_type,
                               px=request.price if t is OrderType.LIMIT else None, pos_side=pos_side,
                               reduce_only=request.reduce_only and ps is None, client_order_id=cid)  # fmt: skip
            assert batch.order is not None
            result = self._order(batch.order)
        else:
            common: dict[str, Any] = {"sz": sz, "pos_side": pos_side, "client_algo_id": cid,
                                      "reduce_only": request.reduce_only and ps is None}  # fmt: skip
            if t in (OrderType.STOP_MARKET, OrderType.STOP_LOSS, OrderType.STOP_LIMIT):
                batch = self._call(e.place_algo, key, m.symbol, "conditional", side,
                                   sl_trigger_px=request.trigger_price,
                                   sl_ord_px=request.price if t is OrderType.STOP_LIMIT else None, **common)  # fmt: skip
            elif t is OrderType.TAKE_PROFIT:
                batch = self._call(e.place_algo, key, m.symbol, "conditional", side,
                                   tp_trigger_px=request.trigger_price, tp_ord_px=request.price, **common)  # fmt: skip
            elif t is OrderType.TRIGGER:
                batch = self._call(e.place_algo, key, m.symbol, "trigger", side,
                                   trigger_px=request.trigger_price, order_px=request.price, **common)  # fmt: skip
            else:
                if request.callback_rate is None:
                    raise InvalidOrder("callback_rate is required for a trailing_stop order")
                batch = self._call(e.place_algo, key, m.symbol, "move_order_stop", side,
                                   callback_ratio=request.callback_rate, active_px=request.activation_price, **common)  # fmt: skip
            assert batch.algo is not None
            result = self._algo(batch.algo)
        if self.faults.drop_order_responses > 0:
            self.faults.drop_order_responses -= 1
            self.faults.applied["drop_order_responses"] += 1
            raise ExchangeUnavailable(
                "simulated: the connection dropped before the reply (the order was placed)"
            )
        return result

    async def fetch_order(
        self, symbol: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order | None:
        if order_id is None and client_order_id is None:
            raise ValueError("order_id or client_order_id is required")
        key = self._key()
        m = self.market(symbol)
        cid = None if client_order_id is None else self._client_ids.apply(client_order_id)
        try:
            o = self._call(self.engine.get_order, key, order_id=order_id, client_order_id=cid)
            if o.inst_id == m.symbol:
                return self._order(o)
        except OrderNotFound:
            pass
        try:
            a = self._call(self.engine.get_algo, key, algo_id=order_id, client_algo_id=cid)
            if a.inst_id == m.symbol:
                return self._algo(a)
        except OrderNotFound:
            pass
        return None

    async def cancel_order(self, symbol: str, order_id: str, is_algo: bool | None = None) -> Order | None:
        key = self._key()
        m = self.market(symbol)
        if is_algo is not True:
            try:
                batch = self._call(self.engine.cancel_order, key, order_id=order_id, inst_id=m.symbol)
                return None if batch.order is None else self._order(batch.order)
            except OrderNotFound:
                if is_algo is False:
                    raise
        batch = self._call(self.engine.cancel_algo, key, algo_id=order_id, inst_id=m.symbol)
        return None if batch.algo is None else self._algo(batch.algo)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        key = self._key()
        inst = None if symbol is None else self.market(symbol).symbol
        orders = [self._order(o) for o in self._call(self.engine.open_orders, key, inst)]
        return orders + [self._algo(a) for a in self._call(self.engine.open_algos, key, inst)]

    # ------------------------------------------------------------------ account

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        key = self._key()
        wanted = None if not symbols else {self.market(s).symbol for s in symbols}
        out: list[Position] = []
        for p in self._call(self.engine.positions, key):
            if wanted is None or p.inst_id in wanted:
                out.extend(x for x in self._positions(p) if x.size > 0)
        return out

    async def fetch_fills(self, since_ms: int, symbols: Sequence[str] = ()) -> list[FillReport]:
        out: list[FillReport] = []
        for f in self._call(self.engine.fills, self._key()):
            if f.ts >= since_ms:
                out.append(fill_to_domain(f, self.market(f.inst_id), self.exchange))
        return sorted(out, key=lambda f: (f.timestamp, int(f.trade_id)))

    async def fetch_balance(self) -> dict[str, Decimal]:
        """Equity (wallet balance + unrealized PnL) per currency."""
        return {ccy: b.equity for ccy, b in self._call(self.engine.balances, self._key()).items()}

    async def fetch_ticker(self, symbol: str) -> PriceTick:
        m = self.market(symbol)
        t = self._call(self.engine.ticker, m.symbol)
        if t is None:
            raise ExchangeUnavailable(f"no price for {m.symbol} yet")
        return tick_to_domain(t, self.exchange)

    async def set_leverage(
        self, symbol: str, leverage: int, position_side: PositionSide | None = None
    ) -> None:
        key = self._key()
        m = self.market(symbol)
        pos_side = None
        if position_side is not None and self._hedged():
            pos_side = position_side.value
        self._call(self.engine.set_leverage, key, m.symbol, leverage, pos_side=pos_side)

    async def set_position_mode(self, hedged: bool) -> None:
        self._call(self.engine.set_position_mode, self._key(), "long_short" if hedged else "net")

    async def fetch_position_mode(self) -> bool:
        return self._hedged()

    # ------------------------------------------------------------------ streams

    def _convert_orders(self, event: Event) -> list[Order]:
        if type(event) is OrderEvent:
            return [self._order(event.order)]
        if type(event) is AlgoEvent:
            return [self._algo(event.algo)]
        return []

    def _convert_positions(self, event: Event) -> list[Position]:
        return self._positions(event.position) if type(event) is PositionEvent else []

    def _convert_fills(self, event: Event) -> list[FillReport]:
        if type(event) is OrderEvent and event.fill is not None:
            return [fill_to_domain(event.fill, self._table[event.fill.inst_id], self.exchange)]
        return []

    def _convert_ticker(self, event: Event) -> list[PriceTick]:
        return [tick_to_domain(event.ticker, self.exchange)] if type(event) is TickerEvent else []

    async def _watch(
        self, name: str, convert: Callable[[Event], list[T]], symbol: str | None = None
    ) -> list[T]:
        entry = self._streams.get(name)
        if entry is None:
            stream: _Stream[Any] = _Stream(convert, conflate=symbol is not None)
            if symbol is None:
                entry = (self._hub.accounts, self._account(), stream)
            else:
                entry = (self._hub.tickers, symbol, stream)
            self._streams[name] = entry
        table, key, stream = entry
        if not stream.subscribed:
            if self._closed:
                raise ExchangeUnavailable("the gateway is closed")
            self._hub.add(table, key, stream)  # (re)subscribe: events from now on
        return await stream.next()

    async def watch_orders(self) -> list[Order]:
        self._key()
        return await self._watch("orders", self._convert_orders)

    async def watch_positions(self) -> list[Position]:
        self._key()
        return await self._watch("positions", self._convert_positions)

    async def watch_fills(self) -> list[FillReport]:
        self._key()
        return await self._watch("fills", self._convert_fills)

    async def watch_ticker(self, symbol: str) -> PriceTick:
        m = self.market(symbol)
        ticks = await self._watch(f"ticker:{m.symbol}", self._convert_ticker, m.symbol)
        return ticks[-1]

    def _convert_mark(self, event: Event) -> list[PriceTick]:
        return [mark_to_domain(event.ticker, self.exchange)] if type(event) is TickerEvent else []

    async def streams_ready(self, within_s: float) -> bool:
        return True  # in process: a watch is subscribed the moment it is called

    def sockets_pending(self) -> SocketsPending:
        return SocketsPending()  # no sockets

    async def watch_mark_price(self, symbol: str) -> PriceTick:
        m = self.market(symbol)
        ticks = await self._watch(f"mark:{m.symbol}", self._convert_mark, m.symbol)
        return ticks[-1]

    def simulate_disconnect(self, reason: str = "simulated disconnect") -> None:
        """Drop every stream: pending/next watches raise StreamDisconnected, events until the next watch
        call are lost (the caller must reconcile), as when the exchange drops a socket."""
        for table, key, stream in self._streams.values():
            self._hub.remove(table, key, stream)
            stream.disconnect(reason)

    async def close(self) -> None:
        self._closed = True
        for table, key, stream in self._streams.values():
            self._hub.remove(table, key, stream)
            stream.disconnect("gateway closed")
        self._streams.clear()
