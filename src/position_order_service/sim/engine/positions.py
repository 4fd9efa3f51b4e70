"""Positions: averaging on adds, realized PnL on reductions, flips (net mode), derived risk figures.

Linear contracts only: PnL = (exit - entry) * qty * contract_value for a long, mirrored for a short.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from .decimals import MONEY_QUANTUM, ZERO
from .enums import MarginMode, PosSide, Side
from .serialize import slots_to_dict

__all__ = ["Position", "apply_fill", "liquidation_price", "reducible_qty"]

_ONE = Decimal(1)


@dataclass(slots=True)
class Position:
    """State of one (account, inst_id, pos_side). Kept after it goes flat (qty 0), with a stable ``pos_id``.

    ``qty`` is signed in net mode (short < 0) and non-negative for pos_side long/short
    (OKX ``pos``; Binance ``positionAmt`` is the ``signed_qty``).
    ``realized_pnl`` and ``fee`` accumulate from the moment the position opened from flat; after a close
    they keep the closed lifecycle's totals until it reopens.
    The fields after ``settle_ccy`` are derived, refreshed whenever the engine hands out a copy.
    """

    pos_id: str
    account_id: str
    inst_id: str
    pos_side: PosSide
    qty: Decimal
    avg_px: Decimal  # 0 when flat
    leverage: int
    margin_mode: MarginMode
    realized_pnl: Decimal
    fee: Decimal
    created_ms: int
    updated_ms: int
    contract_value: Decimal
    settle_ccy: str
    mark_px: Decimal = ZERO  # instrument mark (or avg_px when the instrument has no price)
    upl: Decimal = ZERO  # unrealized PnL vs mark
    notional: Decimal = ZERO  # |qty| * contract_value * mark
    imr: Decimal = ZERO  # initial margin = notional / leverage
    mmr: Decimal = ZERO  # maintenance margin = notional * maint_margin_rate
    liq_px: Decimal | None = None  # simple estimate, None when flat

    @property
    def signed_qty(self) -> Decimal:
        return -self.qty if self.pos_side is PosSide.SHORT else self.qty

    @property
    def side(self) -> str | None:
        """Either "long", "short" or None when flat."""
        s = self.signed_qty
        return "long" if s > 0 else "short" if s < 0 else None

    @property
    def is_open(self) -> bool:
        return self.qty != 0

    @property
    def upl_ratio(self) -> Decimal:
        """upl / initial margin (OKX uplRatio); 0 when flat."""
        return self.upl / self.imr if self.imr else ZERO

    def refresh(self, mark: Decimal | None, maint_margin_rate: Decimal, tick: Decimal) -> None:
        """Recompute the derived fields against ``mark`` (None = use avg_px)."""
        s = self.signed_qty
        m = self.avg_px if mark is None else mark
        self.mark_px = m
        if s == 0:
            self.upl = self.notional = self.imr = self.mmr = ZERO
            self.liq_px = None
            return
        ct = self.contract_value
        self.upl = (m - self.avg_px) * s * ct
        self.notional = abs(s) * ct * m
        self.imr = self.notional / self.leverage
        self.mmr = self.notional * maint_margin_rate
        self.liq_px = liquidation_price(self.avg_px, s > 0, self.leverage, maint_margin_rate, tick)

    def copy(self) -> Position:
        return Position(*_POS_GETTER(self))

    def to_dict(self) -> dict[str, Any]:
        d = slots_to_dict(self, _POS_FIELDS)
        d["side"] = self.side
        d["signed_qty"] = str(self.signed_qty)
        d["upl_ratio"] = str(self.upl_ratio)
        return d


_POS_FIELDS = tuple(f.name for f in fields(Position))
_POS_GETTER = attrgetter(*_POS_FIELDS)


def liquidation_price(
    entry: Decimal, is_long: bool, leverage: int, maint_margin_rate: Decimal, tick: Decimal
) -> Decimal:
    """Isolated-style estimate: long entry*(1 - 1/lev + mmr), short entry*(1 + 1/lev - mmr), on the tick grid."""
    inv = _ONE / leverage
    px = entry * (_ONE - inv + maint_margin_rate) if is_long else entry * (_ONE + inv - maint_margin_rate)
    if px < 0:
        px = ZERO
    return px.quantize(tick)


def reducible_qty(pos: Position | None, side: Side) -> Decimal:
    """How much an order on ``side`` can reduce ``pos`` (0 if it would only add)."""
    if pos is None:
        return ZERO
    s = pos.signed_qty
    if side is Side.SELL:
        return s if s > 0 else ZERO
    return -s if s < 0 else ZERO


def apply_fill(pos: Position, side: Side, qty: Decimal, px: Decimal, ts: int) -> Decimal:
    """Apply a fill of ``qty`` at ``px`` to ``pos``; returns the realized PnL (rounded to 1e-8).

    Adds re-average the entry; reductions realize PnL on the closed part; in net mode an order larger than
    the position closes it and opens the rest on the other side at ``px``.
    """
    short = pos.pos_side is PosSide.SHORT
    s = -pos.qty if short else pos.qty
    d = qty if side is Side.BUY else -qty
    realized = ZERO
    if s == 0:
        new_s = d
        pos.avg_px = px
        pos.created_ms = ts
        pos.realized_pnl = ZERO
        pos.fee = ZERO
    elif (s > 0) == (d > 0):
        new_s = s + d
        pos.avg_px = (abs(s) * pos.avg_px + qty * px) / abs(new_s)
    else:
        closed = qty if qty < abs(s) else abs(s)
        if s > 0:
            realized = ((px - pos.avg_px) * closed * pos.contract_value).quantize(MONEY_QUANTUM)
        else:
            realized = ((pos.avg_px - px) * closed * pos.contract_value).quantize(MONEY_QUANTUM)
        new_s = s + d
        if new_s == 0:
            new_s = ZERO
            pos.avg_px = ZERO
        elif (new_s > 0) != (s > 0):
            pos.avg_px = px
        pos.realized_pnl += realized
    pos.qty = -new_s if short else new_s
    pos.updated_ms = ts
    return realized
