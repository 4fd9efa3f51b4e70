"""Stream entries -> history rows (pure: no I/O).

A `Batch` collects the entries of one read, in stream order, and folds several events of one record into
one row (the newest state; the earliest creation time; the first close time), so a batch writes each row
once. Position events are kept as a list: turning them into lifetimes and realized-PnL changes needs the
rows already in the database (see `writer.apply_batch`).

Each entry's `version` is `(epoch << 40) | seq`: its place in its user's stream (see `version_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from ..domain.enums import OrderStatus

EPOCH_SHIFT = 40
SEQ_MASK = (1 << EPOCH_SHIFT) - 1

Row = dict[str, Any]

TRAILING_FINISHED = frozenset({"trailing_stop.executed", "trailing_stop.failed", "trailing_stop.cancelled"})
CONDITIONAL_FINISHED = frozenset({"conditional.executed", "conditional.failed", "conditional.deleted"})
CLOSED_POSITION_STATUSES = frozenset({"closed", "liquidated"})


def version_of(epoch: int, seq: int) -> int:
    if not 0 <= seq <= SEQ_MASK:
        raise ValueError(f"seq out of range: {seq}")
    return (epoch << EPOCH_SHIFT) | seq


class BadEvent(ValueError):
    """An entry that cannot become a row; it goes to dead_letters."""


# -- field readers -------------------------------------------------------------------------------------


def _req(p: Mapping[str, Any], name: str) -> Any:
    value = p.get(name)
    if value is None or value == "":
        raise BadEvent(f"missing field {name!r}")
    return value


def _str(p: Mapping[str, Any], name: str) -> str:
    return str(_req(p, name))


def _opt_str(p: Mapping[str, Any], name: str) -> str | None:
    value = p.get(name)
    return None if value is None or value == "" else str(value)


def _to_dec(name: str, value: Any) -> Decimal:
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, bool):
        raise BadEvent(f"field {name!r} is not a number: {value!r}")
    else:
        # a JSON number arrives as a float: read it through its shortest repr, never its binary value
        text = repr(value) if isinstance(value, float) else str(value)
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise BadEvent(f"field {name!r} is not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise BadEvent(f"field {name!r} is not a finite number: {value!r}")
    return d


def _dec(p: Mapping[str, Any], name: str) -> Decimal:
    return _to_dec(name, _req(p, name))


def _opt_dec(p: Mapping[str, Any], name: str, default: Decimal | None = None) -> Decimal | None:
    value = p.get(name)
    if value is None or value == "":
        return default
    return _to_dec(name, value)


def _opt_int(p: Mapping[str, Any], name: str) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadEvent(f"field {name!r} is not an integer: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadEvent(f"field {name!r} is not an integer: {value!r}") from None


def _bool(p: Mapping[str, Any], name: str) -> bool:
    value = p.get(name)
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return False
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise BadEvent(f"field {name!r} is not a boolean: {value!r}")


def parse_time(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        t = value
    else:
        try:
            t = datetime.fromisoformat(str(value))
        except ValueError:
            raise BadEvent(f"field {name!r} is not an ISO-8601 time: {value!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _opt_time(p: Mapping[str, Any], name: str) -> datetime | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    return parse_time(name, value)


def _str_list(p: Mapping[str, Any], name: str) -> list[str]:
    value = p.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadEvent(f"field {name!r} is not a list: {value!r}")
    return [str(v) for v in value]


def _order_status(raw: str) -> str:
    try:
        return OrderStatus(raw).value
    except ValueError:
        return raw


def _is_terminal(status: str) -> bool:
    try:
        return OrderStatus(status).is_terminal
    except ValueError:
        return False


# -- the batch ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class PositionEvent:
    version: int
    user_id: str
    exchange: str
    position_id: str
    symbol: str
    side: str
    status: str
    event_type: str
    ts: datetime
    opened_at: datetime | None
    closed_at: datetime | None
    size: Decimal
    entry_price: Decimal
    current_price: Decimal | None
    exit_price: Decimal | None
    leverage: int
    grid_level: int | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal | None
    funding: Decimal | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.exchange, self.position_id)

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_POSITION_STATUSES


@dataclass(slots=True)
class StreamProgress:
    """How far a batch takes one stream (what stream_offsets will hold once the batch commits)."""

    stream: str
    user_id: str
    epoch: int
    last_seq: int
    last_event_id: str | None


@dataclass(slots=True)
class Batch:
    orders: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    fills: dict[tuple[str, str, str, str, str], Row] = field(default_factory=dict)
    positions: list[PositionEvent] = field(default_factory=list)
    trailing_stops: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    conditional_rules: dict[tuple[str, str], Row] = field(default_factory=dict)
    # records (re)created by an event of this batch: they replace the stored row instead of merging into it
    created_stops: set[tuple[str, str, str]] = field(default_factory=set)
    created_rules: set[tuple[str, str]] = field(default_factory=set)
    transitions: list[Row] = field(default_factory=list)
    dead_letters: list[Row] = field(default_factory=list)
    progress: dict[str, StreamProgress] = field(default_factory=dict)
    entries: int = 0
    ignored: int = 0

    def __len__(self) -> int:
        return self.entries

    # -- entry point --------------------------------------------------------------------------------
    def add(
        self, stream: str, user_id: str, epoch: int, seq: int, data: bytes | str | Mapping[str, Any]
    ) -> None:
        """Add one stream entry (its `data` field). Never raises for a bad entry: it becomes a dead letter."""
        version = version_of(epoch, seq)
        self.entries += 1
        event_id: str | None = None
        try:
            payload: Any = data if isinstance(data, Mapping) else orjson.loads(data)
            if not isinstance(payload, dict):
                raise BadEvent("payload is not a JSON object")
            raw_id = payload.get("event_id")
            event_id = None if raw_id is None else str(raw_id)[:64]
            self._add_payload(user_id, version, payload)
        except (BadEvent, orjson.JSONDecodeError) as exc:
            text = (
                data
                if isinstance(data, str)
                else (data.decode("utf-8", "replace") if isinstance(data, bytes) else repr(dict(data)))
            )
            self.dead_letters.append(
                {
                    "stream": stream,
                    "epoch": epoch,
                    "seq": seq,
                    "reason": str(exc)[:1000],
                    "payload": text,
                    "recorded_at": datetime.now(UTC),
                }
            )
        self.progress[stream] = StreamProgress(stream, user_id, epoch, seq, event_id)

    def _add_payload(self, user_id: str, version: int, p: dict[str, Any]) -> None:
        event_type = str(p.get("event_type") or "")
        kind = event_type.split(".", 1)[0]
        if kind not in ("order", "fill", "position", "trailing_stop", "conditional"):
            self.ignored += 1  # prices and kinds history does not keep
            return
        raw_ts = p.get("timestamp")
        ts = datetime.now(UTC) if raw_ts is None or raw_ts == "" else parse_time("timestamp", raw_ts)
        exchange = str(p.get("exchange") or "")
        if kind == "order":
            self._add_order(user_id, version, event_type, ts, exchange, p)
        elif kind == "fill":
            self._add_fill(user_id, version, ts, exchange, p)
        elif kind == "position":
            self._add_position(user_id, version, event_type, ts, exchange, p)
        elif kind == "trailing_stop":
            self._add_trailing_stop(user_id, version, event_type, ts, exchange, p)
        else:
            self._add_conditional(user_id, version, event_type, ts, exchange, p)

    # -- orders ---------------------------------------------------------------------------------------
    def _add_order(
        self, user_id: str, version: int, event_type: str, ts: datetime, exchange: str, p: dict[str, Any]
    ) -> None:
        if not exchange:
            raise BadEvent("missing field 'exchange'")
        status = _order_status(_str(p, "status"))
        updated_at = _opt_time(p, "updated_at") or ts
        row: Row = {
            "user_id": user_id,
            "exchange": exchange,
            "order_id": _str(p, "order_id"),
            "client_order_id": _opt_str(p, "client_order_id"),
            "symbol": _str(p, "symbol"),
            "side": _str(p, "side"),
            "order_type": _str(p, "order_type"),
            "quantity": _dec(p, "quantity"),
            "price": _opt_dec(p, "price"),
            "trigger_price": _opt_dec(p, "trigger_price"),
            "filled_qty": _opt_dec(p, "filled_qty", Decimal(0)),
            "avg_fill_price": _opt_dec(p, "avg_fill_price"),
            "status": status,
            "reduce_only": _bool(p, "reduce_only"),
            "position_side": _opt_str(p, "position_side"),
            "grid_level": _opt_int(p, "grid_level"),
            "last_event_type": event_type,
            "created_at": _opt_time(p, "created_at") or ts,
            "updated_at": updated_at,
            "closed_at": updated_at if _is_terminal(status) else None,
            "src_version": version,
        }
        key = (user_id, exchange, row["order_id"])
        prev = self.orders.get(key)
        if prev is not None and prev["src_version"] > version:
            return  # entries out of stream order: the newer one already here wins
        if prev is not None:
            row["created_at"] = min(prev["created_at"], row["created_at"])
            row["closed_at"] = prev["closed_at"] or row["closed_at"]
        self.orders[key] = row

    # -- fills ----------------------------------------------------------------------------------------
    def _add_fill(self, user_id: str, version: int, ts: datetime, exchange: str, p: dict[str, Any]) -> None:
        if not exchange:
            raise BadEvent("missing field 'exchange'")
        row: Row = {
            "user_id": user_id,
            "exchange": exchange,
            "trade_id": _str(p, "trade_id"),
            "order_id": _opt_str(p, "order_id"),
            "client_order_id": _opt_str(p, "client_order_id"),
            "symbol": _str(p, "symbol"),
            "side": _str(p, "side"),
            "price": _dec(p, "price"),
            "size": _dec(p, "size"),
            "fee": _opt_dec(p, "fee", Decimal(0)),
            "fee_currency": _opt_str(p, "fee_currency"),
            "liquidity": _opt_str(p, "liquidity"),
            "position_side": _opt_str(p, "position_side"),
            "ts": _opt_time(p, "filled_at") or ts,
            "src_version": version,
        }
        key = (user_id, exchange, row["symbol"], row["trade_id"], row["side"])
        self.fills.setdefault(key, row)  # a fill never changes: the first report wins

    # -- positions ----------------------------------------------------------------------------------
    def _add_position(
        self, user_id: str, version: int, event_type: str, ts: datetime, exchange: str, p: dict[str, Any]
    ) -> None:
        if not exchange:
            raise BadEvent("missing field 'exchange'")
        status = str(p.get("status") or ("closed" if event_type == "position.closed" else "open")).lower()
        leverage = _opt_int(p, "leverage")
        self.positions.append(
            PositionEvent(
                version=version,
                user_id=user_id,
                exchange=exchange,
                position_id=_str(p, "position_id"),
                symbol=_str(p, "symbol"),
                side=_str(p, "side"),
                status=status,
                event_type=event_type,
                ts=_opt_time(p, "updated_at") or ts,
                opened_at=_opt_time(p, "created_at"),
                closed_at=_opt_time(p, "closed_at"),
                size=_dec(p, "size"),
                entry_price=_opt_dec(p, "entry_price", Decimal(0)) or Decimal(0),
                current_price=_opt_dec(p, "current_price"),
                exit_price=_opt_dec(p, "exit_price"),
                leverage=1 if leverage is None else leverage,
                grid_level=_opt_int(p, "grid_level"),
                realized_pnl=_opt_dec(p, "realized_pnl", Decimal(0)) or Decimal(0),
                unrealized_pnl=_opt_dec(p, "unrealized_pnl", Decimal(0)) or Decimal(0),
                fees=_opt_dec(p, "fees"),
                funding=_opt_dec(p, "funding", _opt_dec(p, "funding_fee")),
            )
        )

    # -- trailing stops and conditional rules --------------------------------------------------------
    def _transition(
        self,
        user_id: str,
        exchange: str,
        kind: str,
        ref: str,
        event_type: str,
        state: str | None,
        ts: datetime,
        version: int,
        p: dict[str, Any],
    ) -> None:
        data = {
            k: v for k, v in p.items() if k not in ("seq", "event_type", "user_id", "exchange", "timestamp")
        }
        self.transitions.append(
            {
                "user_id": user_id,
                "exchange": exchange or None,
                "kind": kind,
                "ref": ref[:160],
                "event_type": event_type,
                "state": state,
                "ts": ts,
                "data": data,
                "src_version": version,
            }
        )

    def _add_trailing_stop(
        self, user_id: str, version: int, event_type: str, ts: datetime, exchange: str, p: dict[str, Any]
    ) -> None:
        if not exchange:
            raise BadEvent("missing field 'exchange'")
        created = event_type == "trailing_stop.created"
        symbol, side = _str(p, "symbol"), _str(p, "side")
        row: Row = {
            "user_id": user_id,
            "exchange": exchange,
            "stop_id": _opt_str(p, "trailing_stop_id") or f"{symbol}:{side}",
            "symbol": symbol,
            "side": side,
            "mode": _opt_str(p, "mode"),
            "size": _opt_dec(p, "size"),
            "activation_price": _opt_dec(p, "activation_price"),
            "callback_rate": _dec(p, "callback_rate"),
            "extreme_price": _opt_dec(p, "extreme_price"),
            "stop_price": _opt_dec(p, "stop_price"),
            "order_id": _opt_str(p, "order_id"),
            "state": _opt_str(p, "state"),
            "reason": _opt_str(p, "reason"),
            "last_event_type": event_type,
            "created_at": ts,
            "updated_at": ts,
            "finished_at": ts if event_type in TRAILING_FINISHED else None,
            "src_version": version,
        }
        key = (user_id, exchange, row["stop_id"])
        self._transition(
            user_id, exchange, "trailing_stop", row["stop_id"], event_type, row["state"], ts, version, p
        )
        prev = self.trailing_stops.get(key)
        if prev is not None and prev["src_version"] > version:
            return
        if prev is not None and not created:
            row["created_at"] = prev["created_at"]
            row["finished_at"] = prev["finished_at"] or row["finished_at"]
        elif created:
            self.created_stops.add(key)
        self.trailing_stops[key] = row

    def _add_conditional(
        self, user_id: str, version: int, event_type: str, ts: datetime, exchange: str, p: dict[str, Any]
    ) -> None:
        created = event_type == "conditional.created"
        row: Row = {
            "user_id": user_id,
            "rule_id": _str(p, "rule_id"),
            "exchange": exchange or None,
            "trigger_order_id": _str(p, "trigger_order_id"),
            "cancel_order_ids": _str_list(p, "cancel_order_ids"),
            "condition": _str(p, "condition"),
            "cancelled_ids": _str_list(p, "cancelled_ids"),
            "already_closed_ids": _str_list(p, "already_closed_ids"),
            "failed_ids": _str_list(p, "failed_ids"),
            "state": _opt_str(p, "state"),
            "last_event_type": event_type,
            "created_at": ts,
            "updated_at": ts,
            "finished_at": ts if event_type in CONDITIONAL_FINISHED else None,
            "src_version": version,
        }
        key = (user_id, row["rule_id"])
        self._transition(
            user_id, exchange, "conditional", row["rule_id"], event_type, row["state"], ts, version, p
        )
        prev = self.conditional_rules.get(key)
        if prev is not None and prev["src_version"] > version:
            return
        if prev is not None and not created:
            row["created_at"] = prev["created_at"]
            row["finished_at"] = prev["finished_at"] or row["finished_at"]
        elif created:
            self.created_rules.add(key)
        self.conditional_rules[key] = row
