"""OKX v5 error codes: the ``OkxError`` the wire front raises, and engine errors translated to OKX codes.

Codes are the ones real OKX returns, chosen so ccxt 4.5.90 (``okx.exceptions["exact"]``) raises the right class:
50111/50113/50105/50103.. -> AuthenticationError, 50102 -> InvalidNonce, 51008 -> InsufficientFunds,
51400/51401/51402/51603/51503 -> OrderNotFound, 51121/51020/51202/51006/51134/51016 -> InvalidOrder,
51000/50014/50002 -> BadRequest, 51001 -> BadSymbol.

Two deliberate departures from OKX (the engine rejects where OKX accepts and then cancels):
- a post-only order that would take: OKX accepts it and cancels it at once (cancelSource 31); the simulator
  rejects it with 51006 (InvalidOrder).
- a reduce-only order with nothing to reduce: 51134 "Closing failed" (InvalidOrder) for every variant.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from ..engine import (
    AlgoNotFound,
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
    OrderState,
    PositionModeChangeRejected,
    PostOnlyWouldTake,
    ReduceOnlyRejected,
    UnknownAccount,
    UnknownInstrument,
)
from ..engine import DuplicateClientOrderId as _DuplicateClid

__all__ = [
    "OkxError",
    "Op",
    "engine_code",
    "envelope",
    "from_engine",
    "param_error",
    "required",
    "size_error",
    "tp_sl_error",
]

Op = Literal["place", "cancel", "amend", "get", "algo", "cancel_algo", "get_algo", "account"]


class OkxError(Exception):
    """An OKX error reply: ``code``/``msg`` (top level) or ``sCode``/``sMsg`` (per item); ``status`` = HTTP."""

    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def required(name: str) -> OkxError:
    return OkxError("50014", f"Parameter {name} can not be empty.")


def param_error(name: str) -> OkxError:
    return OkxError("51000", f"Parameter {name} error")


_STATES = {s.value for s in OrderState}
_CANCEL_FAILED: dict[OrderState | None, tuple[str, str]] = {
    OrderState.CANCELED: ("51401", "Cancellation failed as the order is already canceled."),
    OrderState.FILLED: ("51402", "Cancellation failed as the order has been filled."),
}
_AMEND_FAILED: dict[OrderState | None, tuple[str, str]] = {
    OrderState.CANCELED: ("51509", "Modification failed as the order has been canceled."),
    OrderState.FILLED: ("51510", "Modification failed as the order has been completed."),
}


def _order_not_found(exc: EngineError, op: Op) -> OkxError:
    state = exc.details.get("state")
    state = OrderState(state) if state in _STATES else None
    if op == "cancel":
        code, msg = _CANCEL_FAILED.get(
            state,
            ("51400", "Order cancellation failed as the order has been filled, canceled or does not exist."),
        )
        return OkxError(code, msg)
    if op == "amend":
        code, msg = _AMEND_FAILED.get(
            state, ("51503", "Order modification failed as the order does not exist.")
        )
        return OkxError(code, msg)
    return OkxError("51603", "Order does not exist")


def from_engine(exc: EngineError, op: Op) -> OkxError:
    """The OKX error for an engine rejection of operation ``op``."""
    field = exc.details.get("field")
    if isinstance(exc, InsufficientMargin):
        if op == "account":
            return OkxError("59103", "Leverage is too low and no sufficient margin in your account.")
        if op == "amend":
            return OkxError("51502", "Order modification failed for insufficient margin or balance.")
        return OkxError("51008", "Order failed. Insufficient USDT margin in account")
    if isinstance(exc, OrderNotFound):
        return _order_not_found(exc, op)
    if isinstance(exc, AlgoNotFound):
        if op == "cancel_algo":
            return OkxError(
                "51400", "Cancellation failed as the order has been filled, canceled or does not exist."
            )
        return OkxError("51603", "Order does not exist")
    if isinstance(exc, UnknownInstrument):
        return OkxError("51001", "Instrument ID does not exist.")
    if isinstance(exc, UnknownAccount):
        return OkxError("50111", "Invalid OK-ACCESS-KEY.", 401)
    if isinstance(exc, InvalidSize):
        return param_error(str(field or "sz"))
    if isinstance(exc, InvalidPrice):
        if "required" in exc.message:
            return OkxError("51204", "The price for the limit order can not be empty.")
        return param_error(str(field or "px"))
    if isinstance(exc, MinNotional):
        return OkxError("51020", "Order amount should be greater than the min available amount.")
    if isinstance(exc, NoMarketPrice):
        return OkxError("51109", "No available offer.")
    if isinstance(exc, PostOnlyWouldTake):
        return OkxError("51006", "Post-only order would take liquidity (order price out of the limit).")
    if isinstance(exc, ReduceOnlyRejected):
        return OkxError("51134", "Closing failed. Please check your holdings and pending orders.")
    if isinstance(exc, _DuplicateClid):
        return OkxError("51016", "Duplicated clOrdId.")
    if isinstance(exc, InvalidPositionSide):
        return param_error("posSide")
    if isinstance(exc, InvalidLeverage):
        return OkxError("59102", "Leverage exceeds the maximum leverage. Please adjust the leverage.")
    if isinstance(exc, PositionModeChangeRejected):
        return OkxError("59000", "Your settings failed as you have positions or open orders.")
    if isinstance(exc, InvalidTriggerPrice):
        return OkxError("51250", "Algo order price is out of the available range.")
    if isinstance(exc, InvalidRequest):
        return param_error(str(field)) if field else OkxError("51000", exc.message)
    return OkxError("51000", exc.message)


def engine_code(code: str | None) -> str:
    """OKX failCode for an engine error code (algo ``fail_code``)."""
    if not code:
        return ""
    return _FAIL_CODES.get(code, "51000")


_FAIL_CODES = {
    "insufficient_margin": "51008",
    "reduce_only_rejected": "51134",
    "invalid_size": "51121",
    "invalid_price": "51000",
    "no_market_price": "51109",
    "post_only_would_take": "51006",
    "min_notional": "51020",
}


def size_error(
    sz: Decimal, lot: Decimal, min_sz: Decimal, cap: Decimal | None, market: bool
) -> OkxError | None:
    """OKX's own code for a size the instrument does not accept (checked before the engine sees it)."""
    if sz <= 0:
        return param_error("sz")
    try:
        off_lot = sz % lot != 0
    except ArithmeticError:
        off_lot = True
    if off_lot:
        return OkxError("51121", f"Order quantity must be a multiple of the lot size {lot}.")
    if sz < min_sz:
        return OkxError("51020", f"Order amount should be greater than the min available amount {min_sz}.")
    if cap is not None and sz > cap:
        if market:
            return OkxError("51202", f"Market order amount exceeds the maximum amount {cap}.")
        return OkxError("51005", f"Order amount exceeds the limit {cap}.")
    return None


def tp_sl_error(
    side: str, ref: Decimal | None, sl: Decimal | None, tp: Decimal | None, attached: bool
) -> OkxError:
    """The code for SL/TP triggers on the wrong side of ``ref`` (last price, or the order price if attached).

    ``side`` is the side of the order that closes (algo) or opens (attached) the position.
    """
    closes_long = side == "sell" if not attached else side == "buy"
    if ref is not None:
        if closes_long:
            if sl is not None and sl >= ref:
                if attached:
                    return OkxError(
                        "51047", "The stop loss trigger price must be lower than the order price."
                    )
                return OkxError("51280", "SL trigger price can not be higher than the last price.")
            if tp is not None and tp <= ref:
                if attached:
                    return OkxError(
                        "51046", "The take profit trigger price must be higher than the order price."
                    )
                return OkxError("51279", "TP trigger price can not be lower than the last price.")
        else:
            if sl is not None and sl <= ref:
                if attached:
                    return OkxError(
                        "51047", "The stop loss trigger price must be higher than the order price."
                    )
                return OkxError("51278", "SL trigger price can not be lower than the last price.")
            if tp is not None and tp >= ref:
                if attached:
                    return OkxError(
                        "51046", "The take profit trigger price must be lower than the order price."
                    )
                return OkxError("51277", "TP trigger price can not be higher than the last price.")
    if attached:
        return OkxError(
            "51047", "The stop loss or take profit trigger price is on the wrong side of the order price."
        )
    return OkxError("51250", "Algo order price is out of the available range.")


def envelope(code: str, msg: str, data: list[Any]) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}
