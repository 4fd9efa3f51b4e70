"""Throughput of the pure simulator engine, in process, on one core.

Run: ``.venv/bin/python bench/bench_sim_engine.py [--orders N] [--repeat R]``

Scenarios (OKX BTC-USDT-SWAP, one account, net mode, a no-op subscriber attached):
- market: market orders alternating buy/sell (each: validate + margin check + fill + position + balance
  + events); the price moves one tick every 10 orders.
- limit mix: a post-only limit rests one tick away from the market, then a price step fills it as maker
  (each: place + rest + set_price + fill); "orders/s" counts limit orders.
- resting book: set_price throughput with 200 resting orders that do not cross.

Target (README of the task): >= 20,000 market orders/s. Prints the best of R runs per scenario.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from position_order_service.sim.engine import Event, SimEngine

INST = "BTC-USDT-SWAP"
KEY = "bench-key"


def _engine() -> SimEngine:
    eng = SimEngine("okx", seed=42)
    eng.create_account(KEY, "secret", "pass", balances={"USDT": "100000000"})
    eng.set_price(INST, "50000")
    received = [0]

    def listener(_event: Event) -> None:
        received[0] += 1

    eng.subscribe(listener)
    return eng


def bench_market(n: int) -> float:
    eng = _engine()
    sz = Decimal("0.5")
    prices = [Decimal("50000") + Decimal("0.1") * (i % 7) for i in range(7)]
    place = eng.place_order
    set_price = eng.set_price
    t0 = time.perf_counter()
    for i in range(n):
        place(KEY, INST, "buy" if i & 1 == 0 else "sell", sz)
        if i % 10 == 9:
            set_price(INST, prices[i % 7])
    dt = time.perf_counter() - t0
    pos = eng.positions(KEY, INST)
    assert not pos or abs(pos[0].qty) <= sz, pos
    return n / dt


def bench_limit_mix(n: int) -> float:
    eng = _engine()
    sz = Decimal("0.5")
    base = Decimal("50000")
    tick = Decimal("0.1")
    buy_px = base - tick * 2
    sell_px = base + tick * 2
    place = eng.place_order
    set_price = eng.set_price
    t0 = time.perf_counter()
    for i in range(n):
        if i & 1 == 0:  # rest a buy below the market, then drop the price until ask == px
            place(KEY, INST, "buy", sz, ord_type="post_only", px=buy_px)
            set_price(INST, buy_px - tick)
        else:  # rest a sell above, then lift the price until bid == px
            place(KEY, INST, "sell", sz, ord_type="post_only", px=sell_px)
            set_price(INST, sell_px + tick)
        set_price(INST, base)
    dt = time.perf_counter() - t0
    assert not eng.open_orders(KEY), "every limit order should have filled"
    return n / dt


def bench_resting_ticks(n: int) -> float:
    eng = _engine()
    for i in range(100):
        eng.place_order(KEY, INST, "buy", "0.01", ord_type="limit", px=Decimal("40000") - i)
        eng.place_order(KEY, INST, "sell", "0.01", ord_type="limit", px=Decimal("60000") + i)
    prices = [Decimal("50000") + Decimal("0.1") * (i % 50) for i in range(50)]
    set_price = eng.set_price
    t0 = time.perf_counter()
    for i in range(n):
        set_price(INST, prices[i % 50])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.orders} orders x {args.repeat}")
    gc.collect()
    market = max(bench_market(args.orders) for _ in range(args.repeat))
    limit = max(bench_limit_mix(args.orders // 2) for _ in range(args.repeat))
    ticks = max(bench_resting_ticks(args.orders // 5) for _ in range(args.repeat))
    print(f"sim_engine market orders/s: {market:,.0f}")
    print(f"sim_engine limit-rest-then-fill orders/s: {limit:,.0f}")
    print(f"sim_engine set_price ticks/s with 200 resting orders: {ticks:,.0f}")
    print(f"target >= 20,000 market orders/s: {'OK' if market >= 20_000 else 'MISSED'}")


if __name__ == "__main__":
    main()
