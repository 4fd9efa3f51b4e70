"""An embedded Redis-compatible server for running with nothing configured (SPEC section 11).

Prefers a private `redis-server` process when the binary is installed (the real thing, no persistence);
otherwise fakeredis' TCP server with its Lua support, in a thread. Either listens on 127.0.0.1 so bots and
redis-cli on the same machine can connect to it too.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


class EmbeddedServer(Protocol):
    host: str
    port: int
    kind: str

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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


@dataclass
class RedisServerProcess:
    """A private redis-server: no RDB/AOF, its own temp dir, killed with us."""

    port: int
    host: str = "127.0.0.1"
    kind: str = "redis-server"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, binary: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="pos-redis-")
        self._proc = subprocess.Popen(
            [
                binary,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (only a prctl call; the service forks it at start)
        )
        _wait_for_port(self.host, self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
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


def start_embedded(port: int = 0, prefer: str = "auto") -> EmbeddedServer:
    """Start an embedded server on `port` (0 = any free port). prefer: auto | redis-server | fakeredis."""
    port = port or free_port()
    if not port_is_free(port):
        raise RuntimeError(
            f"port {port} for the embedded Redis is taken: set EMBEDDED_REDIS_PORT, or REDIS_URL to use that server"
        )
    binary = shutil.which("redis-server")
    if prefer in ("auto", "redis-server") and binary:
        proc = RedisServerProcess(port)
        proc.start(binary)
        return proc
    if prefer == "redis-server":
        raise RuntimeError("redis-server is not installed")
    fake = FakeRedisTcp(port)
    fake.start()
    return fake
