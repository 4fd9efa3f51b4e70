"""Building a user's gateway: the paper gateway over an in-process simulator engine, else the ccxt gateway
(real venue, or the simulator's wire front when ``base_url`` points at it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.enums import Exchange
from .base import Credentials, ExchangeGateway
from .markets import MarketRegistry

if TYPE_CHECKING:
    from ..sim.engine import SimEngine


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
) -> ExchangeGateway:
    """A gateway for ``user_id`` on ``exchange`` with its markets loaded (``market()`` works at once).

    ``engine`` given: a :class:`~.paper.PaperGateway` on that engine (credentials' api_key = the account).
    Otherwise a :class:`~.ccxt_gateway.CcxtGateway`; markets come from ``registry`` (loaded once per venue).
    ``credentials`` None: public market data only. Raises the gateway's errors if the markets cannot load.
    """
    if engine is not None:
        from .paper import PaperGateway

        return PaperGateway(engine, user_id, None if credentials is None else credentials.api_key, exchange)
    from .ccxt_gateway import CcxtGateway

    gateway = CcxtGateway(exchange, user_id, credentials, base_url=base_url, registry=registry, hedged=hedged)
    if load_markets:
        try:
            await gateway.load_markets()
        except BaseException:
            await gateway.close()
            raise
    return gateway
