"""Instrument definitions (linear USDT-margined perpetual swaps) and the default sets per venue.

Quantities are in the venue's native unit: OKX in contracts (``contract_value`` base units each),
Binance in base currency (``contract_value == 1``). Notional = qty * contract_value * price.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .decimals import is_multiple
from .enums import Venue
from .errors import InvalidPrice, InvalidSize

__all__ = ["Instrument", "check_price", "check_size", "default_instruments"]


@dataclass(slots=True, frozen=True)
class Instrument:
    venue: Venue
    inst_id: str  # OKX "BTC-USDT-SWAP", Binance "BTCUSDT"
    base: str
    quote: str
    settle: str
    tick_size: Decimal  # prices must be multiples (OKX tickSz, Binance PRICE_FILTER.tickSize)
    lot_size: Decimal  # sizes must be multiples (OKX lotSz, Binance LOT_SIZE.stepSize)
    min_size: Decimal  # OKX minSz, Binance LOT_SIZE.minQty
    contract_value: Decimal = Decimal(1)  # OKX ctVal (base units per contract); Binance 1
    max_leverage: int = 125
    max_market_size: Decimal | None = None  # OKX maxMktSz, Binance MARKET_LOT_SIZE.maxQty
    max_limit_size: Decimal | None = None  # OKX maxLmtSz, Binance LOT_SIZE.maxQty
    min_notional: Decimal = Decimal(0)  # Binance MIN_NOTIONAL (reduce-only orders are exempt); OKX 0
    maint_margin_rate: Decimal = Decimal("0.004")  # for mmr and the liquidation-price estimate
    max_fill_per_step: Decimal | None = None
    """Partial-fill simulation: each order fills at most this much per match pass (None = unlimited)."""

    @property
    def ccxt_symbol(self) -> str:
        """ccxt unified symbol, e.g. ``BTC/USDT:USDT``."""
        return f"{self.base}/{self.quote}:{self.settle}"

    def with_max_fill_per_step(self, value: Decimal | None) -> Instrument:
        return replace(self, max_fill_per_step=value)

    def to_dict(self) -> dict[str, Any]:
        def s(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        return {
            "venue": self.venue,
            "inst_id": self.inst_id,
            "base": self.base,
            "quote": self.quote,
            "settle": self.settle,
            "tick_size": str(self.tick_size),
            "lot_size": str(self.lot_size),
            "min_size": str(self.min_size),
            "contract_value": str(self.contract_value),
            "max_leverage": self.max_leverage,
            "max_market_size": s(self.max_market_size),
            "max_limit_size": s(self.max_limit_size),
            "min_notional": str(self.min_notional),
            "maint_margin_rate": str(self.maint_margin_rate),
            "max_fill_per_step": s(self.max_fill_per_step),
        }


def _d(x: str) -> Decimal:
    return Decimal(x)


def default_instruments(venue: Venue) -> list[Instrument]:
    """BTC, ETH and SOL USDT perpetuals with the venue's real tick/lot/min/ctVal figures."""
    if venue == "okx":
        return [
            Instrument("okx", "BTC-USDT-SWAP", "BTC", "USDT", "USDT", _d("0.1"), _d("0.01"), _d("0.01"),
                       _d("0.01"), 100, _d("5000"), _d("100000000")),
            Instrument("okx", "ETH-USDT-SWAP", "ETH", "USDT", "USDT", _d("0.01"), _d("0.01"), _d("0.01"),
                       _d("0.1"), 100, _d("20000"), _d("100000000")),
            Instrument("okx", "SOL-USDT-SWAP", "SOL", "USDT", "USDT", _d("0.001"), _d("0.01"), _d("0.01"),
                       _d("1"), 50, _d("30000"), _d("100000000")),
        ]  # fmt: skip
    if venue == "binance":
        return [
            Instrument("binance", "BTCUSDT", "BTC", "USDT", "USDT", _d("0.10"), _d("0.001"), _d("0.001"),
                       _d("1"), 125, _d("120"), _d("1000"), _d("100")),
            Instrument("binance", "ETHUSDT", "ETH", "USDT", "USDT", _d("0.01"), _d("0.001"), _d("0.001"),
                       _d("1"), 100, _d("2000"), _d("10000"), _d("20")),
            Instrument("binance", "SOLUSDT", "SOL", "USDT", "USDT", _d("0.010"), _d("1"), _d("1"),
                       _d("1"), 75, _d("5000"), _d("1000000"), _d("5")),
        ]  # fmt: skip
    raise ValueError(f"unknown venue {venue!r}")


def check_size(inst: Instrument, sz: Decimal, market: bool, name: str = "sz") -> None:
    """Raise InvalidSize unless ``sz`` is a positive lot multiple within [min_size, max market/limit size]."""
    if sz <= 0:
        raise InvalidSize(f"{name} must be positive", field=name)
    if not is_multiple(sz, inst.lot_size):
        raise InvalidSize(f"{name} must be a multiple of {inst.lot_size}", field=name)
    if sz < inst.min_size:
        raise InvalidSize(f"{name} below the minimum {inst.min_size}", field=name)
    cap = inst.max_market_size if market else inst.max_limit_size
    if cap is not None and sz > cap:
        raise InvalidSize(f"{name} above the maximum {cap}", field=name)


def check_price(inst: Instrument, px: Decimal, name: str = "px") -> None:
    """Raise InvalidPrice unless ``px`` is a positive multiple of the tick size."""
    if px <= 0:
        raise InvalidPrice(f"{name} must be positive", field=name)
    if not is_multiple(px, inst.tick_size):
        raise InvalidPrice(f"{name} must be a multiple of {inst.tick_size}", field=name)
