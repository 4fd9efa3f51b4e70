"""POST /api/v1/orders over HTTP (issue 5): market orders against the in-process OKX simulator through ccxt.

Run: ``.venv/bin/python bench/bench_api_orders.py [--quick] [-n 300] [--clients 1,4,8] [--runs 3]``

Server (its own process; uvicorn 1 worker, httptools, uvloop when installed, no access log, 127.0.0.1):
``create_app(Settings(sim="on", sim_port=<free port>, redis_url=..., key_prefix=bench:<uuid>:))`` with the SQL history
writer on (SQLite in a temp dir): the OKX simulator (wire front over HTTP+WS) runs inside the service process, the
service talks to it through its ccxt.pro.okx client over loopback, as ``make run`` does. A user is onboarded as an
operator does (account with 10^9 USDT on the simulator's control API, credentials PUT and activation POSTed on the
API); the demo price feeds keep moving (500 ms random walk), as in ``make run``.

One request = ``POST /api/v1/orders {"user_id", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "side": buy|sell
(alternating), "order_type": "market", "quantity": "0.01"}`` -> 201 with the order (intent recorded, ccxt signs and
sends it, the reply recorded). Closed-loop clients on keep-alive connections (this script's own asyncio client, in
its own process): 1 client = sequential; then a few concurrent clients. Printed per client count: p50/p99/max latency
and the rate (orders/s). Medians of ``--runs`` runs, each after 20 warm-up orders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
USER = "benchorders"
INST = "BTC-USDT-SWAP"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fmt_list(values: Any, spec: str = ",.0f") -> str:
    return ", ".join(format(v, spec) for v in values)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def serve(port: int, sim_port: int, prefix: str, db: str) -> None:
    import logging

    import uvicorn

    from position_order_service.app import create_app
    from position_order_service.config import Settings

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    app = create_app(Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=REDIS_URL, key_prefix=prefix, sim="on", sim_port=sim_port,
        database_url=f"sqlite+aiosqlite:///{db}", credentials_key="bench-credentials-key-0123456789",
        log_level="WARNING",
    ))  # fmt: skip
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(app, host="127.0.0.1", port=port, loop=loop, http="httptools", workers=1, access_log=False,
                log_level="warning", lifespan="on")  # fmt: skip


class Http:
    """A minimal HTTP/1.1 keep-alive client (no parsing beyond status and Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Http:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = b"" if body is None else orjson.dumps(body)
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()  # fmt: skip
        self.w.write(head + data)
        raw = await self.r.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        low = raw.lower()
        i = low.find(b"content-length:")
        n = int(low[i + 15 : low.find(b"\r\n", i)]) if i >= 0 else 0
        payload = await self.r.readexactly(n) if n else b""
        return status, payload

    def close(self) -> None:
        self.w.close()


def load(port: int, clients: int, n: int, warmup: int) -> None:
    """Child process: `clients` closed-loop clients, n orders each after `warmup`; prints latencies."""

    async def run() -> None:
        lat: list[float] = []
        errors: list[str] = []
        t_start = [0.0]

        async def client(k: int) -> None:
            http = await Http.connect(port)
            try:
                for i in range(warmup + n):
                    body = {"user_id": USER, "exchange": "okx", "symbol": INST, "side": "buy" if i % 2 == 0 else "sell",
                            "order_type": "market", "quantity": "0.01"}  # fmt: skip
                    t0 = time.perf_counter()
                    status, payload = await http.request("POST", "/api/v1/orders", body)
                    if i >= warmup:
                        lat.append(time.perf_counter() - t0)
                    if status != 201:
                        errors.append(f"{status} {payload[:200]!r}")
                    if i == warmup - 1:
                        await barrier.wait()
                        t_start[0] = t_start[0] or time.perf_counter()
            finally:
                http.close()

        barrier = asyncio.Barrier(clients)
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - t_start[0]
        print("rate", clients * n / elapsed)
        print("errors", len(errors), errors[:1])
        print("lat", " ".join(f"{x:.6f}" for x in lat))

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


def run_load(port: int, clients: int, n: int, warmup: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--load", "--port", str(port), "--clients-n", str(clients), "-n", str(n),
         "--warmup", str(warmup)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    res: dict[str, Any] = {}
    for line in out.stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key == "lat":
            res["lat"] = [float(x) for x in rest.split()]
        elif key == "rate":
            res["rate"] = float(rest)
        elif key == "errors":
            res["errors"] = rest
    if "lat" not in res:
        raise RuntimeError(f"load client failed: {out.stderr[-2000:]}")
    return res


async def setup_user(port: int, sim_port: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        body = {"api_key": f"key-{USER}", "secret": f"secret-{USER}", "passphrase": f"pass-{USER}",
                "balances": {"USDT": "1000000000"}}  # fmt: skip
        async with http.post(f"http://127.0.0.1:{sim_port}/sim/accounts", json=body) as r:
            assert r.status == 201, await r.text()
        creds = {"api_key": f"key-{USER}", "secret": f"secret-{USER}", "passphrase": f"pass-{USER}"}
        async with http.put(f"http://127.0.0.1:{port}/api/v1/users/{USER}/credentials/okx", json=creds) as r:
            assert r.status == 204, await r.text()
        async with http.post(
            f"http://127.0.0.1:{port}/api/v1/users/{USER}/activate", json={"exchanges": ["okx"]}
        ) as r:
            assert r.status == 200, await r.text()


async def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(Exception):
            http = await Http.connect(port)
            status, _ = await http.request("GET", "/health")
            http.close()
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("server did not start")


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    from redis.asyncio import Redis

    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    port, sim_port = free_port(), free_port()
    tmp = tempfile.TemporaryDirectory(prefix="bench-orders-")
    proc = subprocess.Popen(  # noqa: ASYNC220 (the server under test)
        [sys.executable, __file__, "--serve", "--port", str(port), "--sim-port", str(sim_port), "--prefix", prefix,
         "--db", f"{tmp.name}/history.sqlite3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    out: dict[str, Any] = {}
    try:
        await wait_up(port, proc)
        await setup_user(port, sim_port)
        await asyncio.sleep(1.5)  # the tracker's snapshots
        for c in args.clients:
            out[c] = run_load(port, c, max(20, args.n // c), 20 if c == 1 else 5)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        redis = Redis.from_url(REDIS_URL)
        n = 0
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            n += await redis.unlink(key)
        await redis.aclose()
        out["deleted"] = n
        tmp.cleanup()
    return out


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=300, help="orders per phase (split among the clients)")
    ap.add_argument("--clients", default="1,4,8", help="closed-loop client counts (1 = sequential)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sim-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--clients-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=20, help=argparse.SUPPRESS)
    return ap.parse_args()


async def main(args: argparse.Namespace) -> None:
    args.clients = [int(x) for x in args.clients.split(",")]
    if args.quick:
        args.n, args.runs = 100, 1
    runs = [await one_run(args) for _ in range(args.runs)]
    print(f"POST /api/v1/orders (market 0.01 BTC) -> in-process OKX simulator via ccxt.pro.okx; uvicorn 1 worker, "
          f"httptools, uvloop; history on; python {platform.python_version()}, {os.cpu_count()} cpus; "
          f"~{args.n} orders per phase; medians of {args.runs} runs")  # fmt: skip
    for c in args.clients:
        rr = [r[c] for r in runs]
        p50 = statistics.median(statistics.median(x["lat"]) for x in rr) * 1000
        p99 = statistics.median(pct(x["lat"], 99) for x in rr) * 1000
        mx = statistics.median(max(x["lat"]) for x in rr) * 1000
        rate = statistics.median(x["rate"] for x in rr)
        name = "sequential (1 client)" if c == 1 else f"{c} concurrent clients"
        print(f"orders {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms, rate {rate:,.0f} orders/s "
              f"(rates per run: {fmt_list(x['rate'] for x in rr)}; errors: {rr[0]['errors']})")  # fmt: skip
    print(f"(cleaned up {sum(r['deleted'] for r in runs)} keys)")


if __name__ == "__main__":
    cli = parse()
    if cli.serve:
        serve(cli.port, cli.sim_port, cli.prefix, cli.db)
    elif cli.load:
        load(cli.port, cli.clients_n, cli.n, cli.warmup)
    else:
        asyncio.run(main(cli))
