"""Per-account state kept by the engine: open/finished orders and algos, positions, fills, and the
balance/margin figures derived from them."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .accounts import Account, Balance
from .algos import AlgoOrder
from .decimals import ZERO
from .enums import PosSide
from .orders import Fill, Order
from .positions import Position
from .prices import Ticker

__all__ = ["AccountBook"]

_SHORT = PosSide.SHORT


@dataclass(slots=True)
class AccountBook:
    """Everything the engine keeps for one account (engine-internal; the facade hands out copies)."""

    account: Account
    history_limit: int
    open_orders: dict[str, Order] = field(default_factory=dict)
    open_clids: dict[str, str] = field(default_factory=dict)  # client id -> open order id
    done_orders: dict[str, Order] = field(default_factory=dict)
    done_order_ids: deque[str] = field(default_factory=deque)  # eviction order of done_orders
    clids: dict[str, str] = field(default_factory=dict)  # client id -> latest order id (open or done)
    positions: dict[tuple[str, PosSide], Position] = field(default_factory=dict)
    open_algos: dict[str, AlgoOrder] = field(default_factory=dict)
    open_algo_clids: dict[str, str] = field(default_factory=dict)
    done_algos: dict[str, AlgoOrder] = field(default_factory=dict)
    done_algo_ids: deque[str] = field(default_factory=deque)
    algo_clids: dict[str, str] = field(default_factory=dict)
    fills: deque[Fill] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.fills = deque(self.fills, maxlen=self.history_limit)

    # -------------------------------------------------------------- orders

    def add_open_order(self, order: Order) -> None:
        oid = order.order_id
        self.open_orders[oid] = order
        clid = order.client_order_id
        if clid is not None:
            self.open_clids[clid] = oid
            self.clids[clid] = oid

    def finish_order(self, order: Order) -> None:
        """Move a no-longer-open order to the history (bounded by ``history_limit``)."""
        oid = order.order_id
        del self.open_orders[oid]
        clid = order.client_order_id
        if clid is not None and self.open_clids.get(clid) == oid:
            del self.open_clids[clid]
        done = self.done_orders
        done[oid] = order
        self.done_order_ids.append(oid)
        if len(done) > self.history_limit:
            old = done.pop(self.done_order_ids.popleft())
            if old.client_order_id is not None and self.clids.get(old.client_order_id) == old.order_id:
                del self.clids[old.client_order_id]

    def find_order(self, order_id: str | None, client_order_id: str | None) -> Order | None:
        """Open or finished order by id (preferred) or client id."""
        oid = order_id if order_id is not None else self.clids.get(client_order_id or "")
        if oid is None:
            return None
        found = self.open_orders.get(oid) or self.done_orders.get(oid)
        if found is not None and client_order_id is not None and found.client_order_id != client_order_id:
            return None
        return found

    def find_open_order(self, order_id: str | None, client_order_id: str | None) -> Order | None:
        oid = order_id if order_id is not None else self.open_clids.get(client_order_id or "")
        return None if oid is None else self.open_orders.get(oid)

    # -------------------------------------------------------------- algos

    def add_open_algo(self, algo: AlgoOrder) -> None:
        aid = algo.algo_id
        self.open_algos[aid] = algo
        clid = algo.client_algo_id
        if clid is not None:
            self.open_algo_clids[clid] = aid
            self.algo_clids[clid] = aid

    def finish_algo(self, algo: AlgoOrder) -> None:
        aid = algo.algo_id
        del self.open_algos[aid]
        clid = algo.client_algo_id
        if clid is not None and self.open_algo_clids.get(clid) == aid:
            del self.open_algo_clids[clid]
        done = self.done_algos
        done[aid] = algo
        self.done_algo_ids.append(aid)
        if len(done) > self.history_limit:
            old = done.pop(self.done_algo_ids.popleft())
            if old.client_algo_id is not None and self.algo_clids.get(old.client_algo_id) == old.algo_id:
                del self.algo_clids[old.client_algo_id]

    def find_algo(self, algo_id: str | None, client_algo_id: str | None) -> AlgoOrder | None:
        aid = algo_id if algo_id is not None else self.algo_clids.get(client_algo_id or "")
        if aid is None:
            return None
        found = self.open_algos.get(aid) or self.done_algos.get(aid)
        if found is not None and client_algo_id is not None and found.client_algo_id != client_algo_id:
            return None
        return found

    def find_open_algo(self, algo_id: str | None, client_algo_id: str | None) -> AlgoOrder | None:
        aid = algo_id if algo_id is not None else self.open_algo_clids.get(client_algo_id or "")
        return None if aid is None else self.open_algos.get(aid)

    # -------------------------------------------------------------- margin and balances

    def available(self, tickers: Mapping[str, Ticker], ccy: str) -> Decimal:
        """balance - margin used by positions (at mark) - margin reserved by open orders."""
        used = ZERO
        for pos in self.positions.values():
            q = pos.qty
            if q == 0 or pos.settle_ccy != ccy:
                continue
            t = tickers.get(pos.inst_id)
            m = pos.avg_px if t is None else t.mark
            used += (q if q > 0 else -q) * pos.contract_value * m / pos.leverage
        for o in self.open_orders.values():
            if o.margin_per_unit and o.fee_ccy == ccy:
                used += o.reserved_margin()
        return self.account.balances.get(ccy, ZERO) - used

    def balance(self, tickers: Mapping[str, Ticker], ccy: str) -> Balance:
        bal, used, upl = self.balance_figures(tickers, ccy)
        return Balance(ccy, bal, bal - used, used, upl, bal + upl)

    def balance_figures(self, tickers: Mapping[str, Ticker], ccy: str) -> tuple[Decimal, Decimal, Decimal]:
        """(wallet balance, margin used incl. open-order reservations, unrealized PnL) for ``ccy``."""
        bal = self.account.balances.get(ccy, ZERO)
        used = ZERO
        upl = ZERO
        for pos in self.positions.values():
            q = pos.qty
            if q == 0 or pos.settle_ccy != ccy:
                continue
            t = tickers.get(pos.inst_id)
            m = pos.avg_px if t is None else t.mark
            s = -q if pos.pos_side is _SHORT else q
            ct = pos.contract_value
            used += abs(s) * ct * m / pos.leverage
            upl += (m - pos.avg_px) * s * ct
        for o in self.open_orders.values():
            if o.margin_per_unit and o.fee_ccy == ccy:
                used += o.reserved_margin()
        return bal, used, upl

    def currencies(self) -> list[str]:
        ccys = set(self.account.balances)
        ccys.update(p.settle_ccy for p in self.positions.values())
        return sorted(ccys)
