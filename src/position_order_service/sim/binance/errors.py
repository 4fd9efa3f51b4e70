"""Binance USD-M error replies: ``{"code": -xxxx, "msg": "..."}`` and the map from engine errors.

Codes and messages are Binance's own (USD-M futures error-code page); ccxt maps them to its exception classes
through its exact table (-2015/-1022 AuthenticationError, -2019 InsufficientFunds, -2011/-2013 OrderNotFound,
-2021 OrderImmediatelyFillable, -2022/-4164 InvalidOrder, -5022 OrderNotFillable ...).
"""

from __future__ import annotations

from typing import Any

from ..engine import (
    AlgoNotFound,
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

__all__ = [
    "DECIMAL_RANGE",
    "INT_RANGE",
    "BinanceError",
    "bad_symbol",
    "from_engine",
    "illegal_chars",
    "invalid_data",
    "mandatory",
    "not_required",
    "unknown_order",
]

DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INT_RANGE = r"^[0-9]{1,20}$"


class BinanceError(Exception):
    """An error reply. ``status`` is the HTTP status (400, or 401 for API-key errors)."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal_chars(name: str, legal: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def invalid_data(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def bad_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def unknown_order(cancel: bool) -> BinanceError:
    """-2011 on cancel (CANCEL_REJECTED), -2013 on queries (NO_SUCH_ORDER)."""
    return (
        BinanceError(-2011, "Unknown order sent.") if cancel else BinanceError(-2013, "Order does not exist.")
    )


def _size_error(exc: InvalidSize) -> BinanceError:
    text = exc.message
    if "above the maximum" in text:
        return BinanceError(-4005, "Quantity greater than max quantity.")
    if "below the minimum" in text:
        return BinanceError(-4004, "Quantity less than min quantity.")
    if "multiple" in text:
        return BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    return BinanceError(-4003, "Quantity less than or equal to zero.")


def from_engine(exc: EngineError, *, cancel: bool = False) -> BinanceError:
    """The Binance reply for an engine refusal (the engine changed nothing)."""
    if isinstance(exc, UnknownAccount):
        return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    if isinstance(exc, UnknownInstrument):
        return bad_symbol()
    if isinstance(exc, InvalidSize):
        return _size_error(exc)
    if isinstance(exc, InvalidPrice):
        return BinanceError(-4014, "Price not increased by tick size.")
    if isinstance(exc, MinNotional):
        floor = exc.details.get("min", "")
        return BinanceError(
            -4164, f"Order's notional must be no smaller than {floor} (unless you choose reduce only)."
        )
    if isinstance(exc, NoMarketPrice):
        return BinanceError(-2020, "Unable to fill.")
    if isinstance(exc, InsufficientMargin):
        return BinanceError(-2019, "Margin is insufficient.")
    if isinstance(exc, PostOnlyWouldTake):
        return BinanceError(
            -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected."
        )
    if isinstance(exc, ReduceOnlyRejected):
        return BinanceError(-2022, "ReduceOnly Order is rejected.")
    if isinstance(exc, DuplicateClientOrderId):
        return BinanceError(-4116, "ClientOrderId is duplicated.")
    if isinstance(exc, OrderNotFound | AlgoNotFound):
        return unknown_order(cancel)
    if isinstance(exc, InvalidLeverage):
        return BinanceError(-4028, "Leverage is not valid")
    if isinstance(exc, InvalidPositionSide):
        return BinanceError(-4061, "Order's position side does not match user's setting.")
    if isinstance(exc, PositionModeChangeRejected):
        return BinanceError(-4067, "Position side cannot be changed if there exists open orders.")
    if isinstance(exc, InvalidTriggerPrice):
        return BinanceError(-2021, "Order would immediately trigger.")
    if isinstance(exc, InvalidRequest):
        field = exc.details.get("field")
        return invalid_data(str(field)) if field else BinanceError(-1000, exc.message)
    return BinanceError(-1000, "An unknown error occured while processing the request.")
