"""The ExchangeGateway port: everything the services need from an exchange, for one user's account.

Implementations: `okx.gateway` and `binance.gateway` (subclasses of `ccxt_base.CcxtGateway`, over ccxt /
ccxt.pro, real or simulated) and `paper`
(the simulator engine in process). Sizes crossing this port are in base currency; converting to contracts is
the gateway's job. Orders and positions come back as domain models carrying the gateway's user_id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ..domain.enums import Exchange, PositionSide
from ..domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ..domain.models import Order, Position


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str
    secret: str
    passphrase: str = ""

    def __repr__(self) -> str:  # never show secrets, not even in a traceback
        return f"Credentials(api_key={self.api_key[:4]}..., secret=***, passphrase=***)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ConnectionQueue:
    """An account's sockets waiting their turn at the service's own connection pacer (exchanges limit
    connection attempts per IP; at a cold start the last accounts wait minutes): no attempt made yet, so
    nothing the venue or the network did."""

    sockets: int  # how many of them wait
    ahead: int  # attempts (any account's) that start before the first of them
    rate: str  # the pacer's limit, "3/s"
    address: str  # the venue address it paces, "okx 127.0.0.1:8090"
    eta_s: float  # about how long until the first of them starts, at that rate

    def describe(self) -> str:
        return (
            f"waiting for a connection slot: {self.ahead} ahead ({self.rate} for {self.address}), "
            f"~{self.eta_s:.0f} s"
        )


@dataclass(frozen=True, slots=True)
class SocketsPending:
    """The account's private sockets that are not open, as its gateway sees them."""

    queued: ConnectionQueue | None = None  # some wait at our own pacer
    attempted_since: float | None = None
    """(time.monotonic) when the first attempt of the earliest socket attempted and still not open started:
    the venue or the network has had it since then. None when no socket has been attempted."""


class GatewayError(Exception):
    """An exchange refused or failed a call. `reason` is the exchange's own words, safe to show."""

    status_hint = 502

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class AuthenticationFailed(GatewayError):
    status_hint = 401


class InsufficientFunds(GatewayError):
    pass


class InvalidOrder(GatewayError):
    pass


class OrderNotFound(GatewayError):
    status_hint = 404


class ExchangeUnavailable(GatewayError):
    """Network error or timeout: the outcome of the call is UNKNOWN (resolve by querying, never resend)."""

    status_hint = 503


class StreamDisconnected(ExchangeUnavailable):
    """A watch stream dropped; the next watch reconnects. Updates during the gap must be reconciled."""


@runtime_checkable
class ExchangeGateway(Protocol):
    exchange: Exchange
    user_id: str

    async def load_markets(self) -> dict[str, MarketInfo]: ...

    def market(self, symbol: str) -> MarketInfo:
        """Look up by native id (BTC-USDT-SWAP) or ccxt unified symbol (BTC/USDT:USDT)."""
        ...

    async def create_order(self, request: OrderRequest) -> Order: ...

    async def cancel_order(self, symbol: str, order_id: str, is_algo: bool | None = None) -> Order | None:
        """Cancel a regular or algo order; `is_algo=None` tries both kinds. OrderNotFound when gone."""
        ...

    async def fetch_order(
        self, symbol: str, order_id: str | None = None, client_order_id: str | None = None
    ) -> Order | None:
        """Find one order (regular or algo) by the exchange's id or our client order id; None if unknown."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open regular and algo orders."""
        ...

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[Position]: ...

    async def fetch_fills(self, since_ms: int, symbols: Sequence[str] = ()) -> list[FillReport]:
        """The account's fills (trades) at or after `since_ms` (the exchange's time), oldest first: what a
        stream gap lost. `symbols`: the instruments to ask for where the venue needs one per request
        (Binance); venues that list every instrument at once (OKX, paper) ignore it."""
        ...

    async def fetch_balance(self) -> dict[str, Decimal]: ...

    async def fetch_ticker(self, symbol: str) -> PriceTick: ...

    async def set_leverage(
        self, symbol: str, leverage: int, position_side: PositionSide | None = None
    ) -> None: ...

    async def set_position_mode(self, hedged: bool) -> None: ...

    async def fetch_position_mode(self) -> bool:
        """True in hedge (long/short) mode."""
        ...

    async def watch_orders(self) -> list[Order]:
        """Wait for the next batch of order updates (regular and algo). Raises StreamDisconnected."""
        ...

    async def watch_positions(self) -> list[Position]: ...

    async def watch_fills(self) -> list[FillReport]: ...

    async def watch_ticker(self, symbol: str) -> PriceTick: ...

    async def streams_ready(self, within_s: float) -> bool:
        """True once the private streams' connections are open (their watches subscribe on them), waiting up
        to `within_s`: a snapshot taken after that misses no update (the stream shows what follows it)."""
        ...

    def sockets_pending(self) -> SocketsPending:
        """Which private sockets are not open yet and why: waiting at our own connection pacer, or attempted
        (since when). Cheap, never waits: an account's health asks on every read."""
        ...

    async def watch_mark_price(self, symbol: str) -> PriceTick:
        """The venue's mark price (OKX ``mark-price``, Binance ``<symbol>@markPrice``): last and mark are both
        the mark; bid and ask are None."""
        ...

    async def close(self) -> None: ...
