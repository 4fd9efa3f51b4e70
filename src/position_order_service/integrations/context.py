"""The services the bot adapters command: the running service passes its own; a bot process builds one.

`CommandServices.from_settings(redis)` wires the same parts the service does (store with the dual-write flag,
encrypted credential store, gateway pool with one shared market registry, order and position managers) but
starts no tracker and no price feed: the OrderManager then writes what the exchange answers straight to the
store, and the adapters re-read positions from the exchange when they need the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.fernet import Fernet
from redis.asyncio import Redis

from ..config import Settings
from ..exchanges.base import Credentials, ExchangeGateway
from ..services.gateways import GatewayProvider
from ..services.orders import OrderManager
from ..services.positions import PositionManager
from ..services.tracking import TrackingService
from ..store import Store

log = logging.getLogger(__name__)


class _AppContextLike(Protocol):
    """What `CommandServices.from_app` reads from the service's AppContext."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def order_manager(self) -> OrderManager: ...

    @property
    def position_manager(self) -> PositionManager: ...

    @property
    def tracking(self) -> TrackingService: ...


@dataclass
class CommandServices:
    store: Store
    orders: OrderManager
    positions: PositionManager
    tracking: TrackingService
    settings: Settings = field(default_factory=Settings)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    @property
    def gateways(self) -> GatewayProvider:
        return self.orders.gateways

    @classmethod
    def from_app(cls, ctx: _AppContextLike) -> CommandServices:
        """The running service's own parts (trackers, listeners and all)."""
        return cls(
            store=ctx.store,
            orders=ctx.order_manager,
            positions=ctx.position_manager,
            tracking=ctx.tracking,
            settings=ctx.settings,
        )

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings | None = None) -> CommandServices:
        """Standalone services inside a bot process, configured from the environment (Settings)."""
        from ..exchanges.factory import build_gateway
        from ..exchanges.markets import MarketRegistry
        from ..services.credentials import CredentialStore, fernet_from_setting
        from ..services.gateway_pool import GatewayPool
        from ..services.prices import PriceHub

        s = settings or Settings()
        store = Store.create(redis, prefix=s.key_prefix, dual_write=s.dual_schema_write)
        secret = s.credentials_key.get_secret_value()
        if secret:
            fernet = fernet_from_setting(secret)
        else:
            log.warning(
                "CREDENTIALS_KEY is not set: credentials stored by the service cannot be read by this process"
            )
            fernet = Fernet(Fernet.generate_key())
        credentials = CredentialStore(
            redis, store.keys, fernet, allow_legacy_plaintext=s.allow_legacy_plaintext_keys
        )
        registry = MarketRegistry()
        base_urls = {"okx": s.okx_base_url, "binance": s.binance_base_url}

        async def build(exchange: str, user_id: str, creds: Credentials | None) -> ExchangeGateway:
            return await build_gateway(
                exchange, user_id, creds, base_url=base_urls.get(exchange, ""), registry=registry
            )

        gateways = GatewayPool(credentials, build)
        prices = PriceHub(store, gateways, max_hz=s.price_events_max_hz)
        tracking = TrackingService(store, gateways, prices)  # not started: no trackers, no feeds
        orders = OrderManager(store, gateways, tracking)
        positions = PositionManager(store, gateways, tracking, orders)
        return cls(
            store=store,
            orders=orders,
            positions=positions,
            tracking=tracking,
            settings=s,
            _closers=[prices.close, gateways.close],
        )

    async def close(self) -> None:
        """Close what `from_settings` opened (the service's own parts are closed by the service)."""
        closers, self._closers = self._closers, []
        for close in closers:
            await close()
