"""The bots' legacy keys, written in the same atomic step as the new ones while DUAL_SCHEMA_WRITE is on
(migration guide, phase 1). HYPERRSI keeps one hash per OKX position: user:{user_id}:position:{symbol}:{side};
GRID one per level: {exchange}:user:{user_id}:symbol:{symbol}:active_grid:{level} (see integrations/grid.py).
Values use the same decimal strings as the new schema, so the consistency check compares them as text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ..domain.models import Position
from .codec import enc_decimal

if TYPE_CHECKING:
    from .grid import GridLevelRecord

MIRROR_SEPARATOR = "\x1f"
HYPERRSI_EXCHANGE = "okx"  # the HYPERRSI bot trades OKX; its legacy keys carry no exchange


def pack(fields: dict[str, str]) -> str:
    """Field/value pairs for the Lua `hset_mirror` op."""
    for k, v in fields.items():
        if MIRROR_SEPARATOR in k or MIRROR_SEPARATOR in v:
            raise ValueError(f"legacy field {k!r} holds the separator character")
    return MIRROR_SEPARATOR.join(x for kv in fields.items() for x in kv)


def hyperrsi_fields(p: Position) -> dict[str, str]:
    meta = p.metadata
    tp_prices = meta.get("tp_prices")
    if tp_prices is None and p.take_profit_price is not None:
        tp_prices = [enc_decimal(p.take_profit_price)]
    out = {
        "position_id": p.id,
        "symbol": p.symbol,
        "side": p.side.value,
        "size": enc_decimal(p.size),
        "entry_price": enc_decimal(p.entry_price),
        "leverage": str(p.leverage),
        "is_DCA": "true" if meta.get("is_DCA") else "false",
        "is_hedge": "true" if meta.get("is_hedge") else "false",
        "tp_prices": orjson.dumps(tp_prices or []).decode(),
        "updated_at": p.updated_at.isoformat(),
    }
    if p.stop_loss_price is not None:
        out["sl_price"] = enc_decimal(p.stop_loss_price)
    if meta.get("entry_order_id"):
        out["order_id"] = str(meta["entry_order_id"])
    if p.current_price is not None:
        out["last_price"] = enc_decimal(p.current_price)
    return out


# Fields of the GRID legacy hash, in the order the bot wrote them; the consistency check compares these.
GRID_FIELDS = ("entry_price", "position_size", "grid_count", "side", "order_id", "pnl", "execution_time")


def grid_fields(r: GridLevelRecord) -> dict[str, str]:
    """The GRID bot's `{exchange}:user:{user_id}:symbol:{symbol}:active_grid:{level}` hash of one level.

    The bot wrote json.dumps(float) values ("45000.0"); the mirror writes plain decimal strings ("45000"),
    which the bot's json.loads/float() read the same way."""
    out = {
        "entry_price": enc_decimal(r.entry_price),
        "position_size": enc_decimal(r.position_size),
        "grid_count": str(r.grid_count),
        "side": r.side.value,
    }
    if r.order_id is not None:
        out["order_id"] = r.order_id
    if r.pnl is not None:
        out["pnl"] = enc_decimal(r.pnl)
    if r.execution_time is not None:
        out["execution_time"] = r.execution_time.isoformat()
    return out
