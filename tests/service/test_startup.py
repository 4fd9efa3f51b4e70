"""The service started as a user starts it: `python main.py` and the console script."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from position_order_service.config import Settings
from position_order_service.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_health(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"service exited with {proc.returncode}: {out[-2000:]}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            if r.status_code == 200:
                return dict(r.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("service did not become healthy")


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, str(ROOT / "main.py")],
        [str(Path(sys.executable).parent / "position-order-service"), "serve"],
    ],
    ids=["main.py", "console-script"],
)
def test_serves_health_on_embedded_defaults(argv: list[str]) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OKX_", "BINANCE_"))}
    env.update({"EMBEDDED_REDIS_PORT": "0", "SIM": "off", "LOG_FORMAT": "json"})
    proc = subprocess.Popen(
        [*argv, "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        body = _wait_health(port, proc)
        assert body["status"] == "ok"
        assert body["service"] == "position-order-service"
        assert body["timestamp"].endswith("+00:00")
        status = httpx.get(f"http://127.0.0.1:{port}/api/v1/status", timeout=2).json()
        assert status["redis"]["ok"] is True and status["redis"]["embedded"]
        assert status["uptime_s"] >= 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_settings_seed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not s.uses_embedded_redis
    assert s.redis_dsn() == "redis://:s3cret@redis.internal:6380/0"
    assert "s3cret" not in repr(s)
    monkeypatch.setenv("REDIS_URL", "redis://other:1/2")
    assert Settings(_env_file=None).redis_dsn() == "redis://other:1/2"  # type: ignore[call-arg]


def test_settings_embedded_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(k, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.uses_embedded_redis


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "not-a-port")
    with pytest.raises(ValueError, match="redis_port"):
        Settings(_env_file=None)  # type: ignore[call-arg]
