"""Processes as an operator runs them: the simulator (`position-order-service sim`) and the service."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from position_order_service.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_until(check: Any, within: float = 30.0, what: str = "condition", interval: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture
def sim_url() -> Iterator[str]:
    """An OKX simulator process on a free port."""
    port = free_port()
    cli = str(Path(sys.executable).parent / "position-order-service")
    proc = subprocess.Popen([cli, "sim", "--exchange", "okx", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/sim/state"), what="the simulator")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus every setting the service reads, plus `extra`."""
    names = ("REDIS_", "OKX_", "BINANCE_", "API_", "CREDENTIALS_", "DATABASE_", "EMBEDDED_", "SIM", "DATA_DIR",
             "KEY_PREFIX", "LOG_", "HISTORY", "EVENT_STREAM")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(extra)
    return env


class Service:
    """`python main.py --port P` with its output in a file."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, own_group: bool = False) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        # own_group: a process group of its own, as a shell gives a foreground job (Ctrl+C signals the group)
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--port", str(port)], cwd=ROOT,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     process_group=0 if own_group else None)  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"

    def wait_healthy(self, within: float = 60.0) -> Service:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}: {self.output()[-3000:]}")
            return http_ok(f"{self.url}/health")

        wait_until(up, within=within, what="the service")
        return self

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int, within: float = 30.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=within)
        self._log.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
