"""Services wired as the app wires them (bootstrap.build_graph), over the paper gateway (the simulator engine
in process) or the real ccxt client against the simulator's OKX or Binance wire front. A harness can also kill
its graph as kill -9 would and build a new one on the same Redis (a restart)."""

from __future__ import annotations

import asyncio
import contextlib
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
from position_order_service.store.connection import make_redis
from position_order_service.supervisor import Supervisor

SYMBOL = "BTC-USDT-SWAP"
SYMBOLS = {"okx": SYMBOL, "binance": "BTCUSDT"}
GraphBuilder = Callable[[], Awaitable[Services]]


@dataclass
class Harness:
    services: Services
    engine: SimEngine
    sim: SimServer | None = None  # set when the gateways are ccxt clients of a loopback simulator
    extra: list[Any] = field(default_factory=list)
    venue: str = "okx"
    # a new graph on the same Redis (set when the graph has a Redis client of its own: it can be killed)
    rebuild: GraphBuilder | None = None
    registered: dict[str, Credentials] = field(default_factory=dict)
    # the tasks that were running before the graph was built (the test's, the simulator's): not the graph's
    before: set[asyncio.Task[Any]] = field(default_factory=set)
    killed: bool = False

    @property
    def exchange(self) -> str:
        return self.venue

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.venue]

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
            gw = await self.gateways.for_user(user_id, self.venue)
            gw.faults.drop_order_responses = 1  # type: ignore[attr-defined]

    async def disconnect(self, user_id: str) -> None:
        """Drop the user's streams as an exchange outage would."""
        if self.sim is not None:
            await self.sim.ctx.drop_all_sockets()
        else:
            gw = await self.gateways.for_user(user_id, self.venue)
            gw.simulate_disconnect()  # type: ignore[attr-defined]

    def account(self, user_id: str, position_mode: str = "net", usdt: str = "1000000") -> str:
        key = f"key-{user_id}"
        passphrase = "pass" if self.venue == "okx" else None
        self.engine.create_account(
            key, f"secret-{user_id}", passphrase, balances={"USDT": usdt}, position_mode=position_mode
        )
        creds = self.registered[user_id] = Credentials(key, f"secret-{user_id}", passphrase or "")
        self.credentials.register_static(user_id, self.venue, creds)
        return key

    async def track(self, user_id: str) -> AccountActor:
        actor = await self.accounts.start(user_id, self.venue)
        assert actor is not None
        assert await actor.wait_reconciled(5)
        return actor

    def price(self, price: str, symbol: str | None = None) -> None:
        self.engine.set_price(symbol or self.symbol, price)

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

    def graph_tasks(self) -> list[asyncio.Task[Any]]:
        """The running tasks of the graph: every task started since it was built but the simulator's (its
        sockets' handlers, pumps and feeds) and the caller's. The test's commands into the graph (a bot's
        requests) count as the graph's: they run its code."""
        me = asyncio.current_task()
        return [
            t for t in asyncio.all_tasks() if t not in self.before and t is not me and not _simulator_task(t)
        ]

    async def kill(self) -> list[str]:
        """As kill -9 would: the graph's work stops all at once where it stands (Services.stop never runs: no
        stop in order, no final flush, no lease released) and its sockets close. Returns the tasks the
        supervisor did not own (a real process kill takes them with it; a service stop would have to find
        them)."""
        assert self.rebuild is not None, (
            "kill needs a graph with its own Redis client (make_harness(redis_url=))"
        )
        self.killed = True
        supervised = {j.task for j in self.services.supervisor.all_jobs() if j.task is not None}
        _refuse_new_jobs(self.services.supervisor)  # (a timer of the dead graph, a price flush, starts none)
        unowned: set[str] = set()
        # again until none is left: a callback already queued (a group commit's next flush) starts a task
        # while the first ones wind down
        for _ in range(20):
            tasks = self.graph_tasks()
            if not tasks:
                break
            for t in tasks:
                t.cancel()
            unowned.update(_described(t) for t in tasks if t not in supervised)
            _, pending = await asyncio.wait(tasks, timeout=5)
            assert not pending, f"tasks of the killed graph did not stop: {sorted(map(_described, pending))}"
        else:
            raise AssertionError(f"the killed graph keeps starting tasks: {sorted(map(_described, tasks))}")
        # its sockets: the exchange's streams and Redis see the connections drop, as after a process exit
        with contextlib.suppress(Exception):
            await self.gateways.close()
        with contextlib.suppress(Exception):
            await self.services.redis.connection_pool.disconnect()
        return sorted(unowned)

    async def restart(self, *users: str) -> None:
        """A new graph on the same Redis (the killed one's state is all it finds), tracking `users` again."""
        assert self.rebuild is not None and self.killed
        self.before = set(asyncio.all_tasks())
        old = self.services
        self.services = await self.rebuild()
        self.killed = False
        await old.redis.aclose()
        for user_id in users:
            self.credentials.register_static(user_id, self.venue, self.registered[user_id])
            await self.track(user_id)

    async def close(self) -> None:
        if not self.killed:
            await self.services.stop()
        if self.rebuild is not None:
            await self.services.redis.aclose()
        if self.sim is not None:
            await self.sim.stop()


def _refuse_new_jobs(supervisor: Supervisor) -> None:
    supervisor._stopped = True
    for child in supervisor._children:
        _refuse_new_jobs(child)


def _described(task: asyncio.Task[Any]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return f"{task.get_name()} ({code.co_qualname if code is not None else '?'})"


def _simulator_task(task: asyncio.Task[Any]) -> bool:
    if task.get_name().startswith("sim-"):
        return True
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "aiohttp/web_" in code.co_filename


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
    venue: str = "okx",
    redis_url: str | None = None,
    **settings: Any,
) -> Harness:
    """`via`: "paper" (the engine in process) or "ccxt" (the real ccxt client over `venue`'s wire front; the
    paper gateway is OKX's only). `redis_url`: the graph gets a Redis client of its own there (the harness can
    then kill it and build another on the same data); else it shares `store`'s."""
    assert via == "ccxt" or venue == "okx", "the paper gateway runs the OKX engine"
    engine = engine or SimEngine(venue, seed=1, clock=wall_clock_ms)  # type: ignore[arg-type]
    # limits off: several users' streams start (and restart) within a second, over OKX's 3 attempts per second
    sim = await SimServer(venue, engine=engine, limits=False).start() if via == "ccxt" else None
    registry = MarketRegistry()

    async def build(exchange: str, user_id: str, creds: Credentials | None) -> ExchangeGateway:
        if sim is not None:
            return await build_gateway(exchange, user_id, creds, base_url=sim.url, registry=registry)
        return await build_gateway(exchange, user_id, creds, engine=engine)

    cipher = FernetCipher(Fernet(Fernet.generate_key()))  # one key for every graph of the harness

    async def graph() -> Services:
        redis = store.redis if redis_url is None else make_redis(redis_url, socket_timeout=1.0,
                                                                 socket_connect_timeout=1.0)  # fmt: skip
        services = build_graph(
            harness_settings(store, **settings),
            redis,
            gateway_builder=build,
            instance_id=instance_id,
            cipher=cipher,
            adapters=False,
        )
        await services.start()
        return services

    before = set(asyncio.all_tasks())
    services = await graph()
    rebuild = graph if redis_url is not None else None
    return Harness(services, engine, sim, venue=venue, rebuild=rebuild, before=before)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0, every: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


D = Decimal
