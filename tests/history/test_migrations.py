"""Alembic: upgrade from an empty database, downgrade to base, and the revision matches the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from position_order_service.history import downgrade, downgrade_async, upgrade, upgrade_async
from position_order_service.history.migrate import current_revision, current_revision_async
from position_order_service.history.tables import ALL_TABLES, metadata

from .conftest import Target

EXPECTED = {tbl.name for tbl in ALL_TABLES}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


async def test_upgrade_from_empty_then_downgrade_to_base(target: Target) -> None:
    engine = target.engine()
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        await upgrade_async(engine)
        assert await current_revision_async(engine) == "0001"
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == EXPECTED | {"alembic_version"}
            assert await conn.run_sync(_diff) == []
        await upgrade_async(engine)  # already at head: nothing to do
        await downgrade_async(engine, "base")
        assert await current_revision_async(engine) is None
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) <= {"alembic_version"}
        await upgrade_async(engine)  # and up again
        async with engine.connect() as conn:
            assert EXPECTED <= await conn.run_sync(_tables)
    finally:
        await engine.dispose()


def test_sync_upgrade_and_downgrade_on_a_sqlite_path(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.sqlite3"
    upgrade(str(path))
    assert path.exists()
    assert current_revision(str(path)) == "0001"
    downgrade(f"sqlite:///{path}", "base")
    assert current_revision(str(path)) is None
