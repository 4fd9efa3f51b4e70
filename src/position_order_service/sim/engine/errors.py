"""Engine errors: one small hierarchy with stable ``code`` strings.

Wire fronts map ``EngineError.code`` to each exchange's error codes (OKX ``sCode``, Binance ``code``).
Every error is raised *before* any state changes: a call that raises leaves the engine exactly as it was.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlgoNotFound",
    "DuplicateAccount",
    "DuplicateClientOrderId",
    "EngineError",
    "InsufficientMargin",
    "InvalidLeverage",
    "InvalidPositionSide",
    "InvalidPrice",
    "InvalidRequest",
    "InvalidSize",
    "InvalidTriggerPrice",
    "MinNotional",
    "NoMarketPrice",
    "OrderNotFound",
    "PositionModeChangeRejected",
    "PostOnlyWouldTake",
    "ReduceOnlyRejected",
    "UnknownAccount",
    "UnknownInstrument",
]


class EngineError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``details`` carries context (never secrets)."""

    code: ClassVar[str] = "engine_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidRequest(EngineError):
    """Malformed argument (unknown enum value, float instead of Decimal, missing field...)."""

    code = "invalid_request"


class UnknownInstrument(EngineError):
    code = "unknown_instrument"


class UnknownAccount(EngineError):
    """No account with that API key (or account id)."""

    code = "unknown_account"


class DuplicateAccount(EngineError):
    code = "duplicate_account"


class InvalidSize(EngineError):
    """Size not a positive multiple of the lot size, below min size, or above the max size."""

    code = "invalid_size"


class InvalidPrice(EngineError):
    """Price missing where required, not positive, or not a multiple of the tick size."""

    code = "invalid_price"


class MinNotional(EngineError):
    """Order notional below the instrument's minimum notional (Binance MIN_NOTIONAL filter)."""

    code = "min_notional"


class NoMarketPrice(EngineError):
    """The instrument has no price yet (``set_price`` never called) and the request needs one."""

    code = "no_market_price"


class InsufficientMargin(EngineError):
    code = "insufficient_margin"


class PostOnlyWouldTake(EngineError):
    code = "post_only_would_take"


class ReduceOnlyRejected(EngineError):
    """Reduce-only (or hedge-mode closing) order with nothing to reduce, or on the opening side."""

    code = "reduce_only_rejected"


class DuplicateClientOrderId(EngineError):
    code = "duplicate_client_order_id"


class OrderNotFound(EngineError):
    """Unknown order, or an order that is no longer open (``details["state"]`` then holds its final state)."""

    code = "order_not_found"


class AlgoNotFound(EngineError):
    """Unknown algo order, or one that is no longer live (``details["state"]`` holds its final state)."""

    code = "algo_not_found"


class InvalidLeverage(EngineError):
    code = "invalid_leverage"


class InvalidPositionSide(EngineError):
    """pos_side missing in long_short mode, or long/short given in net mode."""

    code = "invalid_pos_side"


class PositionModeChangeRejected(EngineError):
    """Position mode cannot change while the account has open positions, orders or algo orders."""

    code = "position_mode_change_rejected"


class InvalidTriggerPrice(EngineError):
    """SL/TP trigger already met at placement (it would fire at once), or otherwise inconsistent."""

    code = "invalid_trigger_price"
