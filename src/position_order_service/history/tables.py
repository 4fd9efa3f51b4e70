"""The history schema (SQLAlchemy Core). The initial Alembic revision creates exactly this.

Every row written from an event carries `src_version`, the position of that event in its user's stream:
`(epoch << 40) | seq` (see `writer.version_of`). Upserts only replace a row with a strictly newer version,
so replaying a stream (at-least-once delivery) or applying an older event after a newer one changes nothing.
`stream_offsets` holds, per stream, the last seq applied; the writer updates it in the same transaction as
the rows, so rows and offsets can never disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .coltypes import BigId, Money, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

USER = 128
EXCHANGE = 16
SYMBOL = 64
ORDER_ID = 128
SIDE = 8
STATE = 32
EVENT_TYPE = 48

stream_offsets = Table(
    "stream_offsets",
    metadata,
    Column("stream", String(255), primary_key=True),
    Column("user_id", String(USER), nullable=False),
    Column("epoch", Integer, nullable=False, default=0),
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("last_event_id", String(64), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=False),
    Column("order_id", String(ORDER_ID), nullable=False),
    Column("client_order_id", String(ORDER_ID), nullable=True),
    Column("symbol", String(SYMBOL), nullable=False),
    Column("side", String(SIDE), nullable=False),
    Column("order_type", String(STATE), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=True),
    Column("trigger_price", Money, nullable=True),
    Column("filled_qty", Money, nullable=False),
    Column("avg_fill_price", Money, nullable=True),
    Column("status", String(STATE), nullable=False),
    Column("reduce_only", Boolean, nullable=False, default=False),
    Column("position_side", String(SIDE), nullable=True),
    Column("grid_level", Integer, nullable=True),
    Column("last_event_type", String(EVENT_TYPE), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "exchange", "order_id"),
    Index(None, "user_id", "exchange", "created_at", "id"),
    Index(None, "user_id", "exchange", "symbol", "created_at"),
)

# Trade ids are unique per instrument on OKX and Binance, and the maker and the taker of one trade see the
# same id: a fill is one (user, exchange, symbol, trade id, side).
fills = Table(
    "fills",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=False),
    Column("trade_id", String(ORDER_ID), nullable=False),
    Column("order_id", String(ORDER_ID), nullable=True),
    Column("client_order_id", String(ORDER_ID), nullable=True),
    Column("symbol", String(SYMBOL), nullable=False),
    Column("side", String(SIDE), nullable=False),
    Column("price", Money, nullable=False),
    Column("size", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("fee_currency", String(STATE), nullable=True),
    Column("liquidity", String(16), nullable=True),
    Column("position_side", String(SIDE), nullable=True),
    Column("ts", UtcDateTime, nullable=False),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "exchange", "symbol", "trade_id", "side"),
    Index(None, "user_id", "exchange", "ts", "id"),
    Index(None, "user_id", "exchange", "symbol", "ts"),
    Index(None, "user_id", "ts"),
)

# One row per lifetime of a position: from the event that opens it to the one that closes it. A position id
# that opens again after a close starts a new lifetime (lifetime + 1).
positions = Table(
    "positions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=False),
    Column("position_id", String(ORDER_ID), nullable=False),
    Column("lifetime", Integer, nullable=False, default=0),
    Column("symbol", String(SYMBOL), nullable=False),
    Column("side", String(SIDE), nullable=False),
    Column("status", String(STATE), nullable=False),
    Column("size", Money, nullable=False),
    Column("max_size", Money, nullable=False),
    Column("entry_price", Money, nullable=False),
    Column("exit_price", Money, nullable=True),
    Column("current_price", Money, nullable=True),
    Column("leverage", Integer, nullable=False, default=1),
    Column("grid_level", Integer, nullable=True),
    Column("realized_pnl", Money, nullable=False),
    Column("unrealized_pnl", Money, nullable=False),
    Column("fees", Money, nullable=False),
    Column("funding", Money, nullable=False),
    Column("last_event_type", String(EVENT_TYPE), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "exchange", "position_id", "lifetime"),
    Index(None, "user_id", "exchange", "opened_at", "id"),
    Index(None, "user_id", "exchange", "symbol", "opened_at"),
    Index(None, "position_id"),
)

# Realized PnL as it happens: one row per position event that changed a lifetime's realized PnL (the
# change), so partial closes count on the day they happen. Feeds the PnL-per-day report.
realized_pnl = Table(
    "realized_pnl",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=False),
    Column("position_id", String(ORDER_ID), nullable=False),
    Column("symbol", String(SYMBOL), nullable=False),
    Column("amount", Money, nullable=False),
    Column("ts", UtcDateTime, nullable=False),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "src_version"),
    Index(None, "user_id", "ts"),
)

# Latest state of each trailing stop (one row per stop id; a stop created again on the same symbol and side
# is a new row). Events without an id (older emitters) use "{symbol}:{side}" as the id.
trailing_stops = Table(
    "trailing_stops",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=False),
    Column("stop_id", String(ORDER_ID), nullable=False),
    Column("symbol", String(SYMBOL), nullable=False),
    Column("side", String(SIDE), nullable=False),
    Column("mode", String(16), nullable=True),
    Column("size", Money, nullable=True),
    Column("activation_price", Money, nullable=True),
    Column("callback_rate", Money, nullable=False),
    Column("extreme_price", Money, nullable=True),
    Column("stop_price", Money, nullable=True),
    Column("order_id", String(ORDER_ID), nullable=True),
    Column("state", String(STATE), nullable=True),
    Column("reason", Text, nullable=True),
    Column("last_event_type", String(EVENT_TYPE), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "exchange", "stop_id"),
    Index(None, "user_id", "exchange", "symbol", "side"),
)

conditional_rules = Table(
    "conditional_rules",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("rule_id", String(ORDER_ID), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=True),
    Column("trigger_order_id", String(ORDER_ID), nullable=False),
    Column("cancel_order_ids", JSON, nullable=False),
    Column("condition", String(STATE), nullable=False),
    Column("cancelled_ids", JSON, nullable=False),
    Column("already_closed_ids", JSON, nullable=False),
    Column("failed_ids", JSON, nullable=False),
    Column("state", String(STATE), nullable=True),
    Column("last_event_type", String(EVENT_TYPE), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "rule_id"),
)

# Every trailing-stop and conditional-rule event, in order: the audit trail of their state machines.
transitions = Table(
    "transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(USER), nullable=False),
    Column("exchange", String(EXCHANGE), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("ref", String(160), nullable=False),
    Column("event_type", String(EVENT_TYPE), nullable=False),
    Column("state", String(STATE), nullable=True),
    Column("ts", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Column("src_version", BigInteger, nullable=False),
    UniqueConstraint("user_id", "src_version"),
    Index(None, "user_id", "kind", "ref", "ts"),
)

# Stream entries that could not be applied (bad JSON, missing or invalid fields): kept, never blocking.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream", String(255), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("stream", "epoch", "seq"),
)

ALL_TABLES = (
    stream_offsets,
    orders,
    fills,
    positions,
    realized_pnl,
    trailing_stops,
    conditional_rules,
    transitions,
    dead_letters,
)
