"""History fixtures: every test runs on SQLite (a temporary file) and on PostgreSQL (a unique schema in the
`test` database, dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from position_order_service.history import HistoryDB, make_engine
from tests.conftest import POSTGRES_URL, require_server


@dataclass(frozen=True)
class Target:
    """Where a test's history database lives."""

    kind: str  # sqlite | postgres
    url: str
    schema: str | None = None

    def engine(self) -> AsyncEngine:
        return make_engine(self.url, schema=self.schema)

    async def open(self, migrate: bool = True) -> HistoryDB:
        return await HistoryDB.open(self.url, migrate=migrate, schema=self.schema)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
async def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("history") / "history.sqlite3"
        yield Target("sqlite", f"sqlite+aiosqlite:///{path}")
        return
    pg = make_url(POSTGRES_URL)
    require_server("PostgreSQL", pg.host or "127.0.0.1", pg.port or 5432)
    schema = f"history_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield Target("postgres", POSTGRES_URL, schema)
    finally:
        conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def history_db(target: Target) -> AsyncIterator[HistoryDB]:
    db = await target.open()
    yield db
    await db.close()
