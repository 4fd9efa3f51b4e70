"""Simulated exchange accounts: credentials, balances, position mode, leverage and fee rates."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .enums import MarginMode, PositionMode, PosSide, Venue

__all__ = ["DEFAULT_FEE_RATES", "DEFAULT_LEVERAGE", "Account", "Balance"]

DEFAULT_LEVERAGE = 10

DEFAULT_FEE_RATES: dict[str, tuple[Decimal, Decimal]] = {
    "okx": (Decimal("0.0002"), Decimal("0.0005")),
    "binance": (Decimal("0.0002"), Decimal("0.0004")),
}
"""(maker, taker) fee rates per venue; positive = the trader pays."""


@dataclass(slots=True)
class Account:
    """One API key's account. ``balances`` is the wallet balance per currency (deposits + realized PnL - fees).

    Objects returned by the engine are copies: mutating them does not change the engine.
    """

    account_id: str  # numeric string (OKX uid)
    api_key: str
    secret: str
    passphrase: str | None
    venue: Venue
    balances: dict[str, Decimal]
    position_mode: PositionMode
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    default_leverage: int = DEFAULT_LEVERAGE
    leverage: dict[tuple[str, PosSide], int] = field(default_factory=dict)
    """Explicit leverage per (inst_id, pos_side); anything missing uses ``default_leverage``."""
    margin_modes: dict[str, MarginMode] = field(default_factory=dict)
    """Margin-mode label per inst_id (default cross). Margin is always computed as cross."""
    label: str = ""
    created_ms: int = 0

    def get_leverage(self, inst_id: str, pos_side: PosSide) -> int:
        return self.leverage.get((inst_id, pos_side), self.default_leverage)

    def get_margin_mode(self, inst_id: str) -> MarginMode:
        return self.margin_modes.get(inst_id, MarginMode.CROSS)

    def balance(self, ccy: str) -> Decimal:
        return self.balances.get(ccy, Decimal(0))

    def copy(self) -> Account:
        return Account(
            self.account_id,
            self.api_key,
            self.secret,
            self.passphrase,
            self.venue,
            dict(self.balances),
            self.position_mode,
            self.maker_fee_rate,
            self.taker_fee_rate,
            self.default_leverage,
            dict(self.leverage),
            dict(self.margin_modes),
            self.label,
            self.created_ms,
        )

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-able view without ``secret`` and ``passphrase``."""
        return {
            "account_id": self.account_id,
            "api_key": self.api_key,
            "venue": self.venue,
            "label": self.label,
            "position_mode": self.position_mode.value,
            "balances": {ccy: str(v) for ccy, v in sorted(self.balances.items())},
            "maker_fee_rate": str(self.maker_fee_rate),
            "taker_fee_rate": str(self.taker_fee_rate),
            "default_leverage": self.default_leverage,
            "leverage": {f"{i}:{p.value}": lev for (i, p), lev in sorted(self.leverage.items())},
            "margin_modes": {i: m.value for i, m in sorted(self.margin_modes.items())},
            "created_ms": self.created_ms,
        }


@dataclass(slots=True)
class Balance:
    """Balance of one currency. frozen = margin used by positions + margin reserved by open orders;
    available = balance - frozen; equity = balance + upl (OKX eq / availBal / frozenBal, Binance wb / cw)."""

    ccy: str
    balance: Decimal
    available: Decimal
    frozen: Decimal
    upl: Decimal
    equity: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "ccy": self.ccy,
            "balance": str(self.balance),
            "available": str(self.available),
            "frozen": str(self.frozen),
            "upl": str(self.upl),
            "equity": str(self.equity),
        }
