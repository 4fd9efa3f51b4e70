"""A configuration error is one line naming the variable, its value (password masked) and the reason, and exit
code 2 (issue 12 item 9). Real processes, as an operator starts them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from position_order_service.store.embedded import free_port

from ..conftest import REAL_REDIS_URL, require_server

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-SEKRIT-42"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "SIM": "off", "LOG_FORMAT": "json", "DATA_DIR": str(tmp_path / "var")}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--port", str(free_port())],
        cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _cases() -> list[tuple[str, dict[str, str], str, str]]:
    dead = free_port()
    return [
        ("redis-unreachable", {"REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{dead}/0"}, "REDIS_URL", "unreachable"),
        ("redis-host-unreachable", {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(dead), "REDIS_PASSWORD": PASSWORD},
         "REDIS_HOST", "unreachable"),
        ("postgres-unreachable", {"DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{dead}/test"},
         "DATABASE_URL", "unreachable"),
        ("postgres-auth", {"DATABASE_URL": f"postgresql://no_such_role_x:{PASSWORD}@127.0.0.1:5432/test"},
         "DATABASE_URL", "no_such_role_x"),
        ("garbage", {"DATABASE_URL": "garbage"}, "DATABASE_URL", "sqlite"),
        ("mysql", {"DATABASE_URL": f"mysql://root:{PASSWORD}@127.0.0.1/db"}, "DATABASE_URL", "postgresql"),
        ("not-a-port", {"REDIS_PORT": "not-a-port"}, "REDIS_PORT", "integer"),
        ("short-token", {"API_TOKENS": "short=*"}, "API_TOKENS", "16 characters"),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "env", "variable", "reason"), _cases(), ids=[c[0] for c in _cases()])
def test_configuration_errors_are_one_line_and_exit_2(
    tmp_path: Path, name: str, env: dict[str, str], variable: str, reason: str
) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    require_server("Redis", "127.0.0.1", 6379)
    if "REDIS_URL" not in env and "REDIS_HOST" not in env and name != "not-a-port":
        env = {**env, "REDIS_URL": REAL_REDIS_URL}
    proc = _run(tmp_path, **env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"configuration error: {variable}="), lines[0]
    assert reason in lines[0], lines[0]
    assert PASSWORD not in proc.stderr + proc.stdout
    assert not (tmp_path / "garbage").exists()


def test_a_taken_embedded_redis_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as other:  # another program listens there
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = _run(tmp_path, EMBEDDED_REDIS_PORT=str(port))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"configuration error: EMBEDDED_REDIS_PORT='{port}': the port is taken"), (
        lines[0]
    )


def test_the_history_database_in_use_is_named_at_start(tmp_path: Path) -> None:
    require_server("Redis", "127.0.0.1", 6379)
    import httpx

    from tests.e2e.conftest import Service, clean_env

    env = clean_env(REDIS_URL=REAL_REDIS_URL, KEY_PREFIX="test:dbname:", SIM="off", LOG_FORMAT="json",
                    DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/h.sqlite3")  # fmt: skip
    svc = Service(env, free_port(), tmp_path / "svc.log")
    try:
        svc.wait_healthy()
        assert httpx.get(f"{svc.url}/health").status_code == 200
    finally:
        svc.kill()
    assert f"history database: sqlite+aiosqlite:///{tmp_path}/h.sqlite3" in svc.output()
