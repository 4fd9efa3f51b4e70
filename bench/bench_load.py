"""Load test (locust) of the service and its simulator together; prints request rate, p99 and errors,
and the history writer's lag behind the event streams under that load.

    .venv/bin/pip install -e '.[bench]'      # locust
    .venv/bin/python bench/bench_load.py [--users 50] [--clients 40] [--seconds 30]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from position_order_service.store.embedded import free_port  # noqa: E402


def wait(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def lag_from_metrics(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    m = re.search(r"^stream_consumer_lag (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50, help="trading accounts onboarded")
    ap.add_argument("--clients", type=int, default=40, help="concurrent locust clients")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()

    sim_port, port = free_port(), free_port()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    tmp = Path(tempfile.mkdtemp())
    cli = str(Path(sys.executable).parent / "position-order-service")
    sim = subprocess.Popen([cli, "sim", "--exchange", "okx", "--port", str(sim_port), "--no-limits"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {**os.environ, "REDIS_URL": args.redis, "KEY_PREFIX": prefix, "SIM": "off", "OKX_BASE_URL": sim_url,
           "CREDENTIALS_KEY": "bench", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/h.sqlite3",
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    svc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--port", str(port)], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait(f"{sim_url}/sim/state")
        wait(f"{base}/health")
        c = httpx.Client(timeout=30)
        c.post(f"{sim_url}/sim/prices", json={"symbol": "BTC-USDT-SWAP", "price": "60000"})
        for i in range(args.users):
            u = f"u{i}"
            c.post(f"{sim_url}/sim/accounts", json={"api_key": f"k{i}", "secret": f"s{i}", "passphrase": f"p{i}",
                                                    "balances": {"USDT": "10000000"}})  # fmt: skip
            c.put(f"{base}/api/v1/users/{u}/credentials/okx",
                  json={"api_key": f"k{i}", "secret": f"s{i}", "passphrase": f"p{i}"})  # fmt: skip
            c.post(f"{base}/api/v1/users/{u}/activate", json={"exchanges": ["okx"]})
        time.sleep(2)
        stats = tmp / "load"
        subprocess.run(
            [str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
             "--host", base, "-u", str(args.clients), "-r", str(max(1, args.clients // 4)),
             "--run-time", f"{args.seconds}s", "--csv", str(stats), "--only-summary"],
            env={**os.environ, "LOAD_USERS": str(args.users), "LOAD_SIM_URL": sim_url},
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        lag_end = lag_from_metrics(base)
        with open(f"{stats}_stats.csv") as f:
            rows = list(csv.DictReader(f))
        print(f"load: {args.clients} clients, {args.users} accounts, {args.seconds} s, 1 service worker")
        for row in rows:
            name = row["Name"]
            if name == "sim price":
                continue
            print(f"  {name:24s} rate {float(row['Requests/s']):8.1f}/s  p50 {row['50%']:>5} ms  "
                  f"p99 {row['99%']:>5} ms  failures {row['Failure Count']}")  # fmt: skip
        total = next(r for r in rows if r["Name"] == "Aggregated")
        print(f"load_total_rate: {float(total['Requests/s']):.1f} req/s")
        print(f"load_total_p99: {total['99%']} ms")
        print(f"load_errors: {total['Failure Count']} of {total['Request Count']}")
        time.sleep(6)
        print(
            f"history_writer_lag_events: {lag_end:.0f} at the end of the load, {lag_from_metrics(base):.0f} 6 s later"
        )
    finally:
        svc.terminate()
        sim.terminate()
        svc.wait(timeout=20)
        sim.wait(timeout=20)
        r = redis.Redis.from_url(args.redis)
        for k in r.scan_iter(match=f"{prefix}*", count=1000):
            r.delete(k)


if __name__ == "__main__":
    main()
