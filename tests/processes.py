"""Real processes for end-to-end tests: the simulator (`position-order-service sim`), the service
(`main.py`), each on a free port, with their output kept in a log file the failure message can show."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from position_order_service.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "position-order-service")


def wait_until(
    check: Callable[[], Any], within: float = 20.0, what: str = "condition", every: float = 0.1
) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(every)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, within: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _start(name: str, args: list[str], env: dict[str, str], log_dir: Path, url: str, ready: str) -> Process:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    process = Process(name, proc, log, url)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{process.tail()}")
        return http_ok(url + ready)

    try:
        wait_until(up, within=60, what=name)
    except BaseException:
        process.stop()
        raise
    return process


def start_simulator(log_dir: Path, exchange: str = "okx") -> Process:
    port = free_port()
    return _start(
        f"sim-{exchange}-{port}",
        [CLI, "sim", "--exchange", exchange, "--port", str(port)],
        {**os.environ},
        log_dir,
        f"http://127.0.0.1:{port}",
        "/sim/state",
    )


def service_env(redis_url: str, prefix: str, tmp: Path, **extra: str) -> dict[str, str]:
    """The service's environment: the real Redis under a key prefix, SQLite history in `tmp`, nothing
    inherited that would point it elsewhere."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OKX_", "BINANCE_", "API_", "SIM"))
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "KEY_PREFIX": prefix,
            "CREDENTIALS_KEY": "e2e-credentials-key",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/history.sqlite3",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
        }
    )
    env.update(extra)
    return env


def start_service(env: dict[str, str], log_dir: Path) -> Process:
    port = free_port()
    return _start(
        f"service-{port}",
        [sys.executable, str(ROOT / "main.py"), "--port", str(port)],
        env,
        log_dir,
        f"http://127.0.0.1:{port}",
        "/health",
    )


@contextmanager
def cleaned(redis_url: str, prefix: str) -> Iterator[None]:
    """Delete the test's keys afterwards."""
    try:
        yield
    finally:
        r = redis.Redis.from_url(redis_url)
        for k in r.scan_iter(match=f"{prefix}*", count=500):
            r.delete(k)
        r.close()
