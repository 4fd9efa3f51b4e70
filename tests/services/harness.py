"""Services wired as the app wires them (bootstrap.build_graph), over the paper gateway (the simulator engine
in process) or the real ccxt client against the simulator's OKX wire front."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from cryptography.fernet import Fernet

from position_order_service.bootstrap import Services, build_graph
from position_order_service.bus import Bus
from position_order_service.config import Settings
from position_order_service.exchanges.base import Credentials, ExchangeGateway
from position_order_service.exchanges.factory import build_gateway
from position_order_service.exchanges.markets import MarketRegistry
from position_order_service.services.account import AccountActor, AccountRegistry
from position_order_service.services.active_users import ActiveUserManager
from position_order_service.services.credentials import CredentialStore, FernetCipher
from position_order_service.services.gateway_pool import GatewayPool
from position_order_service.services.orders import OrderManager
from position_order_service.services.positions import PositionManager
from position_order_service.services.prices import PriceHub
from position_order_service.services.rules import ConditionalRuleEngine
from position_order_service.services.trailing import TrailingStopEngine
from position_order_service.sim.engine import SimEngine, wall_clock_ms
from position_order_service.sim.server import SimServer
from position_order_service.store import Store

SYMBOL = "BTC-USDT-SWAP"


@dataclass
class Harness:
    services: Services
    engine: SimEngine
    sim: SimServer | None = None  # set when the gateways are ccxt clients of a loopback simulator
    extra: list[Any] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def credentials(self) -> CredentialStore:
        return self.services.credentials

    @property
    def gateways(self) -> GatewayPool:
        return self.services.gateways

    @property
    def prices(self) -> PriceHub:
        return self.services.prices

    @property
    def accounts(self) -> AccountRegistry:
        return self.services.accounts

    @property
    def bus(self) -> Bus:
        return self.services.bus

    @property
    def orders(self) -> OrderManager:
        return self.services.order_manager

    @property
    def positions(self) -> PositionManager:
        return self.services.position_manager

    @property
    def active(self) -> ActiveUserManager:
        return self.services.active_users

    @property
    def trailing(self) -> TrailingStopEngine:
        return self.services.trailing

    @property
    def rules(self) -> ConditionalRuleEngine:
        return self.services.rules

    async def drop_next_order_reply(self, user_id: str) -> None:
        """The next order is placed on the exchange, but its reply is lost (the caller sees a network error)."""
        if self.sim is not None:
            self.sim.ctx.faults.drop_order_responses = 1
        else:
            gw = await self.gateways.for_user(user_id, "okx")
            gw.faults.drop_order_responses = 1  # type: ignore[attr-defined]

    async def disconnect(self, user_id: str) -> None:
        """Drop the user's streams as an exchange outage would."""
        if self.sim is not None:
            await self.sim.ctx.drop_all_sockets()
        else:
            gw = await self.gateways.for_user(user_id, "okx")
            gw.simulate_disconnect()  # type: ignore[attr-defined]

    def account(self, user_id: str, position_mode: str = "net", usdt: str = "1000000") -> str:
        key = f"key-{user_id}"
        self.engine.create_account(
            key, f"secret-{user_id}", "pass", balances={"USDT": usdt}, position_mode=position_mode
        )
        self.credentials.register_static(user_id, "okx", Credentials(key, f"secret-{user_id}", "pass"))
        return key

    async def track(self, user_id: str) -> AccountActor:
        actor = await self.accounts.start(user_id, "okx")
        assert actor is not None
        assert await actor.wait_reconciled(5)
        return actor

    def price(self, price: str, symbol: str = SYMBOL) -> None:
        self.engine.set_price(symbol, price)

    async def settle(self, rounds: int = 3) -> None:
        """Let streams, the bus and the engines catch up."""
        for _ in range(rounds):
            await asyncio.sleep(0.05)
            await self.bus.idle()
            await self.trailing.wait_idle()
            await self.rules.wait_idle()

    async def events(self, user_id: str) -> list[dict[str, Any]]:
        entries = await self.store.redis.xrange(self.store.keys.event_stream(user_id))
        return [orjson.loads(f[b"data"]) for _, f in entries]

    async def close(self) -> None:
        await self.services.stop()
        if self.sim is not None:
            await self.sim.stop()


def harness_settings(store: Store, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "key_prefix": store.keys.prefix,
        "dual_schema_write": store.positions.dual_write,
        # the simulator's limits are off here (below): pacing at OKX's 3/s would only delay the price stream
        # a test's ticks go to (pacing: tests/exchanges/test_connections.py, test_cold_start.py)
        "okx_ws_connects_per_s": 1000,
        "price_events_max_hz": 50,
        "reconcile_silent_s": 30,
        "position_mark_interval_s": 0.1,
        "trailing_flush_interval_s": 0.05,
        "engine_resync_interval_s": 3600,
        "user_rescan_interval_s": 3600,
        "symbol_rescan_interval_s": 3600,
        "history": False,
    }
    return Settings(_env_file=None, **{**values, **extra})  # type: ignore[call-arg]


async def make_harness(
    store: Store,
    engine: SimEngine | None = None,
    instance_id: str = "i1",
    via: str = "paper",
    **settings: Any,
) -> Harness:
    """`via`: "paper" (the engine in process) or "ccxt" (the real ccxt client over the OKX wire front)."""
    engine = engine or SimEngine("okx", seed=1, clock=wall_clock_ms)
    # limits off: several users' streams start (and restart) within a second, over OKX's 3 attempts per second
    sim = await SimServer("okx", engine=engine, limits=False).start() if via == "ccxt" else None
    registry = MarketRegistry()

    async def build(exchange: str, user_id: str, creds: Credentials | None) -> ExchangeGateway:
        if sim is not None:
            return await build_gateway(exchange, user_id, creds, base_url=sim.url, registry=registry)
        return await build_gateway(exchange, user_id, creds, engine=engine)

    services = build_graph(
        harness_settings(store, **settings),
        store.redis,
        gateway_builder=build,
        instance_id=instance_id,
        cipher=FernetCipher(Fernet(Fernet.generate_key())),
        adapters=False,
    )
    await services.start()
    return Harness(services, engine, sim)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


D = Decimal
