"""``SimEngine``: the facade of the exchange simulator's pure core.

One engine simulates one venue ("okx" or "binance"): instruments, accounts, orders matched against the
current price, positions, margin, algo orders. No I/O, no asyncio, no randomness except the seeded id bases:
the same seed, clock and calls give the same events and the same :meth:`SimEngine.snapshot`.

Conventions
- Quantities are in the venue's native unit (OKX contracts, Binance base currency); Decimal throughout.
- Every mutating call returns an :class:`EventBatch` (a ``list`` of events, plus ``.order`` / ``.algo``: the
  final state of the order or algo it created or targeted) and delivers the same events, in order, to every
  subscriber. A call that raises :class:`EngineError` has changed nothing (ids are not consumed either).
- Accounts are addressed by API key; events carry ``account_id``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from .accounts import DEFAULT_FEE_RATES, DEFAULT_LEVERAGE, Account, Balance
from .algos import AlgoOrder, advance, build_algo
from .book import AccountBook
from .clock import Clock, ManualClock
from .decimals import MONEY_QUANTUM, ZERO, DecimalLike, is_multiple, to_decimal, to_optional_decimal
from .enums import (
    AlgoEventKind,
    AlgoState,
    AlgoType,
    CancelSource,
    Liquidity,
    MarginMode,
    OrderEventKind,
    OrderState,
    OrdType,
    PositionMode,
    PosSide,
    Side,
    TpSlLeg,
    TriggerDirection,
    TriggerPxType,
    Venue,
    parse_enum,
)
from .errors import (
    AlgoNotFound,
    DuplicateAccount,
    DuplicateClientOrderId,
    EngineError,
    InsufficientMargin,
    InvalidLeverage,
    InvalidPositionSide,
    InvalidPrice,
    InvalidRequest,
    InvalidSize,
    InvalidTriggerPrice,
    MinNotional,
    NoMarketPrice,
    OrderNotFound,
    PositionModeChangeRejected,
    PostOnlyWouldTake,
    ReduceOnlyRejected,
    UnknownAccount,
    UnknownInstrument,
)
from .events import (
    AccountConfigEvent,
    AlgoEvent,
    BalanceEvent,
    Event,
    EventBatch,
    OrderEvent,
    PositionEvent,
    TickerEvent,
)
from .faults import FaultSet
from .instruments import Instrument, check_price, check_size, default_instruments
from .matching import arrival_price, is_marketable, resting_price, step_qty
from .orders import AttachedTpSl, Fill, Order
from .positions import Position, apply_fill, reducible_qty
from .prices import Ticker

__all__ = ["Listener", "SimEngine"]

Listener = Callable[[Event], None]

_BUY = Side.BUY
_SELL = Side.SELL
_NET = PosSide.NET
_LONG = PosSide.LONG
_SHORT = PosSide.SHORT
_LIVE = OrderState.LIVE
_PARTIAL = OrderState.PARTIALLY_FILLED
_FILLED = OrderState.FILLED
_MARKET = OrdType.MARKET
_TAKER = Liquidity.TAKER
_MINUS_ONE = Decimal(-1)


def _final_order(batch: EventBatch, order: Order) -> Order:
    """The snapshot in the batch's last event about ``order`` (every change emits one), else a copy."""
    oid = order.order_id
    for ev in reversed(batch):
        if type(ev) is OrderEvent and ev.order.order_id == oid:
            return ev.order
    return order.copy()


class SimEngine:
    """Deterministic exchange-simulator core for one venue.

    ``clock`` returns epoch ms (default: a :class:`ManualClock`, so runs are reproducible; pass
    ``wall_clock_ms`` for live timestamps). Timestamps never go backwards within an engine.
    ``history_limit`` bounds finished orders/algos and fills kept per account (oldest dropped first).
    ``faults`` (:class:`~.faults.FaultSet`) is the venue's injected misbehaviour; the engine itself applies
    ``clock_offset_ms`` (added to every timestamp it makes) and ``visibility_lag_ms`` (a new order or algo
    is missing from get/open/history queries for that long after it was placed; events are not delayed).
    """

    def __init__(
        self,
        venue: Venue,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        instruments: Iterable[Instrument] | None = None,
        history_limit: int = 10_000,
    ) -> None:
        if venue not in ("okx", "binance"):
            raise InvalidRequest(f"unknown venue {venue!r}", field="venue")
        self._venue: Venue = venue
        self._seed = seed
        self._clock: Clock = clock if clock is not None else ManualClock()
        self._history_limit = history_limit
        self._instruments: dict[str, Instrument] = {}
        self._tickers: dict[str, Ticker] = {}
        self._open_by_inst: dict[str, dict[str, Order]] = {}
        self._algos_by_inst: dict[str, dict[str, AlgoOrder]] = {}
        self._books: dict[str, AccountBook] = {}
        self._by_key: dict[str, AccountBook] = {}
        self._listeners: list[Listener] = []
        self._last_ts = 0
        self._seq = 0
        self.faults = FaultSet(venue)
        self._order_placed_at: dict[str, int] = {}  # only while a visibility lag is set
        self._algo_placed_at: dict[str, int] = {}
        rng = random.Random(seed)
        if venue == "okx":
            self._next_order = 600_000_000_000_000_000 + rng.randrange(10**15) * 100
            self._next_algo = 700_000_000_000_000_000 + rng.randrange(10**15) * 100
            self._next_trade = 100_000_000 + rng.randrange(10**7) * 10
            self._next_pos = 800_000_000_000_000_000 + rng.randrange(10**15) * 100
        else:
            self._next_order = 4_000_000_000 + rng.randrange(10**7) * 100
            self._next_algo = 1_000_000_000_000 + rng.randrange(10**7) * 100
            self._next_trade = 200_000_000 + rng.randrange(10**7) * 10
            self._next_pos = 900_000_000 + rng.randrange(10**6) * 100
        self._next_account = 500_000_000_000_000_000 + rng.randrange(10**15) * 100
        for inst in default_instruments(venue) if instruments is None else instruments:
            self.add_instrument(inst)

    # ------------------------------------------------------------------ basics

    @property
    def venue(self) -> Venue:
        return self._venue

    @property
    def seed(self) -> int:
        return self._seed

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Deliver every future event to ``callback`` (after the call's state change is complete).
        Returns an unsubscribe function. Listeners should not raise: the first exception is re-raised to the
        caller of the mutating method after all listeners got all events (the state change stands)."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _raw_now(self) -> int:
        """The clock, never going backwards (before the fault offset)."""
        t = self._clock()
        if t < self._last_ts:
            return self._last_ts
        self._last_ts = t
        return t

    def _now(self) -> int:
        return self._raw_now() + self.faults.clock_offset_ms

    def now_ms(self) -> int:
        """The exchange's time in epoch ms (its clock, shifted by ``faults.clock_offset_ms``)."""
        return self._now()

    # ------------------------------------------------------------------ visibility lag

    def _placed(self, table: dict[str, int], oid: str) -> None:
        """Remember when ``oid`` was placed while a visibility lag is set (queries hide it until it passed)."""
        lag = self.faults.visibility_lag_ms
        if lag <= 0:
            return
        now = self._raw_now()
        if len(table) >= 1024:  # bound: forget the ones whose lag has passed
            for k in [k for k, at in table.items() if now - at >= lag]:
                del table[k]
        table[oid] = now

    def _visible(self, table: dict[str, int], oid: str | None) -> bool:
        """Whether queries show ``oid``: its lag (the current setting, so clearing it shows all) has passed."""
        if not table or oid is None:
            return True
        placed = table.get(oid)
        if placed is None:
            return True
        if self._raw_now() - placed >= self.faults.visibility_lag_ms:
            del table[oid]
            return True
        return False

    def _dispatch(self, batch: EventBatch) -> EventBatch:
        if self._listeners and batch:
            error: BaseException | None = None
            for listener in tuple(self._listeners):
                for event in batch:
                    try:
                        listener(event)
                    except Exception as exc:
                        if error is None:
                            error = exc
            if error is not None:
                raise error
        return batch

    def _book(self, api_key: str) -> AccountBook:
        book = self._by_key.get(api_key)
        if book is None:
            raise UnknownAccount("unknown api key")
        return book

    def _inst(self, inst_id: str) -> Instrument:
        inst = self._instruments.get(inst_id)
        if inst is None:
            raise UnknownInstrument(f"unknown instrument {inst_id!r}", inst_id=inst_id)
        return inst

    # ------------------------------------------------------------------ instruments and prices

    def add_instrument(self, instrument: Instrument) -> None:
        """Add or replace an instrument definition. Replacing one with open exposure may not change its
        contract value, tick or lot size."""
        if instrument.venue != self._venue:
            raise InvalidRequest(f"instrument venue {instrument.venue} != engine venue {self._venue}")
        old = self._instruments.get(instrument.inst_id)
        if old is not None and (
            old.contract_value != instrument.contract_value
            or old.tick_size != instrument.tick_size
            or old.lot_size != instrument.lot_size
        ):
            iid = instrument.inst_id
            busy = bool(self._open_by_inst.get(iid)) or bool(self._algos_by_inst.get(iid))
            busy = busy or any(
                p.qty != 0 for b in self._books.values() for (i, _), p in b.positions.items() if i == iid
            )
            if busy:
                raise InvalidRequest("cannot change contract value/tick/lot of an instrument in use")
        self._instruments[instrument.inst_id] = instrument
        self._open_by_inst.setdefault(instrument.inst_id, {})
        self._algos_by_inst.setdefault(instrument.inst_id, {})

    def instrument(self, inst_id: str) -> Instrument:
        return self._inst(inst_id)

    def instruments(self) -> list[Instrument]:
        return list(self._instruments.values())

    def set_max_fill_per_step(self, inst_id: str, value: DecimalLike | None) -> None:
        """Partial-fill simulation: cap what one order fills per match pass (None = unlimited)."""
        inst = self._inst(inst_id)
        v = to_optional_decimal(value, "max_fill_per_step")
        if v is not None and (v <= 0 or not is_multiple(v, inst.lot_size)):
            raise InvalidSize("max_fill_per_step must be a positive multiple of the lot size")
        self._instruments[inst_id] = inst.with_max_fill_per_step(v)

    def ticker(self, inst_id: str) -> Ticker | None:
        """Current price state, or None before the first ``set_price``."""
        self._inst(inst_id)
        return self._tickers.get(inst_id)

    def set_price(
        self,
        inst_id: str,
        last: DecimalLike,
        bid: DecimalLike | None = None,
        ask: DecimalLike | None = None,
        mark: DecimalLike | None = None,
    ) -> EventBatch:
        """Move the price, then match resting orders (time priority) and then run algo triggers.

        bid/ask default to last -/+ one tick, mark to last. Emits a TickerEvent first.
        """
        inst = self._inst(inst_id)
        last_d = to_decimal(last, "last")
        if last_d <= 0:
            raise InvalidPrice("last must be positive", field="last")
        tick = inst.tick_size
        bid_d = (last_d - tick if last_d > tick else last_d) if bid is None else to_decimal(bid, "bid")
        ask_d = last_d + tick if ask is None else to_decimal(ask, "ask")
        mark_d = last_d if mark is None else to_decimal(mark, "mark")
        if bid_d <= 0 or ask_d <= 0 or mark_d <= 0:
            raise InvalidPrice("bid, ask and mark must be positive")
        if bid_d > ask_d:
            raise InvalidPrice("bid must not exceed ask", bid=str(bid_d), ask=str(ask_d))
        ts = self._now()
        ticker = Ticker(inst_id, last_d, bid_d, ask_d, mark_d, ts)
        self._tickers[inst_id] = ticker
        batch = EventBatch()
        self._seq += 1
        batch.append(TickerEvent(self._seq, ts, ticker))
        resting = self._open_by_inst[inst_id]
        if resting:
            step = inst.max_fill_per_step
            for order in list(resting.values()):
                if order.state is not _LIVE and order.state is not _PARTIAL:
                    continue
                hit = resting_price(order, ticker)
                if hit is not None:
                    rem = order.sz - order.filled_sz
                    self._fill(
                        self._books[order.account_id],
                        order,
                        inst,
                        step_qty(rem, step),
                        hit[0],
                        hit[1],
                        batch,
                        ts,
                    )
        algos = self._algos_by_inst[inst_id]
        if algos:
            for algo in list(algos.values()):
                if algo.state is not AlgoState.LIVE:
                    continue
                price = ticker.mark if algo.trigger_px_type is TriggerPxType.MARK else last_d
                result = advance(algo, price)
                if result.activated:
                    algo.updated_ms = ts
                    self._seq += 1
                    batch.append(
                        AlgoEvent(self._seq, ts, algo.account_id, AlgoEventKind.ACTIVATED, algo.copy())
                    )
                if result.fired:
                    self._trigger_algo(self._books[algo.account_id], algo, inst, result.leg, price, batch, ts)
        return self._dispatch(batch)

    # ------------------------------------------------------------------ accounts

    def create_account(
        self,
        api_key: str,
        secret: str,
        passphrase: str | None = None,
        *,
        balances: dict[str, DecimalLike] | None = None,
        position_mode: PositionMode | str = PositionMode.NET,
        maker_fee_rate: DecimalLike | None = None,
        taker_fee_rate: DecimalLike | None = None,
        default_leverage: int = DEFAULT_LEVERAGE,
        label: str = "",
    ) -> Account:
        """Create an account (returns a copy, including the secret). Fee rates default per venue."""
        if not api_key:
            raise InvalidRequest("api_key must not be empty", field="api_key")
        if api_key in self._by_key:
            raise DuplicateAccount("an account with this api key exists")
        mode = parse_enum(PositionMode, position_mode, "position_mode")
        maker_default, taker_default = DEFAULT_FEE_RATES[self._venue]
        maker = maker_default if maker_fee_rate is None else to_decimal(maker_fee_rate, "maker_fee_rate")
        taker = taker_default if taker_fee_rate is None else to_decimal(taker_fee_rate, "taker_fee_rate")
        bals = {ccy: to_decimal(v, f"balances[{ccy}]") for ccy, v in (balances or {}).items()}
        if type(default_leverage) is not int or default_leverage < 1:
            raise InvalidLeverage("default_leverage must be a positive int")
        ts = self._now()
        account_id = str(self._next_account)
        self._next_account += 1
        account = Account(
            account_id,
            api_key,
            secret,
            passphrase,
            self._venue,
            bals,
            mode,
            maker,
            taker,
            default_leverage,
            label=label,
            created_ms=ts,
        )
        book = AccountBook(account, self._history_limit)
        self._books[account_id] = book
        self._by_key[api_key] = book
        return account.copy()

    def account_by_key(self, api_key: str) -> Account:
        """The account for an API key (a copy, with secret and passphrase for signature checks)."""
        return self._book(api_key).account.copy()

    def account(self, account_id: str) -> Account:
        book = self._books.get(account_id)
        if book is None:
            raise UnknownAccount(f"unknown account {account_id}")
        return book.account.copy()

    def accounts(self) -> list[Account]:
        return [b.account.copy() for b in self._books.values()]

    def deposit(self, api_key: str, ccy: str, amount: DecimalLike) -> EventBatch:
        """Add ``amount`` (negative = withdraw; may not exceed the available balance)."""
        book = self._book(api_key)
        amt = to_decimal(amount, "amount")
        if amt < 0 and -amt > book.balance(self._tickers, ccy).available:
            raise InsufficientMargin("withdrawal exceeds the available balance")
        ts = self._now()
        bals = book.account.balances
        bals[ccy] = bals.get(ccy, ZERO) + amt
        batch = EventBatch()
        self._emit_balance(book, ccy, amt, "deposit", None, batch, ts)
        return self._dispatch(batch)

    def set_balance(self, api_key: str, ccy: str, amount: DecimalLike) -> EventBatch:
        """Set the wallet balance of ``ccy`` (control API); must stay >= the margin in use."""
        book = self._book(api_key)
        amt = to_decimal(amount, "amount")
        if amt < 0:
            raise InvalidRequest("balance must not be negative", field="amount")
        info = book.balance(self._tickers, ccy)
        if amt < info.frozen:
            raise InsufficientMargin("balance would be below the margin in use")
        ts = self._now()
        book.account.balances[ccy] = amt
        batch = EventBatch()
        self._emit_balance(book, ccy, amt - info.balance, "set_balance", None, batch, ts)
        return self._dispatch(batch)

    def set_position_mode(self, api_key: str, mode: PositionMode | str) -> EventBatch:
        """net <-> long_short. Rejected while the account has open positions, orders or algo orders."""
        book = self._book(api_key)
        new_mode = parse_enum(PositionMode, mode, "mode")
        account = book.account
        batch = EventBatch()
        if new_mode is account.position_mode:
            return batch
        if book.open_orders or book.open_algos or any(p.qty != 0 for p in book.positions.values()):
            raise PositionModeChangeRejected(
                "close positions and cancel orders before changing position mode"
            )
        ts = self._now()
        account.position_mode = new_mode
        book.positions.clear()
        self._seq += 1
        batch.append(AccountConfigEvent(self._seq, ts, account.account_id, "position_mode", new_mode))
        return self._dispatch(batch)

    def get_leverage(self, api_key: str, inst_id: str, pos_side: PosSide | str = PosSide.NET) -> int:
        self._inst(inst_id)
        return self._book(api_key).account.get_leverage(inst_id, parse_enum(PosSide, pos_side, "pos_side"))

    def set_leverage(
        self,
        api_key: str,
        inst_id: str,
        leverage: int,
        *,
        pos_side: PosSide | str | None = None,
        margin_mode: MarginMode | str | None = None,
    ) -> EventBatch:
        """Set leverage (1..instrument max) for one pos_side, or for all (None). Re-checks the margin of
        open positions (InsufficientMargin if it no longer fits). ``margin_mode`` is stored as a label."""
        book = self._book(api_key)
        inst = self._inst(inst_id)
        if type(leverage) is not int or not 1 <= leverage <= inst.max_leverage:
            raise InvalidLeverage(f"leverage must be an int in 1..{inst.max_leverage}", max=inst.max_leverage)
        sides = (_NET, _LONG, _SHORT) if pos_side is None else (parse_enum(PosSide, pos_side, "pos_side"),)
        mm = None if margin_mode is None else parse_enum(MarginMode, margin_mode, "margin_mode")
        account = book.account
        affected = [p for ps in sides if (p := book.positions.get((inst_id, ps))) is not None]
        extra = ZERO
        ticker = self._tickers.get(inst_id)
        for p in affected:
            if p.qty != 0:
                mark = ticker.mark if ticker is not None else p.avg_px
                notional = abs(p.qty) * p.contract_value * mark
                extra += notional / leverage - notional / p.leverage
        if extra > 0 and extra > book.balance(self._tickers, inst.settle).available:
            raise InsufficientMargin("not enough margin for the new leverage")
        ts = self._now()
        batch = EventBatch()
        for ps in sides:
            account.leverage[(inst_id, ps)] = leverage
        if mm is not None:
            account.margin_modes[inst_id] = mm
        self._seq += 1
        batch.append(
            AccountConfigEvent(
                self._seq,
                ts,
                account.account_id,
                "leverage",
                account.position_mode,
                inst_id,
                None if pos_side is None else sides[0],
                leverage,
            )
        )
        for p in affected:
            p.leverage = leverage
            if mm is not None:
                p.margin_mode = mm
            if p.qty != 0:
                p.updated_ms = ts
                self._seq += 1
                batch.append(PositionEvent(self._seq, ts, account.account_id, self._pos_view(p)))
        return self._dispatch(batch)

    # ------------------------------------------------------------------ balances and positions

    def balances(self, api_key: str) -> dict[str, Balance]:
        """Balance per currency held or used by the account."""
        book = self._book(api_key)
        return {ccy: book.balance(self._tickers, ccy) for ccy in book.currencies()}

    def balance(self, api_key: str, ccy: str) -> Balance:
        return self._book(api_key).balance(self._tickers, ccy)

    def _pos_view(self, pos: Position) -> Position:
        inst = self._instruments[pos.inst_id]
        t = self._tickers.get(pos.inst_id)
        pos.refresh(None if t is None else t.mark, inst.maint_margin_rate, inst.tick_size)
        return pos.copy()

    def positions(
        self, api_key: str, inst_id: str | None = None, *, include_flat: bool = False
    ) -> list[Position]:
        """Positions of the account (copies with derived fields vs the current mark)."""
        book = self._book(api_key)
        return [
            self._pos_view(p)
            for (i, _), p in book.positions.items()
            if (inst_id is None or i == inst_id) and (include_flat or p.qty != 0)
        ]

    def position(self, api_key: str, inst_id: str, pos_side: PosSide | str = PosSide.NET) -> Position | None:
        book = self._book(api_key)
        p = book.positions.get((inst_id, parse_enum(PosSide, pos_side, "pos_side")))
        return None if p is None else self._pos_view(p)

    def fills(self, api_key: str, inst_id: str | None = None, limit: int | None = None) -> list[Fill]:
        """Recent fills of the account, newest first."""
        book = self._book(api_key)
        out = [f for f in reversed(book.fills) if inst_id is None or f.inst_id == inst_id]
        return out if limit is None else out[:limit]

    # ------------------------------------------------------------------ orders

    def _resolve_pos_side(self, account: Account, pos_side: PosSide | str | None) -> PosSide:
        if account.position_mode is PositionMode.NET:
            if pos_side is None or pos_side == "net":
                return _NET
            raise InvalidPositionSide("pos_side must be net (or omitted) in net mode", field="pos_side")
        if pos_side is None:
            raise InvalidPositionSide(
                "pos_side long or short is required in long_short mode", field="pos_side"
            )
        ps = parse_enum(PosSide, pos_side, "pos_side")
        if ps is _NET:
            raise InvalidPositionSide("pos_side must be long or short in long_short mode", field="pos_side")
        return ps

    def _prepare_order(
        self,
        book: AccountBook,
        inst: Instrument,
        side: Side,
        sz: Decimal,
        ord_type: OrdType,
        px: Decimal | None,
        pos_side: PosSide,
        reduce_only: bool,
        client_order_id: str | None,
        margin_mode: MarginMode | None,
        ts: int,
    ) -> Order:
        """Validate a new order and build it (no id, not registered). Raises before any state change."""
        account = book.account
        inst_id = inst.inst_id
        market = ord_type is _MARKET
        check_size(inst, sz, market)
        if market:
            px = None
        else:
            if px is None:
                raise InvalidPrice("px is required for limit orders", field="px")
            check_price(inst, px, "px")
        if client_order_id is not None and client_order_id in book.open_clids:
            raise DuplicateClientOrderId(
                "client order id already used by an open order", client_order_id=client_order_id
            )
        ticker = self._tickers.get(inst_id)
        if market and ticker is None:
            raise NoMarketPrice(f"no price for {inst_id} yet", inst_id=inst_id)
        if pos_side is not _NET:
            closing = (side is _SELL) is (pos_side is _LONG)
            if reduce_only and not closing:
                raise ReduceOnlyRejected("reduce-only order on the opening side of a hedge position")
            reduce_only = closing
        requested = sz
        pos = book.positions.get((inst_id, pos_side))
        if reduce_only:
            reducible = reducible_qty(pos, side)
            if reducible <= 0:
                raise ReduceOnlyRejected("no position to reduce", inst_id=inst_id)
            sz = min(sz, reducible)
        if ord_type is OrdType.POST_ONLY and ticker is not None:
            assert px is not None
            if is_marketable(side, px, ticker):
                raise PostOnlyWouldTake("post-only order would take liquidity")
        lev = account.get_leverage(inst_id, pos_side)
        open_sz = ZERO
        per_unit = ZERO
        if not reduce_only:
            if px is not None:
                ref = px
            else:
                assert ticker is not None
                ref = ticker.ask if side is _BUY else ticker.bid
            ct = inst.contract_value
            unit_notional = ct * ref
            if inst.min_notional and sz * unit_notional < inst.min_notional:
                raise MinNotional(
                    f"notional below the minimum {inst.min_notional}", min=str(inst.min_notional)
                )
            if pos_side is _NET:
                closable = reducible_qty(pos, side)
                if closable:
                    for o in book.open_orders.values():
                        if o.inst_id == inst_id and o.side is side:
                            closable -= o.sz - o.filled_sz
                    if closable < 0:
                        closable = ZERO
                open_sz = sz - closable if sz > closable else ZERO
            else:
                open_sz = sz
            if open_sz:
                per_unit = unit_notional / lev + unit_notional * account.taker_fee_rate
                needed = open_sz * per_unit
                if needed > book.available(self._tickers, inst.settle):
                    raise InsufficientMargin("insufficient margin", needed=str(needed))
        return Order(
            "",
            client_order_id,
            account.account_id,
            inst_id,
            side,
            pos_side,
            ord_type,
            px,
            sz,
            ZERO,
            None,
            _LIVE,
            reduce_only,
            margin_mode or account.get_margin_mode(inst_id),
            lev,
            ZERO,
            inst.settle,
            ZERO,
            ts,
            ts,
            None,
            None,
            None,
            None,
            requested if requested != sz else None,
            None,
            None,
            open_sz,
            per_unit,
        )

    def _commit_order(self, book: AccountBook, order: Order) -> None:
        oid = str(self._next_order)
        self._next_order += 1
        order.order_id = oid
        book.add_open_order(order)
        self._open_by_inst[order.inst_id][oid] = order
        self._placed(self._order_placed_at, oid)

    def place_order(
        self,
        api_key: str,
        inst_id: str,
        side: Side | str,
        sz: DecimalLike,
        *,
        ord_type: OrdType | str = OrdType.MARKET,
        px: DecimalLike | None = None,
        pos_side: PosSide | str | None = None,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        tag: str | None = None,
        margin_mode: MarginMode | str | None = None,
        attach_tp_sl: AttachedTpSl | None = None,
    ) -> EventBatch:
        """Place an order; it matches at once against the current price (see ``matching``).

        Net mode: pos_side omitted/net; long_short mode: pos_side long/short required, and sell-long /
        buy-short orders are closing orders (treated as reduce-only). Reduce-only orders are rejected when
        there is nothing to reduce and capped to the position size (``requested_sz`` keeps the original).
        Events: OrderEvent new, then per fill OrderEvent trade + PositionEvent + BalanceEvent, then
        OrderEvent canceled for an IOC/FOK remainder. ``batch.order`` is the order's final state.
        """
        book = self._book(api_key)
        inst = self._inst(inst_id)
        side_e = parse_enum(Side, side, "side")
        type_e = parse_enum(OrdType, ord_type, "ord_type")
        sz_d = to_decimal(sz, "sz")
        px_d = None if px is None else to_decimal(px, "px")
        ps = self._resolve_pos_side(book.account, pos_side)
        mm = None if margin_mode is None else parse_enum(MarginMode, margin_mode, "margin_mode")
        ts = self._now()
        order = self._prepare_order(
            book, inst, side_e, sz_d, type_e, px_d, ps, reduce_only, client_order_id, mm, ts
        )
        if attach_tp_sl is not None:
            self._check_attached(inst, order, attach_tp_sl)
            order.attach_tp_sl = attach_tp_sl
        order.tag = tag
        self._commit_order(book, order)
        batch = EventBatch()
        self._seq += 1
        batch.append(OrderEvent(self._seq, ts, book.account.account_id, OrderEventKind.NEW, order.copy()))
        self._arrive(book, order, inst, batch, ts)
        batch.order = _final_order(batch, order)
        return self._dispatch(batch)

    def _check_attached(self, inst: Instrument, order: Order, att: AttachedTpSl) -> None:
        if att.sl_trigger_px is None and att.tp_trigger_px is None:
            raise InvalidTriggerPrice("attached TP/SL needs sl_trigger_px or tp_trigger_px")
        for name in ("sl_trigger_px", "sl_ord_px", "tp_trigger_px", "tp_ord_px"):
            v = getattr(att, name)
            if v is not None and v != _MINUS_ONE:
                check_price(inst, v, name)
        ticker = self._tickers.get(inst.inst_id)
        ref = order.px if order.px is not None else (None if ticker is None else ticker.last)
        if ref is None:
            return
        sl, tp = att.sl_trigger_px, att.tp_trigger_px
        if order.side is _BUY:  # protects a long: SL below, TP above
            bad = (sl is not None and sl >= ref) or (tp is not None and tp <= ref)
        else:
            bad = (sl is not None and sl <= ref) or (tp is not None and tp >= ref)
        if bad:
            raise InvalidTriggerPrice("attached SL/TP trigger on the wrong side of the order price")

    def _arrive(self, book: AccountBook, order: Order, inst: Instrument, batch: EventBatch, ts: int) -> None:
        """Arrival matching: taker fill if marketable; IOC/FOK remainders end canceled."""
        ticker = self._tickers.get(order.inst_id)
        ord_type = order.ord_type
        hit = None if ticker is None else arrival_price(order, ticker)
        step = inst.max_fill_per_step
        if ord_type is OrdType.FOK:
            ok = hit is not None and (step is None or step >= order.sz)
            if not ok:
                self._cancel(book, order, CancelSource.FOK, batch, ts)
                return
        if hit is not None:
            self._fill(
                book, order, inst, step_qty(order.sz - order.filled_sz, step), hit[0], hit[1], batch, ts
            )
        if ord_type is OrdType.IOC and (order.state is _LIVE or order.state is _PARTIAL):
            self._cancel(book, order, CancelSource.IOC, batch, ts)

    def _fill(
        self,
        book: AccountBook,
        order: Order,
        inst: Instrument,
        qty: Decimal,
        px: Decimal,
        liquidity: Liquidity,
        batch: EventBatch,
        ts: int,
    ) -> None:
        account = book.account
        key = (order.inst_id, order.pos_side)
        pos = book.positions.get(key)
        side = order.side
        if order.reduce_only:
            reducible = reducible_qty(pos, side)
            qty = min(qty, reducible)
            if qty <= 0:
                self._cancel(book, order, CancelSource.REDUCE_ONLY, batch, ts)
                return
        if pos is None:
            pos = Position(
                str(self._next_pos),
                account.account_id,
                order.inst_id,
                order.pos_side,
                ZERO,
                ZERO,
                account.get_leverage(order.inst_id, order.pos_side),
                account.get_margin_mode(order.inst_id),
                ZERO,
                ZERO,
                ts,
                ts,
                inst.contract_value,
                inst.settle,
            )
            self._next_pos += 1
            book.positions[key] = pos
        elif pos.qty == 0:
            pos.leverage = account.get_leverage(order.inst_id, order.pos_side)
        rate = account.taker_fee_rate if liquidity is _TAKER else account.maker_fee_rate
        fee = (px * qty * inst.contract_value * rate).quantize(MONEY_QUANTUM)
        realized = apply_fill(pos, side, qty, px, ts)
        pos.fee += fee
        prev = order.filled_sz
        filled = prev + qty
        order.avg_px = px if order.avg_px is None else (order.avg_px * prev + px * qty) / filled
        order.filled_sz = filled
        order.fee += fee
        order.pnl += realized
        order.updated_ms = ts
        order.last_fill_ms = ts
        done = filled >= order.sz
        order.state = _FILLED if done else _PARTIAL
        delta = realized - fee
        ccy = inst.settle
        bals = account.balances
        bals[ccy] = bals.get(ccy, ZERO) + delta
        trade_id = str(self._next_trade)
        self._next_trade += 1
        fill = Fill(
            trade_id,
            order.order_id,
            order.client_order_id,
            account.account_id,
            order.inst_id,
            side,
            order.pos_side,
            px,
            qty,
            fee,
            ccy,
            liquidity,
            realized,
            order.reduce_only,
            ts,
            order.algo_id,
        )
        book.fills.append(fill)
        if done:
            self._finish(book, order)
        aid = account.account_id
        seq = self._seq
        batch.append(OrderEvent(seq + 1, ts, aid, OrderEventKind.TRADE, order.copy(), fill))
        batch.append(PositionEvent(seq + 2, ts, aid, self._pos_view(pos)))
        self._seq = seq + 2
        self._emit_balance(book, ccy, delta, "trade", trade_id, batch, ts)
        if pos.qty == 0:
            self._reduce_only_cleanup(book, order.inst_id, order.pos_side, batch, ts)
        if done and order.attach_tp_sl is not None:
            self._place_attached(book, order, inst, batch, ts)

    def _emit_balance(
        self,
        book: AccountBook,
        ccy: str,
        delta: Decimal,
        reason: str,
        trade_id: str | None,
        batch: EventBatch,
        ts: int,
    ) -> None:
        bal, used, upl = book.balance_figures(self._tickers, ccy)
        self._seq += 1
        batch.append(
            BalanceEvent(
                self._seq,
                ts,
                book.account.account_id,
                ccy,
                bal,
                bal - used,
                used,
                upl,
                bal + upl,
                delta,
                reason,
                trade_id,
            )
        )

    def _finish(self, book: AccountBook, order: Order) -> None:
        """Move a no-longer-open order from the open indexes to the history."""
        book.finish_order(order)
        del self._open_by_inst[order.inst_id][order.order_id]

    def _cancel(
        self, book: AccountBook, order: Order, source: CancelSource, batch: EventBatch, ts: int
    ) -> None:
        order.state = OrderState.CANCELED
        order.cancel_source = source
        order.updated_ms = ts
        self._finish(book, order)
        self._seq += 1
        batch.append(
            OrderEvent(self._seq, ts, book.account.account_id, OrderEventKind.CANCELED, order.copy())
        )
        if order.attach_tp_sl is not None and order.filled_sz > 0:
            self._place_attached(book, order, self._instruments[order.inst_id], batch, ts)

    def _reduce_only_cleanup(
        self, book: AccountBook, inst_id: str, pos_side: PosSide, batch: EventBatch, ts: int
    ) -> None:
        """Position went flat: cancel the reduce-only/closing orders left on it."""
        for o in list(book.open_orders.values()):
            if o.reduce_only and o.inst_id == inst_id and o.pos_side is pos_side and o.is_open:
                self._cancel(book, o, CancelSource.REDUCE_ONLY, batch, ts)

    def _find_open_order(
        self, book: AccountBook, order_id: str | None, client_order_id: str | None, inst_id: str | None
    ) -> Order:
        if order_id is None and client_order_id is None:
            raise InvalidRequest("order_id or client_order_id is required")
        order = book.find_open_order(order_id, client_order_id)
        if order is None or (inst_id is not None and order.inst_id != inst_id):
            state = None
            if order is None:
                found = book.find_order(order_id, client_order_id)
                if found is not None and (inst_id is None or found.inst_id == inst_id):
                    state = found.state
            raise OrderNotFound(
                "order does not exist or is no longer open",
                order_id=order_id,
                client_order_id=client_order_id,
                state=state,
            )
        return order

    def cancel_order(
        self,
        api_key: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        inst_id: str | None = None,
    ) -> EventBatch:
        """Cancel an open order by id or client id (and optionally its inst_id). A filled, canceled or
        unknown order raises OrderNotFound (``details["state"]`` = final state if it exists)."""
        book = self._book(api_key)
        order = self._find_open_order(book, order_id, client_order_id, inst_id)
        ts = self._now()
        batch = EventBatch()
        self._cancel(book, order, CancelSource.USER, batch, ts)
        batch.order = _final_order(batch, order)
        return self._dispatch(batch)

    def cancel_all(self, api_key: str, inst_id: str | None = None) -> EventBatch:
        """Cancel every open order of the account (on one instrument if given)."""
        book = self._book(api_key)
        if inst_id is not None:
            self._inst(inst_id)
        ts = self._now()
        batch = EventBatch()
        for o in list(book.open_orders.values()):
            if (inst_id is None or o.inst_id == inst_id) and o.is_open:
                self._cancel(book, o, CancelSource.USER, batch, ts)
        return self._dispatch(batch)

    def amend_order(
        self,
        api_key: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        inst_id: str | None = None,
        new_sz: DecimalLike | None = None,
        new_px: DecimalLike | None = None,
    ) -> EventBatch:
        """Change size (total, must exceed the filled size) and/or price of an open limit order. If the new
        price is marketable the order takes at once (post_only: rejected instead)."""
        book = self._book(api_key)
        order = self._find_open_order(book, order_id, client_order_id, inst_id)
        if order.ord_type is _MARKET:
            raise InvalidRequest("market orders cannot be amended")
        if new_sz is None and new_px is None:
            raise InvalidRequest("new_sz or new_px is required")
        inst = self._instruments[order.inst_id]
        sz = order.sz if new_sz is None else to_decimal(new_sz, "new_sz")
        px = order.px if new_px is None else to_decimal(new_px, "new_px")
        assert px is not None
        if new_sz is not None:
            check_size(inst, sz, False)
            if sz <= order.filled_sz:
                raise InvalidSize("new size must exceed the filled size", field="new_sz")
        if new_px is not None:
            check_price(inst, px, "new_px")
        ticker = self._tickers.get(order.inst_id)
        if (
            order.ord_type is OrdType.POST_ONLY
            and ticker is not None
            and is_marketable(order.side, px, ticker)
        ):
            raise PostOnlyWouldTake("post-only order would take liquidity")
        if order.reduce_only:
            reducible = reducible_qty(book.positions.get((order.inst_id, order.pos_side)), order.side)
            if sz - order.filled_sz > reducible:
                sz = order.filled_sz + reducible
        open_sz = order.margin_open_sz
        per_unit = order.margin_per_unit
        if not order.reduce_only:
            unit_notional = inst.contract_value * px
            if inst.min_notional and sz * unit_notional < inst.min_notional:
                raise MinNotional(f"notional below the minimum {inst.min_notional}")
            open_sz = max(ZERO, open_sz + (sz - order.sz))
            per_unit = unit_notional / order.leverage + unit_notional * book.account.taker_fee_rate
            rem = sz - order.filled_sz
            new_reserved = min(rem, open_sz) * per_unit
            extra = new_reserved - order.reserved_margin()
            if extra > 0 and extra > book.balance(self._tickers, inst.settle).available:
                raise InsufficientMargin("insufficient margin for the amended order")
        ts = self._now()
        if sz != order.sz:
            order.requested_sz = None
        order.sz = sz
        order.px = px
        order.margin_open_sz = open_sz
        order.margin_per_unit = per_unit
        order.updated_ms = ts
        batch = EventBatch()
        self._seq += 1
        batch.append(OrderEvent(self._seq, ts, book.account.account_id, OrderEventKind.AMENDED, order.copy()))
        if ticker is not None:
            hit = arrival_price(order, ticker)
            if hit is not None:
                qty = step_qty(order.sz - order.filled_sz, inst.max_fill_per_step)
                self._fill(book, order, inst, qty, hit[0], hit[1], batch, ts)
        batch.order = _final_order(batch, order)
        return self._dispatch(batch)

    def get_order(
        self, api_key: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        """An open or finished order (finished ones while within ``history_limit``)."""
        book = self._book(api_key)
        if order_id is None and client_order_id is None:
            raise InvalidRequest("order_id or client_order_id is required")
        found = book.find_order(order_id, client_order_id)
        if found is None or not self._visible(self._order_placed_at, found.order_id):
            raise OrderNotFound("order does not exist", order_id=order_id, client_order_id=client_order_id)
        return found.copy()

    def open_orders(self, api_key: str, inst_id: str | None = None) -> list[Order]:
        """Open orders, oldest first."""
        book = self._book(api_key)
        seen = self._order_placed_at
        return [
            o.copy()
            for o in book.open_orders.values()
            if (inst_id is None or o.inst_id == inst_id) and self._visible(seen, o.order_id)
        ]

    def order_history(
        self, api_key: str, inst_id: str | None = None, limit: int | None = None
    ) -> list[Order]:
        """Finished orders (filled/canceled), newest first."""
        book = self._book(api_key)
        seen = self._order_placed_at
        out = [
            o.copy()
            for o in reversed(book.done_orders.values())
            if (inst_id is None or o.inst_id == inst_id) and self._visible(seen, o.order_id)
        ]
        return out if limit is None else out[:limit]

    # ------------------------------------------------------------------ algo orders

    def place_algo(
        self,
        api_key: str,
        inst_id: str,
        algo_type: AlgoType | str,
        side: Side | str,
        *,
        sz: DecimalLike | None = None,
        pos_side: PosSide | str | None = None,
        reduce_only: bool = False,
        close_position: bool = False,
        sl_trigger_px: DecimalLike | None = None,
        sl_ord_px: DecimalLike | None = None,
        tp_trigger_px: DecimalLike | None = None,
        tp_ord_px: DecimalLike | None = None,
        trigger_px: DecimalLike | None = None,
        order_px: DecimalLike | None = None,
        trigger_direction: TriggerDirection | str | None = None,
        callback_ratio: DecimalLike | None = None,
        callback_spread: DecimalLike | None = None,
        active_px: DecimalLike | None = None,
        trigger_px_type: TriggerPxType | str = TriggerPxType.LAST,
        client_algo_id: str | None = None,
        tag: str | None = None,
    ) -> EventBatch:
        """Place an algo order. ``side`` is the side of the order placed when it fires.

        - conditional: sl_trigger_px and/or tp_trigger_px (+ sl_ord_px/tp_ord_px; None or -1 = market).
          oco: both required. Rejected (invalid_trigger_price) if a leg would fire at the current price.
        - trigger: trigger_px (+ order_px, None/-1 = market); trigger_direction defaults to UP if
          trigger_px >= last else DOWN (needs a price then).
        - move_order_stop: callback_ratio (fraction, 0 < r < 1) xor callback_spread (> 0), optional active_px.
        ``sz`` None (or close_position=True) closes the whole position when it fires (reduce-only).
        Trigger orders need ``sz``. Child orders go through the normal order checks when they fire;
        a rejected child turns the algo order_failed.
        """
        book = self._book(api_key)
        inst = self._inst(inst_id)
        t = parse_enum(AlgoType, algo_type, "algo_type")
        side_e = parse_enum(Side, side, "side")
        ps = self._resolve_pos_side(book.account, pos_side)
        tpt = parse_enum(TriggerPxType, trigger_px_type, "trigger_px_type")
        if client_algo_id is not None and client_algo_id in book.open_algo_clids:
            raise DuplicateClientOrderId(
                "client algo id already used by a live algo order", client_algo_id=client_algo_id
            )
        ticker = self._tickers.get(inst_id)
        price = None if ticker is None else (ticker.mark if tpt is TriggerPxType.MARK else ticker.last)
        ts = self._now()
        algo = build_algo(
            inst,
            book.account.account_id,
            t,
            side_e,
            ps,
            price=price,
            ts=ts,
            sz=sz,
            reduce_only=reduce_only,
            close_position=close_position,
            sl_trigger_px=sl_trigger_px,
            sl_ord_px=sl_ord_px,
            tp_trigger_px=tp_trigger_px,
            tp_ord_px=tp_ord_px,
            trigger_px=trigger_px,
            order_px=order_px,
            trigger_direction=trigger_direction,
            callback_ratio=callback_ratio,
            callback_spread=callback_spread,
            active_px=active_px,
            trigger_px_type=tpt,
            client_algo_id=client_algo_id,
            tag=tag,
        )
        # committed from here on
        algo.algo_id = str(self._next_algo)
        self._next_algo += 1
        book.add_open_algo(algo)
        self._algos_by_inst[inst_id][algo.algo_id] = algo
        self._placed(self._algo_placed_at, algo.algo_id)
        if t is AlgoType.MOVE_ORDER_STOP and price is not None:
            advance(algo, price)  # may activate at once; cannot fire on the activation price
        batch = EventBatch()
        self._seq += 1
        batch.append(AlgoEvent(self._seq, ts, algo.account_id, AlgoEventKind.NEW, algo.copy()))
        batch.algo = algo.copy()
        return self._dispatch(batch)

    def _finish_algo(self, book: AccountBook, algo: AlgoOrder) -> None:
        book.finish_algo(algo)
        del self._algos_by_inst[algo.inst_id][algo.algo_id]

    def _trigger_algo(
        self,
        book: AccountBook,
        algo: AlgoOrder,
        inst: Instrument,
        leg: TpSlLeg | None,
        price: Decimal,
        batch: EventBatch,
        ts: int,
    ) -> None:
        """The algo fired: place its child order (market or limit) or mark it order_failed."""
        algo.triggered_leg = leg
        algo.triggered_px = price
        algo.triggered_ms = ts
        algo.updated_ms = ts
        if leg is TpSlLeg.SL:
            px = algo.sl_ord_px
        elif leg is TpSlLeg.TP:
            px = algo.tp_ord_px
        elif algo.algo_type is AlgoType.TRIGGER:
            px = algo.order_px
        else:
            px = None
        ord_type = _MARKET if px is None else OrdType.LIMIT
        aid = algo.account_id
        try:
            sz = algo.sz
            if sz is None:
                sz = reducible_qty(book.positions.get((algo.inst_id, algo.pos_side)), algo.side)
                if sz <= 0:
                    raise ReduceOnlyRejected("no position to close")
            order = self._prepare_order(
                book, inst, algo.side, sz, ord_type, px, algo.pos_side, algo.reduce_only, None, None, ts
            )
        except EngineError as exc:
            algo.state = AlgoState.ORDER_FAILED
            algo.fail_code = exc.code
            algo.fail_reason = exc.message
            self._finish_algo(book, algo)
            self._seq += 1
            batch.append(AlgoEvent(self._seq, ts, aid, AlgoEventKind.FAILED, algo.copy()))
            return
        order.algo_id = algo.algo_id
        order.algo_client_id = algo.client_algo_id
        order.tag = algo.tag
        self._commit_order(book, order)
        algo.state = AlgoState.EFFECTIVE
        algo.order_id = order.order_id
        self._finish_algo(book, algo)
        self._seq += 1
        batch.append(AlgoEvent(self._seq, ts, aid, AlgoEventKind.TRIGGERED, algo.copy()))
        self._seq += 1
        batch.append(OrderEvent(self._seq, ts, aid, OrderEventKind.NEW, order.copy()))
        self._arrive(book, order, inst, batch, ts)

    def _place_attached(
        self, book: AccountBook, order: Order, inst: Instrument, batch: EventBatch, ts: int
    ) -> None:
        """Parent order done with a fill: create its reduce-only TP/SL algo for the filled size."""
        att = order.attach_tp_sl
        assert att is not None
        both = att.sl_trigger_px is not None and att.tp_trigger_px is not None

        def market(v: Decimal | None) -> Decimal | None:
            return None if v is None or v == _MINUS_ONE else v

        algo = AlgoOrder(
            str(self._next_algo),
            None,
            order.account_id,
            order.inst_id,
            AlgoType.OCO if both else AlgoType.CONDITIONAL,
            _SELL if order.side is _BUY else _BUY,
            order.pos_side,
            order.filled_sz,
            True,
            False,
            AlgoState.LIVE,
            att.trigger_px_type,
            ts,
            ts,
            sl_trigger_px=att.sl_trigger_px,
            sl_ord_px=market(att.sl_ord_px),
            tp_trigger_px=att.tp_trigger_px,
            tp_ord_px=market(att.tp_ord_px),
            tag=order.tag,
            attached_to_order_id=order.order_id,
        )
        self._next_algo += 1
        book.add_open_algo(algo)
        self._algos_by_inst[algo.inst_id][algo.algo_id] = algo
        self._placed(self._algo_placed_at, algo.algo_id)
        self._seq += 1
        batch.append(AlgoEvent(self._seq, ts, algo.account_id, AlgoEventKind.NEW, algo.copy()))

    def _find_live_algo(
        self, book: AccountBook, algo_id: str | None, client_algo_id: str | None, inst_id: str | None
    ) -> AlgoOrder:
        if algo_id is None and client_algo_id is None:
            raise InvalidRequest("algo_id or client_algo_id is required")
        algo = book.find_open_algo(algo_id, client_algo_id)
        if algo is None or (inst_id is not None and algo.inst_id != inst_id):
            state = None
            if algo is None:
                found = book.find_algo(algo_id, client_algo_id)
                if found is not None and (inst_id is None or found.inst_id == inst_id):
                    state = found.state
            raise AlgoNotFound(
                "algo order does not exist or is no longer live",
                algo_id=algo_id,
                client_algo_id=client_algo_id,
                state=state,
            )
        return algo

    def cancel_algo(
        self,
        api_key: str,
        *,
        algo_id: str | None = None,
        client_algo_id: str | None = None,
        inst_id: str | None = None,
    ) -> EventBatch:
        """Cancel a live algo order; anything else raises AlgoNotFound."""
        book = self._book(api_key)
        algo = self._find_live_algo(book, algo_id, client_algo_id, inst_id)
        ts = self._now()
        algo.state = AlgoState.CANCELED
        algo.updated_ms = ts
        self._finish_algo(book, algo)
        batch = EventBatch()
        self._seq += 1
        batch.append(AlgoEvent(self._seq, ts, algo.account_id, AlgoEventKind.CANCELED, algo.copy()))
        batch.algo = algo.copy()
        return self._dispatch(batch)

    def get_algo(
        self, api_key: str, *, algo_id: str | None = None, client_algo_id: str | None = None
    ) -> AlgoOrder:
        book = self._book(api_key)
        if algo_id is None and client_algo_id is None:
            raise InvalidRequest("algo_id or client_algo_id is required")
        found = book.find_algo(algo_id, client_algo_id)
        if found is None or not self._visible(self._algo_placed_at, found.algo_id):
            raise AlgoNotFound("algo order does not exist", algo_id=algo_id, client_algo_id=client_algo_id)
        return found.copy()

    def open_algos(
        self, api_key: str, inst_id: str | None = None, algo_type: AlgoType | str | None = None
    ) -> list[AlgoOrder]:
        """Live algo orders, oldest first (``algo_type`` conditional also matches oco)."""
        book = self._book(api_key)
        types: tuple[AlgoType, ...] | None = None
        if algo_type is not None:
            t = parse_enum(AlgoType, algo_type, "algo_type")
            types = (AlgoType.CONDITIONAL, AlgoType.OCO) if t is AlgoType.CONDITIONAL else (t,)
        seen = self._algo_placed_at
        return [
            a.copy()
            for a in book.open_algos.values()
            if (inst_id is None or a.inst_id == inst_id)
            and (types is None or a.algo_type in types)
            and self._visible(seen, a.algo_id)
        ]

    def algo_history(
        self, api_key: str, inst_id: str | None = None, limit: int | None = None
    ) -> list[AlgoOrder]:
        """Finished algo orders (effective/canceled/order_failed), newest first."""
        book = self._book(api_key)
        seen = self._algo_placed_at
        out = [
            a.copy()
            for a in reversed(book.done_algos.values())
            if (inst_id is None or a.inst_id == inst_id) and self._visible(seen, a.algo_id)
        ]
        return out if limit is None else out[:limit]

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for GET /sim/state: instruments, prices, accounts (no secrets) with balances,
        open and finished orders, algo orders and positions (flat ones included). Deterministic."""
        accounts: list[dict[str, Any]] = []
        for book in self._books.values():
            d = book.account.to_public_dict()
            d["balance_details"] = [book.balance(self._tickers, c).to_dict() for c in book.currencies()]
            d["open_orders"] = [o.to_dict() for o in book.open_orders.values()]
            d["order_history"] = [o.to_dict() for o in book.done_orders.values()]
            d["open_algos"] = [a.to_dict() for a in book.open_algos.values()]
            d["algo_history"] = [a.to_dict() for a in book.done_algos.values()]
            d["positions"] = [self._pos_view(p).to_dict() for p in book.positions.values()]
            d["fill_count"] = len(book.fills)
            accounts.append(d)
        return {
            "venue": self._venue,
            "seed": self._seed,
            "next_ids": {
                "order": str(self._next_order),
                "algo": str(self._next_algo),
                "trade": str(self._next_trade),
                "position": str(self._next_pos),
                "account": str(self._next_account),
                "event_seq": self._seq,
            },
            "instruments": [i.to_dict() for i in self._instruments.values()],
            "prices": {k: t.to_dict() for k, t in self._tickers.items()},
            "accounts": accounts,
        }
