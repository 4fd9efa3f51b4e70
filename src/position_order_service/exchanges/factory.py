"""Building a user's gateway: the paper gateway over an in-process simulator engine, else the venue's ccxt
gateway (real venue, or the simulator's wire front when ``base_url`` points at it). The one place that maps an
exchange to its gateway class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.enums import Exchange
from .base import Credentials, ExchangeGateway
from .markets import MarketRegistry

if TYPE_CHECKING:
    from ..sim.engine import SimEngine
    from .ccxt_base import CcxtGateway, PushParsing


def gateway_class(exchange: Exchange | str) -> type[CcxtGateway]:
    """The ccxt gateway class of a venue (its package is imported on first use: ccxt is heavy)."""
    ex = Exchange(exchange)
    if ex is Exchange.OKX:
        from .okx.gateway import OkxGateway

        return OkxGateway
    if ex is Exchange.BINANCE:
        from .binance.gateway import BinanceGateway

        return BinanceGateway
    raise ValueError(f"{ex.value} is not supported by the ccxt gateways")


async def build_gateway(
    exchange: Exchange | str,
    user_id: str,
    credentials: Credentials | None,
    *,
    base_url: str = "",
    registry: MarketRegistry | None = None,
    engine: SimEngine | None = None,
    hedged: bool | None = None,
    load_markets: bool = True,
    pushes: PushParsing = "ours",
) -> ExchangeGateway:
    """A gateway for ``user_id`` on ``exchange`` with its markets loaded (``market()`` works at once).

    ``engine`` given: a :class:`~.paper.PaperGateway` on that engine (credentials' api_key = the account).
    Otherwise the venue's :class:`~.ccxt_base.CcxtGateway` subclass; markets come from ``registry`` (loaded once
    per venue); ``pushes`` picks who parses the streams (ours, or ccxt's for comparison).
    ``credentials`` None: public market data only. Raises the gateway's errors if the markets cannot load.
    """
    if engine is not None:
        from .paper import PaperGateway

        return PaperGateway(engine, user_id, None if credentials is None else credentials.api_key, exchange)
    gateway = gateway_class(exchange)(
        user_id, credentials, base_url=base_url, registry=registry, hedged=hedged, pushes=pushes
    )
    if load_markets:
        try:
            await gateway.load_markets()
        except BaseException:
            await gateway.close()
            raise
    return gateway
