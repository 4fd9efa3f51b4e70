"""Durable history of orders, fills, positions, trailing stops and conditional rules (SQLite or PostgreSQL).

- `HistoryDB`: engine + session factory (what `app.state.ctx.history` holds for the API).
- `HistoryWriter`: users' Redis event streams -> tables, exactly once per row.
- `upgrade` / `downgrade` (and `*_async`): the Alembic migrations, from code.
"""

from __future__ import annotations

from .db import DEFAULT_URL, HistoryDB, make_engine, normalize_url
from .migrate import downgrade, downgrade_async, upgrade, upgrade_async
from .writer import HistoryWriter, WriterStats

__all__ = [
    "DEFAULT_URL",
    "HistoryDB",
    "HistoryWriter",
    "WriterStats",
    "downgrade",
    "downgrade_async",
    "make_engine",
    "normalize_url",
    "upgrade",
    "upgrade_async",
]
