"""The history writer reading many users' event streams on a single Redis and on a 3-master Redis Cluster
(tests/redis_backends.py), where one XREAD may not span slots: it reads one group per slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from position_order_service.history import HistoryDB, HistoryWriter
from position_order_service.history import tables as t
from position_order_service.store import Store

from . import test_writer
from .support import count, order


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[HistoryDB]:
    db = await HistoryDB.open(f"sqlite+aiosqlite:///{tmp_path / 'history.sqlite3'}")
    yield db
    await db.close()


async def test_store_events_become_rows_exactly_once(backend_store: Store, sqlite_db: HistoryDB) -> None:
    await test_writer.test_store_events_become_rows_exactly_once(backend_store, sqlite_db)


async def test_many_users_streams_in_one_pass(backend_store: Store, sqlite_db: HistoryDB) -> None:
    users = [f"h{i}" for i in range(12)]
    for u in users:
        await backend_store.orders.upsert(order(user_id=u))
    writer = HistoryWriter(backend_store.redis, backend_store.keys, sqlite_db, users)
    assert await writer.drain() == len(users)
    assert await count(sqlite_db, t.orders) == len(users)
    assert await writer.drain() == 0
