"""Initial history schema: orders, fills, positions (+ realized PnL), trailing stops, conditional rules,
transitions, dead letters and stream offsets.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from position_order_service.history.coltypes import BigId, Money, UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conditional_rules",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=True),
        sa.Column("trigger_order_id", sa.String(length=128), nullable=False),
        sa.Column("cancel_order_ids", sa.JSON(), nullable=False),
        sa.Column("condition", sa.String(length=32), nullable=False),
        sa.Column("cancelled_ids", sa.JSON(), nullable=False),
        sa.Column("already_closed_ids", sa.JSON(), nullable=False),
        sa.Column("failed_ids", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("last_event_type", sa.String(length=48), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conditional_rules")),
        sa.UniqueConstraint("user_id", "rule_id", name=op.f("uq_conditional_rules_user_id_rule_id")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("stream", "epoch", "seq", name=op.f("uq_dead_letters_stream_epoch_seq")),
    )
    op.create_table(
        "fills",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("trade_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("client_order_id", sa.String(length=128), nullable=True),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("size", Money(), nullable=False),
        sa.Column("fee", Money(), nullable=False),
        sa.Column("fee_currency", sa.String(length=32), nullable=True),
        sa.Column("liquidity", sa.String(length=16), nullable=True),
        sa.Column("position_side", sa.String(length=8), nullable=True),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint(
            "user_id",
            "exchange",
            "symbol",
            "trade_id",
            "side",
            name=op.f("uq_fills_user_id_exchange_symbol_trade_id_side"),
        ),
    )
    op.create_index(
        op.f("ix_fills_user_id_exchange_symbol_ts"),
        "fills",
        ["user_id", "exchange", "symbol", "ts"],
        unique=False,
    )
    op.create_index(
        op.f("ix_fills_user_id_exchange_ts_id"), "fills", ["user_id", "exchange", "ts", "id"], unique=False
    )
    op.create_index(op.f("ix_fills_user_id_ts"), "fills", ["user_id", "ts"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("client_order_id", sa.String(length=128), nullable=True),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("order_type", sa.String(length=32), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("price", Money(), nullable=True),
        sa.Column("trigger_price", Money(), nullable=True),
        sa.Column("filled_qty", Money(), nullable=False),
        sa.Column("avg_fill_price", Money(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("position_side", sa.String(length=8), nullable=True),
        sa.Column("grid_level", sa.Integer(), nullable=True),
        sa.Column("last_event_type", sa.String(length=48), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "user_id", "exchange", "order_id", name=op.f("uq_orders_user_id_exchange_order_id")
        ),
    )
    op.create_index(
        op.f("ix_orders_user_id_exchange_created_at_id"),
        "orders",
        ["user_id", "exchange", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_orders_user_id_exchange_symbol_created_at"),
        "orders",
        ["user_id", "exchange", "symbol", "created_at"],
        unique=False,
    )

    op.create_table(
        "positions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("position_id", sa.String(length=128), nullable=False),
        sa.Column("lifetime", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("size", Money(), nullable=False),
        sa.Column("max_size", Money(), nullable=False),
        sa.Column("entry_price", Money(), nullable=False),
        sa.Column("exit_price", Money(), nullable=True),
        sa.Column("current_price", Money(), nullable=True),
        sa.Column("leverage", sa.Integer(), nullable=False),
        sa.Column("grid_level", sa.Integer(), nullable=True),
        sa.Column("realized_pnl", Money(), nullable=False),
        sa.Column("unrealized_pnl", Money(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("funding", Money(), nullable=False),
        sa.Column("last_event_type", sa.String(length=48), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint(
            "user_id",
            "exchange",
            "position_id",
            "lifetime",
            name=op.f("uq_positions_user_id_exchange_position_id_lifetime"),
        ),
    )
    op.create_index(op.f("ix_positions_position_id"), "positions", ["position_id"], unique=False)
    op.create_index(
        op.f("ix_positions_user_id_exchange_opened_at_id"),
        "positions",
        ["user_id", "exchange", "opened_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_positions_user_id_exchange_symbol_opened_at"),
        "positions",
        ["user_id", "exchange", "symbol", "opened_at"],
        unique=False,
    )

    op.create_table(
        "realized_pnl",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("position_id", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realized_pnl")),
        sa.UniqueConstraint("user_id", "src_version", name=op.f("uq_realized_pnl_user_id_src_version")),
    )
    op.create_index(op.f("ix_realized_pnl_user_id_ts"), "realized_pnl", ["user_id", "ts"], unique=False)

    op.create_table(
        "stream_offsets",
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_stream_offsets")),
    )
    op.create_table(
        "trailing_stops",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("stop_id", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("size", Money(), nullable=True),
        sa.Column("activation_price", Money(), nullable=True),
        sa.Column("callback_rate", Money(), nullable=False),
        sa.Column("extreme_price", Money(), nullable=True),
        sa.Column("stop_price", Money(), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("last_event_type", sa.String(length=48), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trailing_stops")),
        sa.UniqueConstraint(
            "user_id", "exchange", "stop_id", name=op.f("uq_trailing_stops_user_id_exchange_stop_id")
        ),
    )
    op.create_index(
        op.f("ix_trailing_stops_user_id_exchange_symbol_side"),
        "trailing_stops",
        ["user_id", "exchange", "symbol", "side"],
        unique=False,
    )
    op.create_table(
        "transitions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=160), nullable=False),
        sa.Column("event_type", sa.String(length=48), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("ts", UtcDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("src_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.UniqueConstraint("user_id", "src_version", name=op.f("uq_transitions_user_id_src_version")),
    )
    op.create_index(
        op.f("ix_transitions_user_id_kind_ref_ts"),
        "transitions",
        ["user_id", "kind", "ref", "ts"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_transitions_user_id_kind_ref_ts"), table_name="transitions")
    op.drop_table("transitions")
    op.drop_index(op.f("ix_trailing_stops_user_id_exchange_symbol_side"), table_name="trailing_stops")
    op.drop_table("trailing_stops")
    op.drop_table("stream_offsets")
    op.drop_index(op.f("ix_realized_pnl_user_id_ts"), table_name="realized_pnl")
    op.drop_table("realized_pnl")
    op.drop_index(op.f("ix_positions_user_id_exchange_symbol_opened_at"), table_name="positions")
    op.drop_index(op.f("ix_positions_user_id_exchange_opened_at_id"), table_name="positions")
    op.drop_index(op.f("ix_positions_position_id"), table_name="positions")
    op.drop_table("positions")
    op.drop_index(op.f("ix_orders_user_id_exchange_symbol_created_at"), table_name="orders")
    op.drop_index(op.f("ix_orders_user_id_exchange_created_at_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_fills_user_id_ts"), table_name="fills")
    op.drop_index(op.f("ix_fills_user_id_exchange_ts_id"), table_name="fills")
    op.drop_index(op.f("ix_fills_user_id_exchange_symbol_ts"), table_name="fills")
    op.drop_table("fills")
    op.drop_table("dead_letters")
    op.drop_table("conditional_rules")
