"""The embedded Redis: persists to DATA_DIR and restarts at once on the same port (issue 12 items 1 and 2)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import redis

from position_order_service.store.embedded import free_port, port_is_free, start_embedded

needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server missing")


def _time_wait_on(port: int) -> None:
    """Leave a connection of `port` in TIME_WAIT: the listening side closes first, as a server that stops does."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server's listener has it
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first: its end (127.0.0.1:port) goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()


def test_a_port_in_time_wait_counts_as_free() -> None:
    port = free_port()
    _time_wait_on(port)
    assert port_is_free(port)


@needs_redis_server
def test_embedded_redis_restarts_at_once_on_a_port_in_time_wait(tmp_path: Path) -> None:
    port = free_port()
    _time_wait_on(port)
    server = start_embedded(port, "redis-server", data_dir=tmp_path)
    try:
        assert redis.Redis(port=port).ping()
    finally:
        server.stop()


@needs_redis_server
def test_embedded_redis_keeps_its_data_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    server = start_embedded(port, "redis-server", data_dir=tmp_path)
    try:
        client = redis.Redis(port=port)
        client.sadd("active_users:position_order_service", "u1")
        client.set("credentials:u1:okx", b"ciphertext")
        client.close()
    finally:
        server.stop()
    assert any(p.name.startswith("embedded-redis") for p in tmp_path.iterdir())
    server = start_embedded(port, "redis-server", data_dir=tmp_path)  # same port, at once
    try:
        client = redis.Redis(port=port)
        assert client.smembers("active_users:position_order_service") == {b"u1"}
        assert client.get("credentials:u1:okx") == b"ciphertext"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()
    finally:
        server.stop()


def test_fakeredis_fallback_says_it_keeps_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = start_embedded(free_port(), "fakeredis", data_dir=tmp_path)
    try:
        assert server.persistent is False
    finally:
        server.stop()
    assert "keeps nothing" in caplog.text
