"""GET /api/v1/positions/{user}/{exchange} over HTTP (issue 5): p99 at a fixed 1,000 req/s, and the highest
sustained rate against a bare FastAPI HGETALL route (the yardstick, measured in the same run).

Run: ``.venv/bin/python bench/bench_api_positions.py [--quick] [--runs 3] [--rate 1000] [--duration 5]``

Servers (each in its own process, one at a time, uvicorn 1 worker, httptools, uvloop when installed, no access
log; 127.0.0.1 only):
  service:   ``create_app(Settings(sim="off", redis_url=..., key_prefix=bench:<uuid>:, history=False))``; one user's
             positions (``--positions``, default 2: BTC long, ETH short) seeded beforehand through
             ``Store.positions.upsert`` (the real APPLY write).
  yardstick: a FastAPI app with one route doing one HGETALL of a 12-field hash (redis-py asyncio, hiredis, decoded
             strings) and returning the dict (PERFORMANCE.md: ~3.3k req/s with 1 worker on the reference machine).
Load (client processes, bounded in count and time):
  fixed rate: (also at ``--low-rate``, default 400/s, for the positions route) this script's own paced client (uvloop, 32 keep-alive connections, request i due at t0 + i/rate,
              latency measured from the due time, so a stall is counted, not hidden) -> p50/p99/max;
  max rate:   ``wrk -t1 -c32 -d<duration>s`` -> requests/s (what PERFORMANCE.md's yardsticks used).
Targets: p99 < 5 ms at 1,000 req/s; max rate / yardstick's max rate >= 0.5. Medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
USER = "benchpos"
TARGET_P99_MS = 5.0
TARGET_RATIO = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fmt_list(values: Any, spec: str = ",.0f") -> str:
    return ", ".join(format(v, spec) for v in values)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


# ----------------------------------------------------------------------------------------- servers
def serve(kind: str, port: int, prefix: str) -> None:
    """Child process: run one server in the foreground."""
    import logging

    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    if kind == "service":
        from position_order_service.app import create_app
        from position_order_service.config import Settings

        app: Any = create_app(Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=REDIS_URL, key_prefix=prefix, sim="off", history=False, log_level="WARNING",
        ))  # fmt: skip

    else:
        from contextlib import asynccontextmanager

        from fastapi import FastAPI
        from redis.asyncio import Redis

        state: dict[str, Any] = {}

        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> Any:
            state["redis"] = Redis.from_url(REDIS_URL, decode_responses=True)
            yield
            await state["redis"].aclose()

        app = FastAPI(lifespan=lifespan)

        @app.get("/yard/{user_id}")
        async def yard(user_id: str) -> dict[str, str]:
            return await state["redis"].hgetall(f"{prefix}yard:{user_id}")  # type: ignore[no-any-return]

    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(app, host="127.0.0.1", port=port, loop=loop, http="httptools", workers=1, access_log=False,
                log_level="warning", lifespan="on")  # fmt: skip


async def wait_http(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            w.close()
            if b" 200 " in head.split(b"\r\n", 1)[0]:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"server on {port} did not answer {path}")


def start_server(kind: str, port: int, prefix: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--prefix", prefix],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ----------------------------------------------------------------------------------------- load
def paced_client(port: int, path: str, rate: float, duration: float, conns: int) -> None:
    """Child process: requests at a fixed rate; prints 'lat <seconds...>' and 'errors <n>'."""

    async def run() -> None:
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(conns):
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        lat: list[float] = []
        errors = 0

        async def one(due: float) -> None:
            nonlocal errors
            r, w = await pool.get()
            try:
                w.write(req)
                head = await r.readuntil(b"\r\n\r\n")
                low = head.lower()
                i = low.find(b"content-length:")
                n = int(low[i + 15 : low.find(b"\r\n", i)])
                await r.readexactly(n)
                lat.append(time.perf_counter() - due)
                if b" 200 " not in head.split(b"\r\n", 1)[0]:
                    errors += 1
            finally:
                pool.put_nowait((r, w))

        total = int(rate * duration)
        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
        print("achieved", achieved)
        print("errors", errors)
        print("lat", " ".join(f"{x:.6f}" for x in lat))

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


def run_paced(port: int, path: str, rate: float, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", "--port", str(port), "--path", path, "--rate", str(rate),
         "--duration", str(duration)],
        capture_output=True, text=True, timeout=duration + 60,
    )  # fmt: skip
    res: dict[str, Any] = {}
    for line in out.stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key == "lat":
            res["lat"] = [float(x) for x in rest.split()]
        elif key in ("achieved", "errors"):
            res[key] = float(rest)
    if "lat" not in res:
        raise RuntimeError(f"paced client failed: {out.stderr[-2000:]}")
    return res


def run_wrk(port: int, path: str, duration: float) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{duration:g}s", "--timeout", "5s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration + 30,
    )  # fmt: skip
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not m or "Non-2xx" in out.stdout:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    return float(m.group(1))


# ----------------------------------------------------------------------------------------- the run
async def seed(prefix: str, positions: int) -> None:
    from redis.asyncio import Redis

    from position_order_service.domain.models import PnLInfo, Position
    from position_order_service.store import Store

    redis = Redis.from_url(REDIS_URL)
    store = Store.create(redis, prefix=prefix)
    specs = [("BTC-USDT-SWAP", "long", "0.5", "60000", "60250.5"), ("ETH-USDT-SWAP", "short", "3", "3000", "2990.1"),
             ("SOL-USDT-SWAP", "long", "40", "150", "151.2"), ("XRP-USDT-SWAP", "short", "1000", "0.6", "0.59")]  # fmt: skip
    for symbol, side, size, entry, mark in specs[:positions]:
        p = Position(user_id=USER, exchange="okx", symbol=symbol, side=side, size=Decimal(size),
                     entry_price=Decimal(entry), current_price=Decimal(mark), leverage=10,
                     liquidation_price=Decimal(entry) * Decimal("0.5"),
                     pnl=PnLInfo(realized=Decimal("12.5"), unrealized=Decimal("125.25"), fees=Decimal("1.2")))  # fmt: skip
        res = await store.positions.upsert(p)
        assert res.applied, res
    fields = {f"field{i}": f"{60000 + i}.12345678" for i in range(12)}
    await redis.hset(f"{prefix}yard:{USER}", mapping=fields)  # type: ignore[arg-type]
    await redis.aclose()


async def cleanup(prefix: str) -> int:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    n = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        n += await redis.unlink(key)
    await redis.aclose()
    return n


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    out: dict[str, Any] = {}
    try:
        await seed(prefix, args.positions)
        kinds = [("service", f"/api/v1/positions/{USER}/okx"), ("yardstick", f"/yard/{USER}")]
        for kind, path in kinds:
            port = free_port()
            proc = start_server(kind, port, prefix)
            try:
                await wait_http(port, path, proc)
                run_wrk(port, path, 1)  # warm-up
                out[f"{kind}_max"] = run_wrk(port, path, args.duration)
                await asyncio.sleep(0.5)
                out[f"{kind}_paced"] = run_paced(port, path, args.rate, args.duration)
                if kind == "service" and args.low_rate:
                    await asyncio.sleep(0.5)
                    out["service_low"] = run_paced(port, path, args.low_rate, args.duration)
            finally:
                stop_server(proc)
    finally:
        out["deleted"] = await cleanup(prefix)
    return out


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument(
        "--low-rate",
        type=float,
        default=400.0,
        help="also pace the positions route at this rate (one it can sustain); 0 = skip",
    )
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per load phase")
    ap.add_argument("--positions", type=int, default=2, choices=range(1, 5))
    ap.add_argument("--serve", choices=("service", "yardstick"), help=argparse.SUPPRESS)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--conns", type=int, default=32, help=argparse.SUPPRESS)
    return ap.parse_args()


def ensure_wrk() -> None:
    """The set-up step: Debian's wrk, installed when missing (as root, as on this machine kind)."""
    if shutil.which("wrk") is not None:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit("wrk is not installed: run `apt-get install -y wrk` as root")
    print("wrk is missing: apt-get install -y wrk", flush=True)
    done = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True)
    if done.returncode != 0 or shutil.which("wrk") is None:
        raise SystemExit(f"apt-get install -y wrk failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


async def main(args: argparse.Namespace) -> None:
    if args.quick:
        args.runs, args.duration = 1, 3.0
    ensure_wrk()
    runs = [await one_run(args) for _ in range(args.runs)]
    print(f"GET /api/v1/positions/{{user}}/okx ({args.positions} positions) vs the yardstick (FastAPI, one HGETALL of "
          f"12 fields); uvicorn 1 worker, httptools, uvloop; python {platform.python_version()}, {os.cpu_count()} cpus; "
          f"{args.duration:g} s per phase; medians of {args.runs} runs")  # fmt: skip
    verdict: list[tuple[str, bool, str]] = []
    for kind in ("service", "yardstick"):
        paced = [r[f"{kind}_paced"] for r in runs]
        p50 = statistics.median(statistics.median(p["lat"]) for p in paced) * 1000
        p99 = statistics.median(pct(p["lat"], 99) for p in paced) * 1000
        mx = statistics.median(max(p["lat"]) for p in paced) * 1000
        ach = statistics.median(p["achieved"] for p in paced)
        errs = sum(p["errors"] for p in paced)
        name = "positions" if kind == "service" else "yardstick"
        print(f"{name} at {ach:,.0f} req/s (paced): p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms, non-200 {errs:.0f} "
              f"(p99 per run: {fmt_list((pct(p['lat'], 99) * 1000 for p in paced), '.2f')})")  # fmt: skip
        if kind == "service":
            verdict.append(
                (
                    f"p99 < {TARGET_P99_MS:g} ms at {args.rate:,.0f} req/s",
                    p99 < TARGET_P99_MS,
                    f"{p99:.2f} ms",
                )
            )
    if args.low_rate:
        low = [r["service_low"] for r in runs]
        print(f"positions at {statistics.median(p['achieved'] for p in low):,.0f} req/s (paced): "
              f"p50 {statistics.median(statistics.median(p['lat']) for p in low) * 1000:.2f} ms, "
              f"p99 {statistics.median(pct(p['lat'], 99) for p in low) * 1000:.2f} ms, "
              f"max {statistics.median(max(p['lat']) for p in low) * 1000:.2f} ms")  # fmt: skip
    mx_s = statistics.median(r["service_max"] for r in runs)
    mx_y = statistics.median(r["yardstick_max"] for r in runs)
    ratio = statistics.median(r["service_max"] / r["yardstick_max"] for r in runs)
    print(
        f"positions max rate (wrk -c32): {mx_s:,.0f} req/s (runs: {fmt_list(r['service_max'] for r in runs)})"
    )
    print(f"yardstick max rate (wrk -c32): {mx_y:,.0f} req/s (runs: {fmt_list(r['yardstick_max'] for r in runs)};"
          f" reference machine ~3,300)")  # fmt: skip
    print(f"ratio positions / yardstick: {ratio:.2f}")
    verdict.append((f"ratio >= {TARGET_RATIO}", ratio >= TARGET_RATIO, f"{ratio:.2f}"))
    print(f"(cleaned up {sum(r['deleted'] for r in runs)} keys)")
    for name, ok, value in verdict:
        print(f"target {name}: {'met' if ok else 'NOT met'} ({value})")


if __name__ == "__main__":
    cli = parse()
    if cli.serve:
        serve(cli.serve, cli.port, cli.prefix)
    elif cli.client:
        paced_client(cli.port, cli.path, cli.rate, cli.duration, cli.conns)
    else:
        asyncio.run(main(cli))
