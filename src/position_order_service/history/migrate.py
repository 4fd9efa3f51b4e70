"""Run the history migrations from code: `upgrade(url)` / `downgrade(url, "base")` and async variants.

The sync functions own their event loop (for a CLI or a thread); inside a running loop use
`await upgrade_async(engine_or_url)`, which runs Alembic on a connection of the given async engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD = "head"
BASE = "base"

Target = str | Path | AsyncEngine | None


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run_command(connection: Connection, name: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if name == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _with_connection(target: Target, fn: Any, *args: Any) -> Any:
    if isinstance(target, AsyncEngine):
        engine, owned = target, False
    else:
        engine, owned = make_engine(target), True
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    finally:
        if owned:
            await engine.dispose()


async def upgrade_async(target: Target = None, revision: str = HEAD) -> None:
    await _with_connection(target, _run_command, "upgrade", revision)


async def downgrade_async(target: Target = None, revision: str = BASE) -> None:
    await _with_connection(target, _run_command, "downgrade", revision)


async def current_revision_async(target: Target = None) -> str | None:
    rev: str | None = await _with_connection(target, _current)
    return rev


def _run_sync(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called inside a running event loop: await the *_async variant instead")


def upgrade(database_url: str | Path | None = None, revision: str = HEAD) -> None:
    """Bring the database at `database_url` (default: the SQLite file) up to `revision`."""
    _run_sync(upgrade_async(normalize_url(database_url), revision))


def downgrade(database_url: str | Path | None = None, revision: str = BASE) -> None:
    """Take the database down to `revision` ("base" drops every history table)."""
    _run_sync(downgrade_async(normalize_url(database_url), revision))


def current_revision(database_url: str | Path | None = None) -> str | None:
    rev: str | None = _run_sync(current_revision_async(normalize_url(database_url)))
    return rev
