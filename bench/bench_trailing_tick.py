"""Trailing stops (issue 6): the cost of one price tick with many active stops, and tick -> close order sent.

Run: ``.venv/bin/python bench/bench_trailing_tick.py [--quick] [--sizes 1000,10000,100000] [--runs 3]``

Part 1, per tick, in process (no I/O): N emulated long stops on one symbol, active, callback rates spread over
0.5%..5% and extremes spread over 200 distinct prices around 60000 (stops created at different times), in one
``TrailingBook`` (what the engine keeps per (exchange, symbol, price source, side)). Scenarios, each a sequence of
ticks timed one by one with perf_counter:
  still:      the price wanders below every extreme and above every stop: nothing moves, nothing triggers;
  rising:     every tick is a new high: every stop's extreme moves (the groups merge, then move together);
  triggers:   the price dips to where 5 stops (the smallest rates) trigger; they are re-added between ticks
              (outside the timing);
  engine:     ``TrailingStopEngine.on_tick(PriceTick)`` with the same book loaded (its per-tick overhead: the
              loop over price sources and sides, the dirty set), still and rising.
(still runs with 200 distinct extremes and with all stops on 1 extreme.)
Targets: <= 50 us per tick at 10k stops, <= 1 ms at 100k. Also the yardstick of PERFORMANCE.md measured in the same
run: a plain Python loop over the N stops with Decimal (0.09-0.17 us per stop per tick on the reference machine).
Also printed: the engine's ``flush`` bookkeeping after a rising tick, per chunk of FLUSH_CHUNK moved extremes (the
flush writes chunk by chunk, the event loop runs ticks between two chunks); book side only: the engine side (each
stop's trailing_stop.updated event and its packing) is not in this figure.

Part 2, tick -> close order sent (excluding the exchange's reply): the services wired over the paper gateway
(tests/services/harness.py: make_harness on a real Redis: a private redis-server by default, ``--redis shared``
for BENCH_REDIS_URL; key prefix bench:<uuid>:), U users each long
0.1 BTC with an emulated stop, callback rates 0.05% apart; the price steps down so that each tick triggers exactly
one stop (sequential), waiting for each send; then a single tick that triggers a burst of stops at once. Samples
are the engine's ``tick_to_send_s`` (tick seen by the engine -> the close order handed to the gateway, i.e. just
after the intent: the trigger's CAS + the close order's intent in ONE script and round trip, the live size from the
account, the order's preparation). Targets: one trigger p99 <= 2 ms; a tick firing --burst stops of as many users
(100): the last of its orders sent within 20 ms p99 (--bursts such ticks per run).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import logging
import os
import platform
import pstats
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import own_redis  # noqa: E402
from pauses import LoopPauses  # noqa: E402

from position_order_service.domain.enums import PositionSide  # noqa: E402
from position_order_service.domain.market import PriceTick  # noqa: E402
from position_order_service.domain.trailing import PriceSource, StopState, TrailingStop  # noqa: E402
from position_order_service.domain.trailing_book import TrailingBook  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SYMBOL = "BTC-USDT-SWAP"
D = Decimal
TARGETS_US = {10_000: 50.0, 100_000: 1000.0}


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


# ----------------------------------------------------------------------------------------- part 1
def make_stops(n: int, seed: int = 1, extremes: int = 200) -> list[tuple[str, Decimal, Decimal]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        rate = D(rnd.randint(50, 500)) / D(10_000)  # 0.5% .. 5%
        extreme = D(59_999) - D(rnd.randint(0, extremes - 1))  # `extremes` distinct values, up to 59999
        out.append((f"s{i:06d}", rate, extreme))
    return out


def build_book(stops: list[tuple[str, Decimal, Decimal]], few: int = 5) -> TrailingBook:
    book = TrailingBook(PositionSide.LONG)
    for sid, rate, extreme in stops:
        book.add(sid, rate, None, extreme)
    for j in range(few):  # the stops that the "triggers" scenario fires: tiny rates at the highest extreme
        book.add(f"few{j}", D("0.0001") * (j + 1), None, D(59_999))
    return book


def time_ticks(fn: Any, prices: list[Decimal], between: Any = None) -> list[float]:
    out = []
    gc.collect()
    gc.disable()
    try:
        for p in prices:
            t0 = time.perf_counter()
            fn(p)
            out.append(time.perf_counter() - t0)
            if between is not None:
                between()
    finally:
        gc.enable()
    return out


def yardstick(stops: list[tuple[str, Decimal, Decimal]], ticks: int) -> float:
    """PERFORMANCE.md: a plain Python loop with Decimal over every stop per tick (us per stop per tick)."""
    state = [[rate, extreme] for _, rate, extreme in stops]
    one = D(1)
    prices = [D(59_700) + D(i % 50) for i in range(ticks)]
    t0 = time.perf_counter()
    for p in prices:
        for s in state:
            if p > s[1]:
                s[1] = p
            elif p <= s[1] * (one - s[0]):
                pass
    return 1e6 * (time.perf_counter() - t0) / (ticks * len(state))


def part1(n: int, ticks: int) -> dict[str, list[float]]:
    stops = make_stops(n)
    res: dict[str, list[float]] = {}
    rising_ticks = ticks if n <= 10_000 else max(30, ticks // 8)  # O(n) ticks: fewer of them at 100k

    book = build_book(stops, few=0)
    still = [D(59_700) + D(i % 97) / D(10) for i in range(ticks)]  # below every extreme, above every stop
    res["book still (200 extremes)"] = time_ticks(book.on_price, still)

    book = build_book(make_stops(n, extremes=1), few=0)
    res["book still (1 extreme)"] = time_ticks(book.on_price, still)

    book = build_book(stops, few=0)
    rising = [D(60_000) + D(i) / D(10) for i in range(rising_ticks)]  # a new high every tick
    first = time_ticks(book.on_price, rising[:1])  # the first new high merges the 200 groups
    res["book rising (first tick: groups merge)"] = first
    res["book rising"] = time_ticks(book.on_price, rising[1:])
    chunks: list[float] = []
    moved = 0
    from position_order_service.services.trailing import FLUSH_CHUNK

    it = iter(book.moved_chunks(FLUSH_CHUNK))  # what the engine's flush takes per Redis round trip
    while True:
        t0 = time.perf_counter()
        chunk = next(it, None)
        chunks.append(time.perf_counter() - t0)
        if chunk is None:
            break
        moved += len(chunk)
    res[f"flush: one chunk of {FLUSH_CHUNK} moved extremes (book side)"] = chunks
    assert moved == n, moved

    book = build_book(stops)
    # the 5 extra stops sit at 59999 with rates 0.01%..0.05% (stops 59993.0..59969.0): 59960 fires all 5 and
    # no other stop (the highest other stop is 59999 x 0.995 = 59699.0)
    few_prices = [D("59960") for _ in range(ticks)]

    def readd() -> None:
        for j in range(5):
            if f"few{j}" not in book._rate:
                book.add(f"few{j}", D("0.0001") * (j + 1), None, D(59_999))

    fired: list[int] = []

    def tick_fire(p: Decimal) -> None:
        fired.append(len(book.on_price(p)))

    res["book 5 triggers"] = time_ticks(tick_fire, few_prices, readd)
    assert statistics.median(fired) == 5, fired[:5]

    for label, prices in (("engine.on_tick still (200 extremes)", still), ("engine.on_tick rising", rising)):
        engine = bare_engine(build_book(stops, few=0))
        ticks_ = [PriceTick(exchange="okx", symbol=SYMBOL, last=p, bid=p - D("0.1"), ask=p + D("0.1"), mark=p,
                            timestamp=datetime.now(UTC)) for p in prices]  # fmt: skip
        it = iter(ticks_)
        res[label] = time_ticks(lambda _p, it=it, engine=engine: engine.on_tick(next(it)), prices)
    return res


def bare_engine(book: TrailingBook) -> Any:
    """A TrailingStopEngine whose only book is `book` (on_tick needs no I/O unless a stop triggers)."""
    from position_order_service.services.trailing import TrailingStopEngine

    eng = TrailingStopEngine.__new__(TrailingStopEngine)
    eng.books = {("okx", SYMBOL, PriceSource.LAST, PositionSide.LONG): book}
    eng.stops = {}
    eng._dirty = set()
    eng._tasks = set()
    return eng


# ----------------------------------------------------------------------------------------- part 2
def install_stage_timers(h: Any) -> dict[str, list[float]]:
    """Time the awaited steps between a trigger and the send (instance/class attributes wrapped at run time;
    no source change): the CAS to `triggered`, the exchange query for the fixed client order id, the stale intent
    delete."""
    from position_order_service.exchanges.paper import PaperGateway

    stages: dict[str, list[float]] = defaultdict(list)
    repo, intents = h.store.trailing_stops, h.store.intents
    trigger_many, delete, fetch, create = (
        repo.trigger_many,
        intents.delete,
        PaperGateway.fetch_order,
        intents.create,
    )

    async def timed_trigger(triggers: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await trigger_many(triggers)
        finally:
            stages[f"CAS -> triggered + intent, one script (Redis), {len(triggers)} per round trip"].append(
                time.perf_counter() - t0
            )

    async def timed_create(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await create(*a, **k)
        finally:
            stages["intents.create (Redis; not on the trigger path any more)"].append(
                time.perf_counter() - t0
            )

    async def timed_delete(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await delete(*a, **k)
        finally:
            stages["intents.delete (Redis)"].append(time.perf_counter() - t0)

    async def timed_fetch(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fetch(self, *a, **k)
        finally:
            if k.get("client_order_id"):
                stages["gateway.fetch_order(client id) (paper)"].append(time.perf_counter() - t0)

    repo.trigger_many = timed_trigger
    intents.create = timed_create
    intents.delete = timed_delete
    PaperGateway.fetch_order = timed_fetch  # type: ignore[method-assign]
    return stages


class ErrorCounter(logging.Handler):
    """Counts WARNING+ log records of the service by message start (e.g. redis-py's MaxConnectionsError)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = defaultdict(int)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.counts[text.split(":")[0][:60] if "tracker" not in text else text.split(": ", 1)[-1][:60]] += 1


def print_profile(prof: cProfile.Profile) -> None:
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (path, lineno, fn), (_cc, _nc, _tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        if "position_order_service" in path:
            rows.append((ct, f"{path.split('src/')[-1]}:{lineno}:{fn}"))
    print("  cProfile of the sequential phase (cumulative, project functions; profiler overhead included):")
    for ct, name in sorted(rows, reverse=True)[:25]:
        print(f"    cum {100 * ct / total:5.1f}%  {name}")


async def part2(users: int, burst: int, bursts: int, redis_url: str, profile: bool = False) -> dict[str, Any]:
    from tests.services.harness import make_harness

    from position_order_service.store import Store
    from position_order_service.store.connection import make_redis

    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    redis = make_redis(redis_url)  # the app's client (store/connection.py): hiredis packing, a large pool
    store = Store.create(redis, prefix=prefix)
    h = await make_harness(store, position_mark_interval_s=1.0)  # the app's default (the harness: 0.1 s)
    out: dict[str, Any] = {}
    errors = ErrorCounter()
    service_log = logging.getLogger("position_order_service")
    service_log.addHandler(errors)
    service_log.propagate = False  # counted (printed as a summary), not dumped with tracebacks
    stalls = LoopPauses()
    try:
        h.price("60000")
        total = users + burst  # the burst users are reused by every burst (positions and stops re-made)
        rates = [D("0.0005") * (i + 1) for i in range(total)]  # 0.05%, 0.10%, ...
        for i in range(total):
            uid = f"tu{i}"
            key = h.account(uid)
            h.engine.place_order(key, SYMBOL, "buy", "10")  # 0.1 BTC long
        for i in range(total):
            await h.track(f"tu{i}")
        stops = []
        for i in range(total):
            st = TrailingStop.model_validate({"user_id": f"tu{i}", "exchange": "okx", "symbol": SYMBOL,
                                              "side": "long", "callback_rate": str(rates[i])})  # fmt: skip
            stops.append(await h.trailing.create(st))
        assert all(s.state is StopState.ACTIVE for s in stops), "stops did not activate at once"
        await asyncio.sleep(2.0)  # the accounts settle (their first snapshots)
        await h.settle(3)
        gc.freeze()  # as the app does once started (app.py lifespan): what is built stays out of full GCs
        stages = install_stage_timers(h)
        sent: dict[str, float] = {}
        h.trailing.on_sent = lambda stop: sent.setdefault(stop.id, time.perf_counter())
        h.trailing.tick_to_send_s.clear()
        stalls.start()
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        # sequential: the price steps down onto each stop in turn (60000 x (1 - r_i)); wait for its send
        t_start = time.perf_counter()
        for i in range(users):
            price = D(60_000) * (1 - rates[i])
            h.price(str(price.quantize(D("0.1"))))
            deadline = time.perf_counter() + 5
            while stops[i].id not in sent:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"stop {i} did not fire")
                await asyncio.sleep(0.0002)
            await h.trailing.wait_idle()  # the order is placed and the stop marked executed
        out["sequential"] = list(h.trailing.tick_to_send_s)
        out["stages"] = {k: list(v) for k, v in stages.items()}
        if prof is not None:
            prof.disable()
            print_profile(prof)
        out["seq_elapsed"] = time.perf_counter() - t_start
        # bursts: one tick crosses the next `burst` stops (of `burst` users) at once; `bursts` such ticks
        out["burst"], out["burst_last"] = [], []
        for b in range(bursts):
            if b:  # (untimed) the burst users open their positions again, with new stops at 60000
                stalls.stop()
                h.price("60000")
                for i in range(users, total):
                    h.engine.place_order(f"key-tu{i}", SYMBOL, "buy", "10")
                await h.settle(3)
                for i in range(users, total):
                    st = TrailingStop.model_validate({"user_id": f"tu{i}", "exchange": "okx", "symbol": SYMBOL,
                                                      "side": "long", "callback_rate": str(rates[i])})  # fmt: skip
                    assert (await h.trailing.create(st)).state is StopState.ACTIVE
                await h.settle(3)
                stalls.start()
            h.trailing.tick_to_send_s.clear()
            h.price(str(D(60_000) * (1 - rates[-1]) - D("0.1")))  # every burst stop fires on this one tick
            deadline = time.perf_counter() + 20
            while len(h.trailing.tick_to_send_s) < burst and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            await h.trailing.wait_idle()
            samples = list(h.trailing.tick_to_send_s)
            assert len(samples) == burst, (len(samples), burst)
            out["burst"] += samples
            out["burst_last"].append(max(samples))
        stalls.stop()
        out["stalls"], out["gc2"] = stalls.lags, stalls.gc2
    finally:
        gc.unfreeze()
        service_log.removeHandler(errors)
        service_log.propagate = True
        out["errors"] = dict(errors.counts)
        await h.close()
        n = 0
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            n += await redis.unlink(key)
        out["deleted"] = n
        await redis.aclose()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--ticks", type=int, default=400, help="ticks per scenario")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--users", type=int, default=100, help="part 2: sequential triggers (one per tick)")
    ap.add_argument(
        "--burst", type=int, default=100, help="part 2: stops (of as many users) triggered by one tick"
    )
    ap.add_argument("--bursts", type=int, default=3, help="part 2: burst ticks per run")
    ap.add_argument(
        "--profile", action="store_true", help="part 2: cProfile the sequential phase of the first run"
    )
    ap.add_argument(
        "--redis", choices=("own", "shared"), default="own" if own_redis.available() else "shared",
        help="part 2: own = a private redis-server for the run (other sessions' Redis load stays out); "
        "shared = BENCH_REDIS_URL",
    )  # fmt: skip
    ap.add_argument("--skip-part1", action="store_true")
    ap.add_argument("--skip-part2", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.ticks, args.runs, args.users, args.burst, args.bursts = 100, 1, 30, 20, 2
    sizes = [int(x) for x in args.sizes.split(",")]
    print(
        f"trailing stops: python {platform.python_version()}, {os.cpu_count()} cpus; {args.ticks} ticks per "
        f"scenario; medians of {args.runs} runs (per-tick p50/p99 within a run, then the median over runs)"
    )
    verdicts = []
    for n in [] if args.skip_part1 else sizes:
        runs = [part1(n, args.ticks) for _ in range(args.runs)]
        yard = statistics.median(
            yardstick(make_stops(n), 3 if n >= 100_000 else 10) for _ in range(args.runs)
        )
        print(f"-- {n:,} active stops on one symbol (yardstick, plain Decimal loop over every stop: "
              f"{yard:.3f} us/stop/tick = {yard * n:,.0f} us/tick)")  # fmt: skip
        for name in runs[0]:
            p50 = statistics.median(statistics.median(r[name]) for r in runs) * 1e6
            p99 = statistics.median(pct(r[name], 99) for r in runs) * 1e6
            if len(runs[0][name]) == 1:
                print(f"tick {name} {n}: {p50:,.1f} us")
            else:
                print(f"tick {name} {n}: p50 {p50:,.1f} us, p99 {p99:,.1f} us")
            if n in TARGETS_US and (len(runs[0][name]) > 1 or "merge" in name):
                verdicts.append((n, name, p99, TARGETS_US[n]))
    if not args.skip_part2:
        print(f"-- tick -> close order sent (paper gateway harness, real Redis): {args.users} sequential triggers, "
              f"then one tick firing {args.burst}")  # fmt: skip
        seq_runs, burst_runs, burst_last = [], [], []
        deleted = 0
        stall_runs, gc_runs, errors = [], [], defaultdict(int)
        stage_runs: list[dict[str, list[float]]] = []
        own, redis_url = own_redis.start_own_redis() if args.redis == "own" else (None, REDIS_URL)
        print(f"   redis: {'a private redis-server' if own else redis_url}")
        try:
            runs2 = [
                await part2(args.users, args.burst, args.bursts, redis_url, profile=args.profile and i == 0)
                for i in range(args.runs)
            ]
        finally:
            own_redis.stop(own)
        for r in runs2:
            stall_runs.append(r["stalls"])
            stage_runs.append(r["stages"])
            gc_runs.append(r["gc2"])
            for k, v in r["errors"].items():
                errors[k] += v
            seq_runs.append([x * 1000 for x in r["sequential"]])
            burst_runs.append([x * 1000 for x in r["burst"]])
            burst_last += [x * 1000 for x in r["burst_last"]]
            deleted += r["deleted"]
        for name, rr in (
            ("sequential (one trigger per tick)", seq_runs),
            (f"burst ({args.burst} on one tick)", burst_runs),
        ):
            p50 = statistics.median(statistics.median(v) for v in rr)
            p99 = statistics.median(pct(v, 99) for v in rr)
            print(f"tick_to_send {name}: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {statistics.median(max(v) for v in rr):.3f} ms "
                  f"(samples/run {len(rr[0])})")  # fmt: skip
            if name.startswith("sequential"):
                verdicts.append((0, "tick_to_send " + name, p99 * 1000, 2000.0))
        last_p99 = pct(burst_last, 99)
        print(f"tick_to_send burst: the LAST of the {args.burst} orders of one tick: p50 {statistics.median(burst_last):.3f}"
              f" ms, p99 {last_p99:.3f} ms, max {max(burst_last):.3f} ms ({len(burst_last)} bursts: "
              f"{fmt(burst_last)} ms)")  # fmt: skip
        verdicts.append((0, f"the last of {args.burst} orders of one tick", last_p99 * 1000, 20_000.0))
        for name in stage_runs[0]:
            vals = [x[name] for x in stage_runs if x.get(name)]
            print(f"  stage {name} (sequential phase): p50 {statistics.median(statistics.median(v) for v in vals) * 1000:.3f} ms, "
                  f"p99 {statistics.median(pct(v, 99) for v in vals) * 1000:.3f} ms")  # fmt: skip
        print(f"event loop stalls during part 2 (1 ms sleeper): p99 {statistics.median(pct(x, 99) for x in stall_runs) * 1000:.1f}"
              f" ms, max {statistics.median(max(x) for x in stall_runs) * 1000:.1f} ms; full GCs per run "
              f"{statistics.median(len(x) for x in gc_runs):.0f}, longest {max(max(x, default=0) for x in gc_runs) * 1000:.0f} ms")  # fmt: skip
        print(f"service warnings/errors logged during part 2 (all runs): {dict(errors) or 'none'}")
        print(f"(cleaned up {deleted} keys)")
    for n, name, v, target in verdicts:
        where = f"{n:,} stops, {name}" if n else name
        unit = f"{target:,.0f} us" if target < 2000 else f"{target / 1000:.0f} ms"
        print(f"target p99 <= {unit} ({where}): {'met' if v <= target else 'NOT met'} ({v:,.1f} us)")


if __name__ == "__main__":
    asyncio.run(main())
