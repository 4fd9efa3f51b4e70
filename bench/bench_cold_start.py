"""Cold start of N accounts on ONE OKX simulator address at OKX's real connection limit (issue 14 items 4, 7).

Run: ``.venv/bin/python bench/bench_cold_start.py [--accounts 300] [--per-s 3] [--storm] [--streams-late-s S]``

The OKX simulator (limits on: ``--per-s`` WebSocket connection attempts per second per client address, 3 as OKX)
and the service (build_graph as bootstrap wires it, OKX_WS_CONNECTS_PER_S=``--per-s``, the real ccxt.pro client
over loopback, Redis on 127.0.0.1:6379 under a private key prefix) run in this process. N accounts are funded on
the simulator and activated; the service starts and every account opens its private sockets (/private and
/business) paced by the service's connection pacer. ``--storm`` then drops every socket at once
(``POST /sim/disconnect``) and times the recovery (reconnects jittered by WS_RECONNECT_JITTER_S, then paced).

Printed: the time until every account is reconciled with its private sockets open, the per-account ready times
(p50/p99), the sockets opened and the attempt rate, the connections the simulator refused (the target: 0), how
many accounts said `reconnecting` meanwhile (target 0: waiting at our own pacer is `starting`, its detail
saying where in the queue; ``--streams-late-s`` lowers the 45 s bound so a short run crosses it), and
the yardstick of the same run: the arithmetic's minimum, sockets x (1 s + 0.05 s guard) / limit (the limit used to the full), and the ratio
measured / minimum (1.0 = the limit used to the full).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from position_order_service.bootstrap import Services, build_graph  # noqa: E402
from position_order_service.config import Settings  # noqa: E402
from position_order_service.exchanges.base import Credentials, ExchangeGateway  # noqa: E402
from position_order_service.exchanges.ccxt_factory import OKX_WINDOW_S  # noqa: E402
from position_order_service.exchanges.factory import build_gateway  # noqa: E402
from position_order_service.exchanges.markets import MarketRegistry  # noqa: E402
from position_order_service.services.credentials import FernetCipher  # noqa: E402
from position_order_service.sim.engine import SimEngine, wall_clock_ms  # noqa: E402
from position_order_service.sim.server import SimServer  # noqa: E402
from position_order_service.store import Store  # noqa: E402
from position_order_service.store.connection import make_redis  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SYMBOL = "BTC-USDT-SWAP"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def ready_times(
    services: Services,
    users: list[str],
    t0: float,
    min_reconnects: int,
    limit_s: float,
    said: dict[str, set[str]] | None = None,
) -> dict[str, float]:
    """Seconds from t0 until each account is healthy with its private sockets open. `said`: the accounts seen
    in each state ("queued": starting with a place at the pacer in its detail) while they were not ready."""
    done: dict[str, float] = {}

    async def ready(user_id: str) -> bool:
        gateway = await services.gateways.for_user(user_id, "okx")
        return await gateway.streams_ready(0.06)

    while len(done) < len(users):
        health = {h["user_id"]: h for h in services.accounts.health()}
        if said is not None:
            for u, h in health.items():
                if u not in done:
                    said.setdefault(h["state"], set()).add(u)
                    if "connection slot" in (h.get("detail") or ""):
                        said.setdefault("queued", set()).add(u)
        candidates = [
            u
            for u in users
            if u not in done and (h := health.get(u)) and h["healthy"] and h["reconnects"] >= min_reconnects
        ]
        for u, ok in zip(candidates, await asyncio.gather(*(ready(u) for u in candidates)), strict=True):
            if ok:
                done[u] = time.monotonic() - t0
        if time.monotonic() - t0 > limit_s:
            print(f"  gave up: {len(done)} of {len(users)} ready after {limit_s:.0f} s")
            break
        await asyncio.sleep(0.2)
    return done


async def sim_json(http: aiohttp.ClientSession, sim: SimServer, path: str, body: Any = None) -> Any:
    if body is None:
        async with http.get(sim.url + path) as resp:
            return await resp.json()
    async with http.post(sim.url + path, json=body) as resp:
        return await resp.json()


def report(name: str, times: dict[str, float], sockets: int, refused: int, per_s: int, n: int) -> None:
    total = max(times.values()) if times else float("nan")
    minimum = max(sockets, 1) * OKX_WINDOW_S / per_s
    print(f"{name}: {len(times)}/{n} accounts ready in {total:.1f} s")
    if times:
        values = list(times.values())
        print(f"  per-account ready time p50 {pct(values, 50):.1f} s, p99 {pct(values, 99):.1f} s")
    print(f"  sockets open {sockets}, attempt rate {sockets / total:.2f}/s (limit {per_s}/s)")
    print(f"  refused by the simulator: {refused}  (target 0: {'met' if refused == 0 else 'NOT met'})")
    print(
        f"  yardstick: {sockets} x {OKX_WINDOW_S:.2f} s / {per_s} = {minimum:.1f} s; measured / minimum = {total / minimum:.2f}"
    )


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)  # each dropped stream logs a line: thousands in a storm
    engine = SimEngine("okx", seed=1, clock=wall_clock_ms)
    sim = await SimServer("okx", engine=engine).start()
    redis = make_redis(REDIS_URL)
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    store = Store.create(redis, prefix=prefix)
    users = [f"cold-{i:04d}" for i in range(args.accounts)]
    engine.set_price(SYMBOL, "60000")
    for u in users:
        engine.create_account(f"key-{u}", f"secret-{u}", "pass", balances={"USDT": "100000"})
        await store.users.activate(u, ["okx"])
    registry = MarketRegistry()

    async def build(exchange: str, user_id: str, creds: Credentials | None) -> ExchangeGateway:
        return await build_gateway(exchange, user_id, creds, base_url=sim.url, registry=registry)

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        key_prefix=prefix,
        history=False,
        okx_ws_connects_per_s=args.per_s,
        user_rescan_interval_s=3600,
        symbol_rescan_interval_s=3600,
        engine_resync_interval_s=3600,
    )
    services = build_graph(
        settings,
        redis,
        gateway_builder=build,
        cipher=FernetCipher(Fernet(Fernet.generate_key())),
        adapters=False,
    )
    if args.streams_late_s is not None:
        services.accounts.options = replace(services.accounts.options, streams_late_s=args.streams_late_s)
    for u in users:
        services.credentials.register_static(u, "okx", Credentials(f"key-{u}", f"secret-{u}", "pass"))
    limit_s = args.accounts * 3 / args.per_s * 2 + 60
    try:
        async with aiohttp.ClientSession() as http:
            await sim_json(http, sim, "/sim/limits", {"okx_ws_connects_per_s": args.per_s})
            print(
                f"{args.accounts} accounts, OKX limit {args.per_s} attempts/s per address (simulator and service)"
            )
            t0 = time.monotonic()
            await services.start()
            said: dict[str, set[str]] = {}
            times = await ready_times(services, users, t0, 0, limit_s, said)
            refused = (await sim_json(http, sim, "/sim/limits"))["refused_connections"]["okx"]
            report("cold start", times, len(sim.ctx.sockets), refused, args.per_s, args.accounts)
            late_s = services.accounts.options.streams_late_s
            print(
                f"  while not ready: {len(said.get('reconnecting', ()))} accounts said reconnecting (target 0: "
                f"nothing refused), {len(said.get('queued', ()))} said where they wait at the pacer "
                f"(streams_late_s {late_s:g} s)"
            )
            if args.storm:
                dropped = (await sim_json(http, sim, "/sim/disconnect", {}))["dropped"]
                t0 = time.monotonic()
                times = await ready_times(services, users, t0, 1, limit_s)
                after = (await sim_json(http, sim, "/sim/limits"))["refused_connections"]["okx"]
                report(
                    f"reconnect storm ({dropped} sockets dropped at once)",
                    times,
                    len(sim.ctx.sockets),
                    after - refused,
                    args.per_s,
                    args.accounts,
                )
    finally:
        await services.stop()
        await sim.stop()
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--per-s", type=int, default=3, help="OKX connection attempts per second per address")
    parser.add_argument("--storm", action="store_true", help="also drop every socket and time the recovery")
    parser.add_argument(
        "--streams-late-s",
        type=float,
        default=None,
        help="an account's sockets not open this long after its first snapshot and their first attempt say "
        "reconnecting (default 45: the service's)",
    )
    asyncio.run(main(parser.parse_args()))
