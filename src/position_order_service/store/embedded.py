"""An embedded Redis-compatible server for running with nothing configured (SPEC section 11).

Prefers a private `redis-server` process when the binary is installed: the real thing, persisting to DATA_DIR
(append-only file `embedded-redis.aof`, fsync every second), so a stop and a start keep users, credentials and
state. Otherwise fakeredis' TCP server with its Lua support, in a thread: it keeps nothing, and says so.
Either listens on 127.0.0.1 so bots and redis-cli on the same machine can connect to it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

AOF_NAME = "embedded-redis.aof"
AOF_DIR = "embedded-redis-aof"  # Redis 7 keeps its multi-part AOF in a directory
PID_NAME = "embedded-redis.pid"
LOG_NAME = "embedded-redis.log"
PREDECESSOR_WAIT_S = 15.0  # a redis-server of ours still shutting down (its service was just killed)


class EmbeddedServer(Protocol):
    host: str
    port: int
    kind: str

    @property
    def persistent(self) -> bool: ...

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when a server could listen on the port now. SO_REUSEADDR, as redis-server itself sets it: a port
    whose last connections are only in TIME_WAIT (a server that just stopped) is free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_for_port(
    host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited with code {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"embedded Redis did not start listening on {host}:{port}")


def _die_with_parent() -> None:
    """Linux: the private redis-server gets SIGTERM when the service dies, even by kill -9."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _redis_major(binary: str) -> int:
    out = subprocess.run(
        [binary, "--version"], check=False, capture_output=True, text=True, timeout=10
    ).stdout
    m = re.search(r"v=(\d+)\.", out)
    return int(m.group(1)) if m else 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_predecessor(data_dir: Path, port: int, within_s: float = PREDECESSOR_WAIT_S) -> None:
    """A redis-server of a service that was just killed (kill -9) gets SIGTERM from the kernel and writes its
    AOF before it exits: wait for it instead of failing on its port."""
    pidfile = data_dir / PID_NAME
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + within_s
    while _pid_alive(pid) and not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class RedisServerProcess:
    """A private redis-server, killed with us. With `data_dir` it persists there (append-only file, fsync
    every second); without one it keeps nothing (a temp dir: tests)."""

    port: int
    host: str = "127.0.0.1"
    kind: str = "redis-server"
    data_dir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def persistent(self) -> bool:
        return self.data_dir is not None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _args(self, binary: str) -> list[str]:
        args = [binary, "--bind", self.host, "--port", str(self.port), "--daemonize", "no", "--save", ""]
        if self.data_dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="pos-redis-")
            return [*args, "--appendonly", "no", "--dir", self._dir.name, "--loglevel", "warning"]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--appendfilename", AOF_NAME]
        if _redis_major(binary) >= 7:
            args += ["--appenddirname", AOF_DIR]
        return [
            *args,
            "--dbfilename", "embedded-redis.rdb",
            "--dir", str(self.data_dir.resolve()),
            "--pidfile", str((self.data_dir / PID_NAME).resolve()),
            "--logfile", str((self.data_dir / LOG_NAME).resolve()),
            "--loglevel", "warning",
        ]  # fmt: skip

    def start(self, binary: str) -> None:
        self._proc = subprocess.Popen(
            self._args(binary),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own session: Ctrl+C in the terminal reaches the service alone, which stops its own tasks
            # first and this server last (a SIGINT to the whole group killed Redis under the running tasks)
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (only a prctl call; the service forks it at start)
        )
        try:
            _wait_for_port(self.host, self.port, proc=self._proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}{self._log_tail()}") from None

    def _log_tail(self) -> str:
        if self.data_dir is None:
            return ""
        with contextlib.suppress(OSError):
            lines = (self.data_dir / LOG_NAME).read_text(errors="replace").strip().splitlines()
            if lines:
                return f": {lines[-1]}"
        return ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()  # redis-server's SIGTERM: flush the AOF, then exit
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


@dataclass
class FakeRedisTcp:
    """fakeredis' TCP server (with Lua via lupa) in a daemon thread."""

    port: int
    host: str = "127.0.0.1"
    kind: str = "fakeredis"
    persistent: bool = False  # keeps nothing: a stop loses every key
    _server: object | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        from fakeredis import TcpFakeServer

        server = TcpFakeServer((self.host, self.port), server_type="redis")
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True)
        self._thread.start()
        _wait_for_port(self.host, self.port)

    def stop(self) -> None:
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
            self._server = None


def start_embedded(port: int = 0, prefer: str = "auto", data_dir: Path | None = None) -> EmbeddedServer:
    """Start an embedded server on `port` (0 = any free port). prefer: auto | redis-server | fakeredis.
    `data_dir`: where redis-server persists (None = nowhere)."""
    port = port or free_port()
    binary = shutil.which("redis-server")
    use_redis_server = prefer in ("auto", "redis-server") and binary is not None
    if use_redis_server and data_dir is not None and not port_is_free(port):
        wait_for_predecessor(data_dir, port)
    if not port_is_free(port):
        raise RuntimeError(
            f"port {port} for the embedded Redis is taken: set EMBEDDED_REDIS_PORT, or REDIS_URL to use that server"
        )
    if use_redis_server:
        assert binary is not None
        proc = RedisServerProcess(port, data_dir=data_dir)
        proc.start(binary)
        return proc
    if prefer == "redis-server":
        raise RuntimeError("redis-server is not installed")
    fake = FakeRedisTcp(port)
    fake.start()
    log.warning(
        "embedded Redis is fakeredis (redis-server is not installed): it keeps nothing. Users, credentials and "
        "state are lost when the service stops; install redis-server, or set REDIS_URL, to keep them"
    )
    return fake
