"""300 accounts start on ONE OKX simulator address without a refused connection, and come back the same way
after the simulator drops every socket at once (/sim/disconnect): the service in process, the real ccxt client
over loopback, the simulator enforcing OKX's per-IP connection limit.

Scaled limit, same arithmetic: OKX admits 3 WebSocket connection attempts per second per IP, so 300 accounts x
2 private sockets (/private, /business) = 600 attempts take 600 / 3 = 200 s at the real limit (the pacer:
600 x (1.05 s + one handshake) / 3). Here both the simulator (POST /sim/limits okx_ws_connects_per_s=30) and
the service (OKX_WS_CONNECTS_PER_S=30) use 30 per second, ten times the real one: 600 / 30 = 20 s per phase
(600 x (1.05 s + one handshake) / 30 with the pacer). The proof is the same: the simulator refuses any
attempt over its limit (HTTP 429, counted in refused_connections) and must count none. The real 3/s case is
bench/bench_cold_start.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from cryptography.fernet import Fernet

from position_order_service.bootstrap import Services, build_graph
from position_order_service.domain import Position
from position_order_service.domain.enums import Exchange, PositionSide
from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.exchanges.base import Credentials, ExchangeGateway
from position_order_service.exchanges.ccxt_factory import ConnectionLimits, set_connection_limits
from position_order_service.exchanges.factory import build_gateway
from position_order_service.exchanges.markets import MarketRegistry
from position_order_service.services.credentials import FernetCipher
from position_order_service.sim.engine import SimEngine, wall_clock_ms
from position_order_service.sim.server import SimServer
from position_order_service.store import Store
from position_order_service.store.connection import make_redis

from ..redis_backends import delete_prefixed
from ..services.harness import harness_settings

ACCOUNTS = 300
AT_STAKE = 12  # accounts with an open position: they are started (and connect) first
SCALED_PER_S = 30  # 10x OKX's 3 per second, on both sides
SYMBOL = "BTC-USDT-SWAP"
PHASE_TIMEOUT_S = 150.0


async def _sim_json(http: aiohttp.ClientSession, sim: SimServer, path: str, body: Any = None) -> Any:
    if body is None:
        async with http.get(sim.url + path) as resp:
            return await resp.json()
    async with http.post(sim.url + path, json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


def position(user_id: str) -> Position:
    now = datetime.now(UTC)
    return Position.model_validate(
        {
            "id": f"p-{user_id}",
            "user_id": user_id,
            "exchange": "okx",
            "symbol": SYMBOL,
            "side": "long",
            "size": "0.01",
            "entry_price": "60000",
            "updated_at": now,
            "created_at": now,
        }
    )


def trailing_stop(user_id: str) -> TrailingStop:
    return TrailingStop(
        user_id=user_id,
        exchange=Exchange.OKX,
        symbol=SYMBOL,
        side=PositionSide.LONG,
        callback_rate=Decimal("0.05"),
        state=StopState.ACTIVE,
        extreme_price=Decimal("60000"),
        version=1,
    )


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    engine = SimEngine("okx", seed=1, clock=wall_clock_ms)
    server = await SimServer("okx", engine=engine).start()  # limits on
    yield server
    await server.stop()


async def _ready(services: Services, user_id: str) -> bool:
    gateway = await services.gateways.for_user(user_id, "okx")
    return await gateway.streams_ready(0.06)


async def _all_healthy(
    services: Services, within_s: float, order: list[str] | None = None, min_reconnects: int = 0
) -> float:
    """Seconds until every account is reconciled and its private sockets are open (after at least
    `min_reconnects` reconnects); `order` gets the users in the order they got there."""
    t0 = time.monotonic()
    seen: set[str] = set()
    while True:
        health = services.accounts.health()
        candidates = [
            h["user_id"]
            for h in health
            if h["healthy"] and h["reconnects"] >= min_reconnects and h["user_id"] not in seen
        ]
        ready = await asyncio.gather(*(_ready(services, u) for u in candidates))
        for user_id, ok in zip(candidates, ready, strict=True):
            if ok:
                seen.add(user_id)
                if order is not None:
                    order.append(user_id)
        if len(seen) == ACCOUNTS and len(health) == ACCOUNTS:
            return time.monotonic() - t0
        if time.monotonic() - t0 > within_s:
            raise AssertionError(f"only {len(seen)} of {ACCOUNTS} accounts healthy after {within_s} s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def store(real_redis_url: str, key_prefix: str) -> AsyncIterator[Store]:
    """The service's own client (make_redis: a pool sized for thousands of accounts)."""
    redis = make_redis(real_redis_url)
    yield Store.create(redis, prefix=key_prefix)
    await delete_prefixed(redis, key_prefix)
    await redis.aclose()


async def test_300_accounts_start_and_survive_a_disconnect_of_all_within_the_connection_limit(
    sim: SimServer, store: Store
) -> None:
    engine = sim.ctx.engine
    engine.set_price(SYMBOL, "60000")
    users = [f"cold-{i:03d}" for i in range(ACCOUNTS)]
    at_stake = set(users[-AT_STAKE:])  # the last by id: started first only because of their positions
    for u in users:
        engine.create_account(f"key-{u}", f"secret-{u}", "pass", balances={"USDT": "100000"})
        await store.users.activate(u, ["okx"])
        if u in at_stake:  # a restart: Redis knows their open position (half) or live trailing stop (half)
            engine.place_order(f"key-{u}", SYMBOL, "buy", "1")
            if len(at_stake & set(users[: users.index(u)])) % 2:
                await store.positions.upsert(position(u))
            else:
                assert await store.trailing_stops.save(trailing_stop(u), None, "trailing_stop.created")
    registry = MarketRegistry()

    async def build(exchange: str, user_id: str, creds: Credentials | None) -> ExchangeGateway:
        return await build_gateway(exchange, user_id, creds, base_url=sim.url, registry=registry)

    settings = harness_settings(store, okx_ws_connects_per_s=SCALED_PER_S, ws_reconnect_jitter_s=1.0)
    services = build_graph(
        settings,
        store.redis,
        gateway_builder=build,
        cipher=FernetCipher(Fernet(Fernet.generate_key())),
        adapters=False,
    )
    for u in users:
        services.credentials.register_static(u, "okx", Credentials(f"key-{u}", f"secret-{u}", "pass"))
    try:
        async with aiohttp.ClientSession() as http:
            await _sim_json(http, sim, "/sim/limits", {"okx_ws_connects_per_s": SCALED_PER_S})
            order: list[str] = []
            await services.start()
            cold_s = await _all_healthy(services, PHASE_TIMEOUT_S, order)
            refused = (await _sim_json(http, sim, "/sim/limits"))["refused_connections"]
            assert refused == {"okx": 0}, f"cold start: {refused} refused"
            attempts = len(sim.ctx.sockets)  # every socket open now took one admitted attempt
            print(f"\n{attempts} sockets open")
            assert attempts >= ACCOUNTS
            # paced, not refused: the attempts really were spread over the window (~attempts / limit)
            assert cold_s >= attempts / SCALED_PER_S * 0.8, cold_s
            assert at_stake <= set(order[: ACCOUNTS // 4]), [order.index(u) for u in at_stake]

            dropped = (await _sim_json(http, sim, "/sim/disconnect", {}))["dropped"]
            assert dropped >= attempts
            storm_s = await _all_healthy(services, PHASE_TIMEOUT_S, min_reconnects=1)
            refused = (await _sim_json(http, sim, "/sim/limits"))["refused_connections"]
            assert refused == {"okx": 0}, f"reconnect storm: {refused} refused"
            print(f"\ncold start {cold_s:.1f} s, reconnect storm {storm_s:.1f} s, {dropped} sockets dropped")
    finally:
        await services.stop()
        set_connection_limits(ConnectionLimits())  # the process-wide pacers of later tests: the real limits
