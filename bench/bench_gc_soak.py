"""GC soak: memory and full-collection pauses of the service over minutes of steady fills, with the service's
GC thresholds (app.quiet_gc: startup objects frozen, thresholds (2000, 10, 100)) beside Python's defaults
(startup objects frozen, (2000, 10, 10)) as the yardstick, each in a process of its own.

Run: ``.venv/bin/python bench/bench_gc_soak.py [--minutes 5] [--rate 100] [--gc both|quiet|default] [--runs 1]``

Each run: the service through its lifespan (``create_app``, as bench_fill_to_pubsub.py runs it: the OKX
simulator in its own process (bench/sim_driver.py), one user tracked over ccxt.pro, the account actor writing
Redis, the SQL history writer on SQLite), then market orders paced at ``--rate`` fills/s by the simulator for
``--minutes``, in chunks of 10 s. After each chunk: the process' resident memory (/proc/self/statm), the GC's
collections per generation and the full collections' pauses. The first minute is warm-up (caches filling: the
writer's delta cache, ccxt's order caches); growth is measured from its end.

Printed per run: RSS at the end of the warm-up and at the end, growth per 10,000 fills after the warm-up, full
collections and their longest pause, loop stalls (a 1 ms sleeper) p99 / max, CPU per fill. With ``--gc both``
the two settings alternate (``--runs`` each) and a last line compares them. The issue-15 question it answers:
whether rarer full collections let memory grow over a long run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_fill_to_pubsub import REDIS_URL, SubprocessExchange, cleanup, pct  # noqa: E402
from pauses import LoopPauses  # noqa: E402

from position_order_service.app import create_app  # noqa: E402
from position_order_service.config import Settings  # noqa: E402
from position_order_service.domain.messages import OrderChanged  # noqa: E402
from position_order_service.exchanges.base import Credentials  # noqa: E402

USER = "benchsoak"
CHUNK_S = 10.0
WARMUP_S = 60.0
PYTHON_DEFAULT_THRESHOLDS = (2000, 10, 10)


def object_counts() -> collections.Counter[str]:
    """Objects the collector tracks (containers, instances), by type: what grows, when memory does. A
    traceback also counts under where it was raised ("raised in <function>"): exceptions kept alive."""
    counts: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        counts[type(o).__qualname__] += 1
        if isinstance(o, BaseException):
            counts[f"exception {type(o).__qualname__}"] += 1
        elif isinstance(o, types.TracebackType):
            while o.tb_next is not None:
                o = o.tb_next
            counts[f"raised in {o.tb_frame.f_code.co_qualname}"] += 1
    return counts


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def soak(minutes: float, rate: float, mode: str) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    tmp = tempfile.TemporaryDirectory(prefix="bench-soak-")
    remote = await SubprocessExchange.start()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=REDIS_URL,
        key_prefix=prefix,
        database_url=f"sqlite+aiosqlite:///{tmp.name}/history.sqlite3",
        credentials_key="bench-credentials-key-0123456789",
        log_level="WARNING",
        sim="off",
        okx_base_url=remote.url,
    )
    app = create_app(settings)
    redis = Redis.from_url(REDIS_URL)
    out: dict[str, Any] = {"mode": mode, "samples": []}
    try:
        async with app.router.lifespan_context(app):
            if mode == "default":
                # after quiet_gc's freeze: only the thresholds differ
                gc.set_threshold(*PYTHON_DEFAULT_THRESHOLDS)
            out["thresholds"] = gc.get_threshold()
            ctx = app.state.ctx
            key = f"key-{USER}"
            await remote.account(key)
            await remote.price("60000")
            await ctx.credentials.put(USER, "okx", Credentials(key, "bench-secret", "bench-pass"))
            await ctx.active_users.activate(USER, ["okx"])
            assert await ctx.accounts.wait_reconciled(USER, "okx", 15), "account not reconciled"
            filled, target, all_seen = 0, 0, asyncio.Event()

            def on_order(event: Any) -> None:
                nonlocal filled
                if event.order.status.value == "filled":
                    filled += 1
                    if target and filled >= target:
                        all_seen.set()

            ctx.bus.subscribe("bench-soak", on_order, OrderChanged)
            pauses = LoopPauses()
            pauses.start()
            gc_before = [g["collections"] for g in gc.get_stats()]
            cpu0, t0, sent = time.process_time(), time.monotonic(), 0
            per_chunk = max(1, round(rate * CHUNK_S))
            counts: collections.Counter[str] | None = None
            for chunk in range(max(1, round(minutes * 60 / CHUNK_S))):
                await remote.pace(key, rate, per_chunk, f"s{chunk}x")
                sent += per_chunk
                out["samples"].append((time.monotonic() - t0, sent, rss_mb()))
                if counts is None and time.monotonic() - t0 >= WARMUP_S:
                    counts = object_counts()
            target = sent
            if filled < sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_seen.wait(), 60)
            out["cpu_per_fill"] = (time.process_time() - cpu0) / sent
            if counts is not None:
                grown = object_counts()
                grown.subtract(counts)
                out["grown"] = [(name, n) for name, n in grown.most_common(30) if n > 0]
            out["filled"], out["sent"] = filled, sent
            pauses.stop()
            ctx.bus.unsubscribe("bench-soak")
            out["gc2"], out["lags"] = pauses.gc2, pauses.lags
            out["collections"] = [
                g["collections"] - n for g, n in zip(gc.get_stats(), gc_before, strict=True)
            ]
    finally:
        await remote.close()
        await cleanup(redis, prefix)
        await redis.aclose()
        tmp.cleanup()
    return out


def report(r: dict[str, Any]) -> float:
    samples = r["samples"]
    warm = next((s for s in samples if s[0] >= WARMUP_S), samples[0])
    end = samples[-1]
    growth = (end[2] - warm[2]) / max(1, end[1] - warm[1]) * 10_000
    gc2 = r["gc2"]
    longest = max(gc2) * 1000 if gc2 else 0.0
    print(
        f"  {r['mode']:<7} thresholds {tuple(r['thresholds'])}: {r['sent']:,} fills ({r['filled']:,} seen filled); "
        f"RSS {warm[2]:.1f} MB after the warm-up -> {end[2]:.1f} MB at the end "
        f"({growth:+.2f} MB per 10,000 fills); collections per generation {r['collections']}; "
        f"full collections {len(gc2)}, longest {longest:.1f} ms; loop stalls p99 {pct(r['lags'], 99) * 1000:.1f} ms, "
        f"max {max(r['lags']) * 1000:.1f} ms; CPU {r['cpu_per_fill'] * 1000:.2f} ms per fill"
    )
    if r.get("grown"):
        print(
            "    objects grown after the warm-up, by type: " + ", ".join(f"{t} +{n:,}" for t, n in r["grown"])
        )
    print("    RSS MB by minute: " + ", ".join(f"{s[2]:.1f}" for s in samples[5::6]))
    return growth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=100.0, help="fills per second")
    ap.add_argument("--gc", choices=("both", "quiet", "default"), default="both")
    ap.add_argument("--runs", type=int, default=1, help="runs of each setting (alternating)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one run, its figures as JSON on the last line
        print(json.dumps(asyncio.run(soak(args.minutes, args.rate, args.gc))))
        return
    modes = ["quiet", "default"] if args.gc == "both" else [args.gc]
    print(
        f"GC soak: {args.rate:g} market fills/s for {args.minutes:g} min per run, OKX simulator in its own process; "
        f"python {platform.python_version()}, {os.cpu_count()} cpus"
    )
    growth: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.runs):
        for mode in modes:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", "--gc", mode, "--minutes", str(args.minutes),
                 "--rate", str(args.rate)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            growth[mode].append(report(json.loads(proc.stdout.strip().splitlines()[-1])))
    if len(modes) == 2:
        q, d = (statistics.median(growth[m]) for m in modes)
        print(
            f"growth per 10,000 fills after the warm-up (medians): service thresholds {q:+.2f} MB, "
            f"Python's defaults {d:+.2f} MB"
        )


if __name__ == "__main__":
    main()
