"""The services the bot adapters command: the running service passes its own; a bot process builds one.

`CommandServices.from_settings(redis)` builds the same graph the service does (bootstrap.build_graph: store
with the dual-write flag, encrypted credential store, gateway pool with one shared market registry, order and
position managers) but tracks no account and starts no feed: the exchange's answers are then folded straight
into the stored records by the same rules an account actor uses, and the adapters re-read positions from the
exchange when they need the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from ..bus import Bus
from ..config import Settings
from ..services.account.ports import Accounts
from ..services.gateways import GatewayProvider
from ..services.orders import OrderManager
from ..services.positions import PositionManager
from ..store import Store

if TYPE_CHECKING:
    from ..bootstrap import Services


@dataclass
class CommandServices:
    store: Store
    orders: OrderManager
    positions: PositionManager
    accounts: Accounts
    bus: Bus
    settings: Settings = field(default_factory=Settings)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    @property
    def gateways(self) -> GatewayProvider:
        return self.orders.gateways

    @classmethod
    def of(cls, services: Services) -> CommandServices:
        """The parts of a built graph (the running service's own: its account actors and bus)."""
        return cls(
            store=services.store,
            orders=services.order_manager,
            positions=services.position_manager,
            accounts=services.accounts,
            bus=services.bus,
            settings=services.settings,
        )

    @classmethod
    def from_app(cls, ctx: Services) -> CommandServices:
        return cls.of(ctx)

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings | None = None) -> CommandServices:
        """Standalone services inside a bot process, configured from the environment (Settings)."""
        from ..bootstrap import build_graph

        services = build_graph(settings or Settings(), redis, track_accounts=False, adapters=False)
        built = cls.of(services)
        built._closers = [services.stop]
        return built

    async def close(self) -> None:
        """Close what `from_settings` opened (the service's own parts are closed by the service)."""
        closers, self._closers = self._closers, []
        for close in closers:
            await close()
