"""A private redis-server for one benchmark run (loopback, no persistence): its INFO commandstats count the run's
commands only, and other sessions' load on the shared Redis stays out of its latencies."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return shutil.which("redis-server") is not None


def start_own_redis() -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server is not on the PATH: use --redis shared"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
            return proc, url
        time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("the private redis-server did not start")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.terminate()
        with contextlib.suppress(Exception):
            proc.wait(5)
