"""Seeded chaos against the service in process (issue 11 item 8, issue 16): the object graph the app builds,
against the simulator, through the paper gateway and through real ccxt over the OKX and the Binance USD-M wire
fronts on loopback; odd seeds run a one-way account (with flips: one fill from long to short), even seeds a
hedge one.

Each seed drives a random interleaving of price moves (fills, partial fills, trailing-stop triggers), orders
placed and cancelled on the exchange directly and through the service's command path, reconnects, slow
snapshots, lost/duplicated/reordered pushes, an exchange clock offset, Redis restarts and freezes (a
redis-server of the test's own), and service kills (as kill -9: the graph stops where it stands) with exchange
activity while the service is down, after which a new graph on the same Redis must converge, keep the ids of
the positions that survived and emit nothing while dead. Every `QUIET_EVERY` steps the faults stop and, within a bounded wait, the
service's positions and open orders must equal the exchange's; every exchange fill must have given exactly
one fill.created, every order one event per kind, positions alternate opened/closed; per-user event seqs
are contiguous; each trailing stop fired at most once and every stop whose price was crossed fired; no
client order id reached the exchange twice; each exchange change emitted one event (an order's status and
filled size at most once, no event repeating the previous one's content: numbers compare by value).

CI runs the fixed seeds in tests/chaos/conftest.py; many seeds outside CI:
    CHAOS_SEEDS=1-50 CHAOS_STEPS=5000 .venv/bin/pytest tests/chaos --timeout=0
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from position_order_service.store import Store
from position_order_service.store.connection import make_redis, wait_until_loaded

from ..services.harness import make_harness
from .conftest import chaos_steps, hedge_mode
from .driver import Chaos, Violation
from .redis_proc import RedisProc

QUIET_EVERY = 400


@pytest.fixture
async def chaos_store(chaos_redis: RedisProc) -> AsyncIterator[Store]:
    prefix = f"chaos:{uuid.uuid4().hex[:8]}:"
    redis: Redis = make_redis(chaos_redis.url, socket_timeout=1.0, socket_connect_timeout=1.0)
    yield Store.create(redis, prefix=prefix)
    chaos_redis.heal()
    await redis.connection_pool.disconnect()  # (connections from before a restart)
    await wait_until_loaded(redis)
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        await redis.delete(key)
    await redis.aclose()


# paper: the OKX engine in process; ccxt: real ccxt over the OKX wire front; binance: over the Binance one
GATEWAYS = {"paper": ("paper", "okx"), "ccxt": ("ccxt", "okx"), "binance": ("ccxt", "binance")}


@pytest.mark.parametrize("via", list(GATEWAYS))
async def test_chaos(
    via: str, chaos_seed: int, chaos_store: Store, chaos_redis: RedisProc, request: pytest.FixtureRequest
) -> None:
    steps = chaos_steps(request.config, via)
    gateway, venue = GATEWAYS[via]
    h = await make_harness(
        chaos_store,
        via=gateway,
        venue=venue,
        redis_url=chaos_redis.url,
        reconcile_silent_s=1.0,  # a quiet stream is reconciled within a quiet period
        snapshot_confirm_s=0.3,
        order_visibility_lag_s=1.0,
        event_stream_retention="10000000",
    )
    chaos = Chaos(
        h,
        chaos_redis,
        chaos_seed,
        user=f"chaos{chaos_seed}",
        hedged=hedge_mode(chaos_seed),
        observer=chaos_store,
    )
    started = time.monotonic()
    try:
        stats = await chaos.run(steps, QUIET_EVERY)
    except Violation as exc:
        mode = f"CHAOS_MODE={os.environ['CHAOS_MODE']} " if os.environ.get("CHAOS_MODE") else ""
        replay = (
            f"{mode}.venv/bin/pytest 'tests/chaos/test_chaos.py::test_chaos[seed{chaos_seed}-{via}]' "
            f"--chaos-seed {chaos_seed} --chaos-steps {steps} --timeout=0"
        )
        raise Violation(
            f"chaos seed {chaos_seed} via {via}{' (hedge mode)' if chaos.hedged else ''} "
            f"({chaos.stats.steps} steps, {dict(chaos.stats.actions)}): "
            f"{exc}\nreplay: {replay}"
        ) from None
    finally:
        chaos.close()
        chaos_redis.heal()
        await h.close()
    print(
        f"chaos {via} seed {chaos_seed}{' (hedge mode)' if chaos.hedged else ''}: {stats.steps} steps, {stats.quiet_periods} quiet periods in "
        f"{time.monotonic() - started:.1f}s; actions {dict(stats.actions)}; refused {dict(stats.command_errors)}; "
        f"outcome {stats.outcome}"
    )
    assert stats.steps == steps
