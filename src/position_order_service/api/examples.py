"""Examples shown in OpenAPI (/docs, /redoc): built from the real models, so they never drift from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..domain.models import Order, Position
from ..domain.rules import ConditionalRule
from ..domain.trailing import TrailingStop

T = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
USER = "user123"
SYMBOL = "BTC-USDT-SWAP"

ORDER: dict[str, Any] = Order(
    id="7f3c2a9e4b1d4e5f8a6b0c1d2e3f4a5b", exchange_order_id="2215487316451", client_order_id="pos7f3c2a9e4b",
    user_id=USER, exchange="okx", symbol=SYMBOL, side="buy", order_type="limit", quantity="0.1",
    price="59000", filled_qty="0.05", avg_fill_price="59000", status="partially_filled", fee="1.475",
    fee_currency="USDT", created_at=T, updated_at=T,
).model_dump(mode="json")  # fmt: skip
FILLED: dict[str, Any] = {**ORDER, "order_type": "market", "price": None, "filled_qty": "0.1", "status": "filled",
          "is_filled": True, "is_active": False, "remaining_qty": "0", "fill_percentage": "100.00"}  # fmt: skip
STOP_LOSS: dict[str, Any] = Order(
    id="0b5e", exchange_order_id="2215487316452", client_order_id="12345", user_id=USER, exchange="okx",
    symbol=SYMBOL, side="sell", order_type="stop_loss", quantity="0.1", trigger_price="55000",
    reduce_only=True, status="cancelled", created_at=T, updated_at=T,
).model_dump(mode="json")  # fmt: skip
POSITION: dict[str, Any] = Position(
    id="okx:user123:BTC-USDT-SWAP:long", user_id=USER, exchange="okx", symbol=SYMBOL, side="long", size="0.1",
    entry_price="59000", current_price="60250.5", leverage=10, pnl={"unrealized": "125.05", "fees": "2.95"},
    created_at=T, updated_at=T,
).model_dump(mode="json")  # fmt: skip
TRAILING_STOP: dict[str, Any] = TrailingStop(
    id="9d1f0c", user_id=USER, exchange="okx", symbol=SYMBOL, side="long", callback_rate="0.02",
    activation_price="50000", size="0.1", state="active", extreme_price="60250.5", created_at=T, updated_at=T,
).model_dump(mode="json", exclude={"owner", "lease_until_ms"})  # fmt: skip
TRAILING_STOP["stop_price"] = "59045.49"
RULE: dict[str, Any] = ConditionalRule(
    id="4c2a", user_id=USER, exchange="okx", trigger_order_id="order_A", cancel_order_ids=["order_B", "order_C"],
    condition="filled", created_at=T, updated_at=T,
).model_dump(mode="json")  # fmt: skip
RULE_CREATED: dict[str, Any] = {**RULE, "rule_id": RULE["id"]}
STREAM_HEALTH: dict[str, Any] = {
    "user_id": USER, "exchange": "okx", "state": "healthy", "healthy": True, "last_error": None, "detail": None,
    "last_reconcile_at": "2026-11-21T09:30:00+00:00", "last_event_at": "2026-11-21T09:30:02.120000+00:00",
    "reconnects": 0, "corrections": 0, "updates_applied": 42,
}  # fmt: skip

CREATE_ORDER: dict[str, Any] = {"user_id": USER, "exchange": "okx", "symbol": SYMBOL, "side": "buy", "order_type": "limit",
                "quantity": "0.1", "price": "59000", "client_order_id": "bot1entry42"}  # fmt: skip
CANCEL_ORDER: dict[str, Any] = {"user_id": USER, "exchange": "okx", "symbol": SYMBOL, "order_id": "12345",
                "order_type": "stop_loss", "side": "buy"}  # fmt: skip
OPEN_POSITION: dict[str, Any] = {"user_id": USER, "exchange": "okx", "symbol": SYMBOL, "side": "long", "size": "0.1",
                 "leverage": 10, "stop_loss": "55000",
                 "take_profit": [{"price": "62000", "ratio": "0.5"}, {"price": "64000", "ratio": "0.5"}]}  # fmt: skip
CLOSE_POSITION: dict[str, Any] = {"user_id": USER, "exchange": "okx", "symbol": SYMBOL, "side": "long", "size": "0.05",
                  "reason": "take profit"}  # fmt: skip
CREATE_STOP: dict[str, Any] = {"user_id": USER, "exchange": "okx", "symbol": SYMBOL, "side": "long", "activation_price": 50000,
               "callback_rate": 0.02, "size": 0.1}  # fmt: skip
CREATE_RULE: dict[str, Any] = {"user_id": USER, "exchange": "okx", "trigger_order_id": "order_A",
               "cancel_order_ids": ["order_B", "order_C"], "condition": "filled"}  # fmt: skip
ACTIVATE: dict[str, Any] = {"exchanges": ["okx", "binance"]}
CREDENTIALS: dict[str, Any] = {
    "api_key": "your-okx-api-key",
    "secret": "your-okx-secret",
    "passphrase": "your-okx-passphrase",
}
