"""Scale-out (issue 14 item 7): tracked updates/s with 1 and 2 worker processes, and failover time over kills.

Run: ``.venv/bin/python bench/bench_scale.py [--quick] [--accounts 30] [--orders 100] [--kills 20] [--ttl 2]``
(needs the Redis at 127.0.0.1:6379, or REDIS_URL; everything else is started here and stopped after).

Processes, as an operator runs them: one OKX simulator (`position-order-service sim`, connection limits off),
one api process (ROLE=api: credentials and activation), and worker processes (ROLE=worker) sharing the accounts
by lease, on a key prefix of their own.

1. Throughput. For 1 worker, then 2: once every account is healthy on its worker (its private streams open:
   the workers pace their connection attempts, 3/s each), each account rests `--orders` limit buys below the
   price (placed by the accounts' own ccxt clients and settled first; not timed); then the price drops below
   all of them in one simulator move, and the exchange fills every order at once: order, position and fill
   pushes queue up in the workers' sockets. The run ends when every exchange fill has its fill.created and
   nothing new came for 2 s. Figure: events written to Redis (the users' event streams) per second, from the
   move to the last event's own timestamp (written by the worker, same box clock: no polling granularity);
   the ratio 2 workers / 1 worker is the figure against the target (>= 1.7). It includes the simulator's
   matching of the whole burst before its first push (printed: "first event ... after the move"). The CPU
   seconds each process used from the move until quiet (/proc; "redis" is the shared server, so other
   clients' load counts too) say which one the burst waits for.
   Marks are off (POSITION_MARK_INTERVAL_S=3600) so only exchange updates count.
2. Failover. Two workers hold the accounts; kill -9 one; time until every one of its accounts is leased by
   the survivor ("taken"), and until the survivor has also reconciled each of them over REST ("resumed");
   then a fresh worker starts and takes its share back before the next kill. p50/p99 over `--kills` kills
   (target: taken <= LEASE_TTL_S + 2 s). The yardstick in the same run is the lease TTL itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests import processes  # noqa: E402
from tests.processes import http_ok  # noqa: E402

from position_order_service.domain.enums import OrderSide, OrderType  # noqa: E402
from position_order_service.domain.market import OrderRequest  # noqa: E402
from position_order_service.exchanges.base import Credentials  # noqa: E402
from position_order_service.exchanges.factory import build_gateway  # noqa: E402
from position_order_service.store.embedded import free_port  # noqa: E402
from position_order_service.store.keys import Keys  # noqa: E402

CLI = str(Path(sys.executable).parent / "position-order-service")
BTC = "BTC-USDT-SWAP"
LOGS = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench_scale_{uuid.uuid4().hex[:6]}"


def wait_until(check: Any, within: float, what: str, every: float = 0.05) -> Any:
    """tests.processes' wait, ending the benchmark with where its processes' logs are."""
    try:
        return processes.wait_until(check, within, what, every)
    except AssertionError as exc:
        raise SystemExit(f"{exc} (logs in {LOGS})") from None


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], url: str, ready: str) -> None:
        self.name, self.url = name, url
        with (LOGS / f"{name}.log").open("wb") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: http_ok(url + ready), 60, name, 0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.prefix = f"bench:scale:{uuid.uuid4().hex[:8]}:"
        self.keys = Keys(prefix=self.prefix)
        self.r = redis.Redis.from_url(self.redis_url)
        port = free_port()
        self.sim = Proc("sim", [CLI, "sim", "--exchange", "okx", "--port", str(port), "--no-limits"], {**os.environ},
                        f"http://127.0.0.1:{port}", "/sim/state")  # fmt: skip
        self.users = [f"u{i:03d}" for i in range(args.accounts)]
        self.creds: dict[str, Credentials] = {}
        self.workers: list[Proc] = []
        self.n = 0
        self.api = self.start("api", "api")

    def env(self, **extra: str) -> dict[str, str]:
        names = ("REDIS_", "OKX_", "BINANCE_", "API_", "CREDENTIALS_", "DATABASE_", "EMBEDDED_", "SIM", "DATA_DIR",
                 "KEY_PREFIX", "LOG_", "HISTORY", "ROLE", "WORKER_", "LEASE_")  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
        env.update({
            "REDIS_URL": self.redis_url, "KEY_PREFIX": self.prefix, "SIM": "off", "OKX_BASE_URL": self.sim.url,
            "CREDENTIALS_KEY": "bench-scale", "HISTORY": "false", "LOG_LEVEL": "INFO", "LOG_FORMAT": "text",
            "DATA_DIR": str(LOGS / "data"), "LEASE_TTL_S": str(self.args.ttl), "USER_RESCAN_INTERVAL_S": "1",
            "POSITION_MARK_INTERVAL_S": "3600", "PRICE_EVENTS_MAX_HZ": "1",
        })  # fmt: skip
        env.update(extra)
        return env

    def start(self, role: str, name: str, ttl: float | None = None) -> Proc:
        port = free_port()
        env = self.env(ROLE=role, WORKER_ID=name, LEASE_TTL_S=str(ttl or self.args.ttl))
        return Proc(name, [sys.executable, str(ROOT / "main.py"), "--port", str(port)], env,
                    f"http://127.0.0.1:{port}", "/health")  # fmt: skip

    def start_worker(self, ttl: float | None = None) -> Proc:
        self.n += 1
        w = self.start("worker", f"w{self.n}", ttl)
        self.workers.append(w)
        return w

    def onboard(self) -> None:
        self.price("60000")
        for i, u in enumerate(self.users):
            key = f"k{i:03d}"
            body = {
                "api_key": key,
                "secret": f"s{key}",
                "passphrase": f"p{key}",
                "balances": {"USDT": "100000000"},
            }
            assert httpx.post(f"{self.sim.url}/sim/accounts", json=body).status_code == 201
            self.creds[u] = Credentials(key, f"s{key}", f"p{key}")
            r = httpx.put(f"{self.api.url}/api/v1/users/{u}/credentials/okx",
                          json={"api_key": key, "secret": f"s{key}", "passphrase": f"p{key}"})  # fmt: skip
            assert r.status_code == 204, r.text
            assert httpx.post(
                f"{self.api.url}/api/v1/users/{u}/activate", json={"exchanges": ["okx"]}
            ).is_success

    def price(self, value: str) -> None:
        assert httpx.post(f"{self.sim.url}/sim/prices", json={"symbol": BTC, "price": value}).is_success

    # -- what Redis and the workers say ---------------------------------------------------------------------
    def holders(self) -> dict[str, str | None]:
        pipe = self.r.pipeline(transaction=False)
        for u in self.users:
            pipe.get(self.keys.account_lease(u, "okx"))
        return {
            u: (v.decode().partition(":")[2] if v else None)
            for u, v in zip(self.users, pipe.execute(), strict=True)
        }

    def status(self, worker: Proc) -> list[dict[str, Any]]:
        try:
            users: list[dict[str, Any]] = httpx.get(f"{worker.url}/api/v1/status", timeout=5).json()["users"]
        except httpx.HTTPError:
            return []
        return users

    def reconciled(self, worker: Proc) -> set[str]:
        return {u["user_id"] for u in self.status(worker) if u.get("last_reconcile_at")}

    def healthy(self, worker: Proc) -> set[str]:
        """Reconciled with the private streams open (a burst then reaches the worker as pushes)."""
        return {u["user_id"] for u in self.status(worker) if u.get("state") == "healthy"}

    def all_tracked(self, workers: list[Proc], streams: bool = False) -> bool:
        holders = self.holders()
        names = {w.name for w in workers}
        if any(h not in names for h in holders.values()):
            return False
        done = set().union(*((self.healthy if streams else self.reconciled)(w) for w in workers))
        return set(self.users) <= done

    def events(self) -> int:
        pipe = self.r.pipeline(transaction=False)
        for u in self.users:
            pipe.xlen(self.keys.event_stream(u))
        return sum(pipe.execute())

    # -- 1. throughput ----------------------------------------------------------------------------------------
    async def _rest_orders(self, levels: list[Decimal]) -> None:
        sem = asyncio.Semaphore(16)

        async def one(u: str) -> None:
            async with sem:
                gw = await build_gateway("okx", f"bench-{u}", self.creds[u], base_url=self.sim.url)
                try:
                    for px in levels:
                        await gw.create_order(OrderRequest(symbol=BTC, side=OrderSide.BUY, order_type=OrderType.LIMIT,
                                                           quantity=Decimal("0.01"), price=px,
                                                           client_order_id="b" + uuid.uuid4().hex[:20]))  # fmt: skip
                finally:
                    await gw.close()

        await asyncio.gather(*(one(u) for u in self.users))

    def marks(self) -> dict[str, bytes]:
        """The last entry id of each user's stream (where a count of new events starts)."""
        pipe = self.r.pipeline(transaction=False)
        for u in self.users:
            pipe.xrevrange(self.keys.event_stream(u), count=1)
        return {u: (e[0][0] if e else b"0-0") for u, e in zip(self.users, pipe.execute(), strict=True)}

    def since(self, marks: dict[str, bytes]) -> list[dict[str, Any]]:
        """The events written after `marks`, decoded."""
        pipe = self.r.pipeline(transaction=False)
        for u in self.users:
            pipe.xrange(self.keys.event_stream(u), min=b"(" + marks[u])
        return [orjson.loads(f[b"data"]) for entries in pipe.execute() for _, f in entries]

    def fills_since(self, marks: dict[str, bytes]) -> int:
        return sum(1 for e in self.since(marks) if e["event_type"] == "fill.created")

    def settle(self, quiet_s: float = 1.5) -> int:
        """The event count once nothing new came for `quiet_s`."""
        last, at = self.events(), time.monotonic()
        while time.monotonic() - at < quiet_s:
            time.sleep(0.05)
            now = self.events()
            if now != last:
                last, at = now, time.monotonic()
        return last

    def pids(self) -> dict[str, int]:
        procs = {p.name: p.proc.pid for p in [self.sim, self.api, *self.workers]}
        with contextlib.suppress(redis.RedisError, KeyError, ValueError):  # (shared: others' load counts)
            procs["redis"] = int(self.r.info("server")["process_id"])
        return procs

    def throughput(self, n_workers: int, base: Decimal) -> dict[str, Any]:
        # the default lease TTL (10 s): a 2 s lease lapses when a burst keeps a worker's loop busy that long
        workers = [self.start_worker(self.args.throughput_ttl) for _ in range(n_workers)]
        wait_until(lambda: self.all_tracked(workers, streams=True), 120,
                   f"{n_workers} worker(s) tracking every account with its streams open", 0.2)  # fmt: skip
        levels = [base - Decimal(10) * i for i in range(self.args.orders)]
        t0 = time.monotonic()
        asyncio.run(self._rest_orders(levels))
        placed_s = time.monotonic() - t0
        before = self.settle()
        marks = self.marks()
        expected = len(self.users) * len(levels)
        pids = self.pids()
        cpu0 = {n: cpu_s(pid) for n, pid in pids.items()}
        cpu0["bench"] = cpu_s(os.getpid())
        moved_at = time.time()
        self.price(str(levels[-1] - 100))  # one move through every resting order: all fill at once
        # (polls the streams' lengths only, cheap next to the burst; the fills are counted once it is quiet)
        deadline = time.monotonic() + self.args.burst_wait
        while True:
            after = self.settle(2.0)
            fills = self.fills_since(marks)
            if fills >= expected or time.monotonic() > deadline:
                break
        cpu = {n: cpu_s(pid) - cpu0[n] for n, pid in pids.items()}
        cpu["bench"] = cpu_s(os.getpid()) - cpu0["bench"]
        stamps = sorted(datetime.fromisoformat(e["timestamp"]).timestamp() for e in self.since(marks))
        updates = after - before
        for w in workers:
            w.stop()
        self.workers = [w for w in self.workers if w not in workers]
        wait_until(lambda: all(h is None for h in self.holders().values()), 30, "leases released")
        self.price("60000")
        seconds = stamps[-1] - moved_at
        return {"updates": updates, "seconds": seconds, "rate": updates / seconds, "placed_s": placed_s,
                "first_s": stamps[0] - moved_at, "fills": fills, "expected": expected,
                "complete": fills >= expected, "cpu": cpu}  # fmt: skip

    # -- 2. failover ------------------------------------------------------------------------------------------
    def failover(self) -> tuple[list[float], list[float]]:
        workers = [self.start_worker(), self.start_worker()]
        wait_until(lambda: self.all_tracked(workers), 90, "two workers tracking every account", 0.2)
        taken: list[float] = []
        resumed: list[float] = []
        for k in range(self.args.kills):
            workers = self._kill_once(k, workers, taken, resumed)
        for w in workers:
            w.stop()
        return taken, resumed

    def _kill_once(self, k: int, workers: list[Proc], taken: list[float], resumed: list[float]) -> list[Proc]:
        # both hold a share first (the new worker got its part back)
        def shares() -> bool:
            held = self.holders().values()
            return all(any(h == w.name for h in held) for w in workers)

        wait_until(shares, 4 * self.args.ttl + 10, "shares")
        wait_until(lambda: self.all_tracked(workers), 60, "every account tracked", 0.1)
        victim, survivor = workers
        mine = {u for u, h in self.holders().items() if h == victim.name}
        t0 = time.monotonic()
        victim.kill9()
        wait_until(lambda: all(self.holders()[u] == survivor.name for u in mine), 60, "takeover", 0.02)
        taken.append(time.monotonic() - t0)
        wait_until(lambda: mine <= self.reconciled(survivor), 60, "reconciles", 0.05)
        resumed.append(time.monotonic() - t0)
        print(f"  kill {k + 1}: {len(mine)} accounts taken in {taken[-1]:.2f} s, resumed in {resumed[-1]:.2f} s",
              flush=True)  # fmt: skip
        self.workers.remove(victim)
        return [survivor, self.start_worker()]

    def close(self) -> None:
        for p in [*self.workers, self.api, self.sim]:
            p.stop()
        for k in self.r.scan_iter(match=f"{self.prefix}*", count=1000):
            self.r.delete(k)
        self.r.close()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=30)
    p.add_argument("--orders", type=int, default=100, help="resting orders per account filled by the sweep")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--ttl", type=float, default=2.0, help="LEASE_TTL_S of the workers")
    p.add_argument("--throughput-ttl", type=float, default=10.0, help="LEASE_TTL_S of the throughput runs")
    p.add_argument("--runs", type=int, default=2, help="throughput runs per worker count (medians)")
    p.add_argument("--burst-wait", type=float, default=120.0, help="seconds a burst's fills may take at most")
    p.add_argument("--quick", action="store_true", help="20 accounts, 20 orders, 5 kills")
    p.add_argument("--skip", choices=["throughput", "failover"], default=None)
    args = p.parse_args()
    if args.quick:
        args.accounts, args.orders, args.kills = 20, 20, 5
    LOGS.mkdir(parents=True)
    print(
        f"bench_scale: {args.accounts} accounts, LEASE_TTL_S={args.ttl}, cores={os.cpu_count()}, logs {LOGS}"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    b = Bench(args)
    try:
        b.onboard()
        if args.skip != "throughput":
            rates: dict[int, list[float]] = {1: [], 2: []}
            base = Decimal(59000)
            for run in range(args.runs):
                for n in (1, 2) if run % 2 == 0 else (2, 1):  # alternate, so warm-up favours neither
                    out = b.throughput(n, base)
                    base -= Decimal(10) * (args.orders + 10)
                    rates[n].append(out["rate"])
                    window = out["seconds"]
                    cpu = ", ".join(f"{k} {v:.2f} s ({100 * v / window:.0f}%)" for k, v in out["cpu"].items())
                    print(f"  run {run + 1}, {n} worker(s): {out['updates']:.0f} updates in {window:.2f} s = "
                          f"{out['rate']:,.0f}/s (first event {out['first_s']:.2f} s after the move); fill events "
                          f"{out['fills']:.0f} of {out['expected']:.0f} exchange fills"
                          f"{'' if out['complete'] else ' (INCOMPLETE)'} (orders placed in {out['placed_s']:.1f} s)"
                          f"\n    CPU from the move until quiet (2 s after the last event; % of the window): {cpu}",
                          flush=True)  # fmt: skip
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            ratio = two / one
            print(f"tracked updates/s: 1 worker {one:,.0f}/s, 2 workers {two:,.0f}/s: ratio {ratio:.2f} "
                  f"(target >= 1.7: {'met' if ratio >= 1.7 else 'NOT met'}); load average before: {load}")  # fmt: skip
        if args.skip != "failover":
            taken, resumed = b.failover()
            target = args.ttl + 2
            print(f"failover over {len(taken)} kills (LEASE_TTL_S {args.ttl} s, yardstick): leases taken p50 "
                  f"{pct(taken, 0.5):.2f} s, p99 {pct(taken, 0.99):.2f} s (target <= {target:.1f} s: "
                  f"{'met' if pct(taken, 0.99) <= target else 'NOT met'}); accounts reconciled p50 "
                  f"{pct(resumed, 0.5):.2f} s, p99 {pct(resumed, 0.99):.2f} s")  # fmt: skip
    finally:
        b.close()


if __name__ == "__main__":
    main()
