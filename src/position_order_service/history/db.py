"""Engines and the `HistoryDB` handle the API and the writer share.

SQLite by default (`sqlite+aiosqlite:///./var/history.sqlite3`), PostgreSQL with a
`postgresql+asyncpg://...` URL. A plain path is taken as a SQLite file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_URL = "sqlite+aiosqlite:///./var/history.sqlite3"
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def normalize_url(url_or_path: str | Path | None) -> str:
    """A database URL from a URL, a SQLite file path or None (the default SQLite file).

    Sync drivers are swapped for the async ones (`sqlite://` -> aiosqlite, `postgresql://` -> asyncpg).
    """
    if url_or_path is None or url_or_path == "":
        return DEFAULT_URL
    text = str(url_or_path)
    if "://" not in text:
        return f"sqlite+aiosqlite:///{text}"
    url = make_url(text)
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        url = url.set(drivername="sqlite+aiosqlite")
    elif url.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(
    url_or_path: str | Path | None = None, *, schema: str | None = None, **kw: Any
) -> AsyncEngine:
    """An async engine for the history database.

    `schema` (PostgreSQL only) puts every table in that schema via the connection's search_path (it must
    exist). SQLite files get WAL mode and their parent directory is created.
    """
    url = make_url(normalize_url(url_or_path))
    connect_args: dict[str, Any] = dict(kw.pop("connect_args", {}))
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("schema is only supported on PostgreSQL")
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args=connect_args, **kw)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if schema is not None:
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"invalid schema name: {schema!r}")
        settings = dict(connect_args.get("server_settings", {}))
        settings["search_path"] = schema
        connect_args["server_settings"] = settings
    kw.setdefault("pool_pre_ping", True)
    return create_async_engine(url, connect_args=connect_args, **kw)


class HistoryDB:
    """The history database: an engine and its session factory. What `app.state.ctx.history` must be."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(
        cls,
        url_or_path: str | Path | None = None,
        *,
        migrate: bool = True,
        schema: str | None = None,
        **engine_kw: Any,
    ) -> HistoryDB:
        """Connect (and by default bring the schema to the latest revision)."""
        engine = make_engine(url_or_path, schema=schema, **engine_kw)
        if migrate:
            from .migrate import upgrade_async

            try:
                await upgrade_async(engine)
            except BaseException:
                await engine.dispose()
                raise
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()
