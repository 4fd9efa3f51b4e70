"""String enums shared by the engine modules.

Values follow OKX v5 spellings where OKX has one; the Binance front maps them (noted per member).
All are ``StrEnum``: they compare equal to their string value and serialise as it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, TypeVar, cast

from .errors import InvalidRequest

__all__ = [
    "AlgoEventKind",
    "AlgoState",
    "AlgoType",
    "CancelSource",
    "Liquidity",
    "MarginMode",
    "OrdType",
    "OrderEventKind",
    "OrderState",
    "PosSide",
    "PositionMode",
    "Side",
    "TpSlLeg",
    "TriggerDirection",
    "TriggerPxType",
    "Venue",
    "parse_enum",
]

Venue = Literal["okx", "binance"]


class Side(StrEnum):
    BUY = "buy"  # Binance BUY
    SELL = "sell"  # Binance SELL


class PosSide(StrEnum):
    NET = "net"  # Binance BOTH (one-way mode)
    LONG = "long"  # Binance LONG (hedge mode)
    SHORT = "short"  # Binance SHORT (hedge mode)


class PositionMode(StrEnum):
    NET = "net"  # OKX net_mode, Binance dualSidePosition=false
    LONG_SHORT = "long_short"  # OKX long_short_mode, Binance dualSidePosition=true (hedge)


class MarginMode(StrEnum):
    """Label only: the engine computes margin as cross for both."""

    CROSS = "cross"
    ISOLATED = "isolated"


class OrdType(StrEnum):
    """OKX ordType. Binance: MARKET->market, LIMIT+GTC->limit, LIMIT+GTX->post_only, +IOC->ioc, +FOK->fok."""

    MARKET = "market"
    LIMIT = "limit"
    POST_ONLY = "post_only"
    IOC = "ioc"
    FOK = "fok"


class OrderState(StrEnum):
    """OKX order states. Binance: live->NEW, partially_filled->PARTIALLY_FILLED, filled->FILLED,
    canceled->CANCELED (or EXPIRED when ``Order.cancel_source`` is not ``user``)."""

    LIVE = "live"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"


class CancelSource(StrEnum):
    """Why an order ended canceled. Anything but USER is an "expiry" in Binance terms."""

    USER = "user"  # cancel_order / cancel_all
    IOC = "ioc"  # IOC remainder (Binance EXPIRED)
    FOK = "fok"  # FOK could not fill completely (Binance EXPIRED)
    REDUCE_ONLY = "reduce_only"  # reduce-only/closing order left with no position to reduce
    POSITION_MODE = "position_mode"  # reserved


class Liquidity(StrEnum):
    """OKX execType T/M, Binance ``m`` (is maker) flag."""

    MAKER = "maker"
    TAKER = "taker"


class OrderEventKind(StrEnum):
    """Binance execution type x: NEW, TRADE, CANCELED/EXPIRED, AMENDMENT."""

    NEW = "new"
    TRADE = "trade"
    CANCELED = "canceled"
    AMENDED = "amended"


class AlgoType(StrEnum):
    """OKX algo ordType. Binance: STOP(_MARKET)/TAKE_PROFIT(_MARKET) -> conditional with an sl/tp leg,
    TRAILING_STOP_MARKET -> move_order_stop."""

    CONDITIONAL = "conditional"  # one leg (sl or tp) or both (then behaves as oco)
    OCO = "oco"  # both legs required; first to trigger wins
    TRIGGER = "trigger"  # plain trigger: at trigger_px place a market or limit order
    MOVE_ORDER_STOP = "move_order_stop"  # trailing stop


class AlgoState(StrEnum):
    """OKX algo states. Binance ALGO_UPDATE: live->NEW, effective->TRIGGERED/FINISHED,
    canceled->CANCELED, order_failed->REJECTED/EXPIRED."""

    LIVE = "live"
    EFFECTIVE = "effective"
    CANCELED = "canceled"
    ORDER_FAILED = "order_failed"


class AlgoEventKind(StrEnum):
    NEW = "new"
    ACTIVATED = "activated"  # trailing stop reached its active_px (or active at once: NEW carries it)
    TRIGGERED = "triggered"  # state -> effective, child order placed (algo.order_id set)
    CANCELED = "canceled"
    FAILED = "failed"  # state -> order_failed (algo.fail_code / fail_reason set)


class TpSlLeg(StrEnum):
    SL = "sl"
    TP = "tp"


class TriggerDirection(StrEnum):
    """Fires when the watched price is >= trigger (UP) or <= trigger (DOWN)."""

    UP = "up"
    DOWN = "down"


class TriggerPxType(StrEnum):
    LAST = "last"  # Binance CONTRACT_PRICE
    MARK = "mark"  # Binance MARK_PRICE


_S = TypeVar("_S", bound=StrEnum)


def parse_enum(cls: type[_S], value: _S | str, field_name: str) -> _S:
    """``cls(value)``, raising :class:`InvalidRequest` naming the field for an unknown value."""
    if type(value) is cls:
        return value
    member = cls._value2member_map_.get(value)  # fast path for plain strings
    if member is not None:
        return cast(_S, member)
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise InvalidRequest(f"{field_name} must be one of {allowed}: {value!r}", field=field_name) from None
