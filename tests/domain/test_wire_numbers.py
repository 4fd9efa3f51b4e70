"""Numbers on the wire (issue 12 item 15): decimals are plain strings, never exponent notation; percentages
have 2 decimals."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from position_order_service.domain import Order, Position
from position_order_service.domain.trailing import TrailingStop

EXPONENT = re.compile(r"\d[eE][+-]?\d")


def test_an_unfilled_order_says_0_percent_not_0e1() -> None:
    o = Order(id="o1", user_id="u", exchange="okx", symbol="BTC-USDT-SWAP", side="buy", order_type="limit",
              quantity="0.1", price="59000", fee=Decimal("0E-8"))  # fmt: skip
    out = o.model_dump(mode="json")
    assert out["fill_percentage"] == "0.00"
    assert out["fee"] == "0.00000000" and out["remaining_qty"] == "0.1"
    assert not EXPONENT.search(o.model_dump_json())


def test_percentages_have_two_decimals() -> None:
    o = Order(id="o1", user_id="u", exchange="okx", symbol="BTC-USDT-SWAP", side="buy", order_type="limit",
              quantity="0.3", price="59000", filled_qty="0.1", status="partially_filled")  # fmt: skip
    assert o.model_dump(mode="json")["fill_percentage"] == "33.33"
    p = Position(user_id="u", exchange="okx", symbol="BTC-USDT-SWAP", side="long", size="0.1",
                 entry_price="45000", leverage=3, pnl={"unrealized": "28.5249524584"})  # fmt: skip
    assert p.model_dump(mode="json")["pnl_percentage"] == "1.90"
    assert json.loads(p.model_dump_json())["pnl_percentage"] == "1.90"


def test_no_field_of_any_model_uses_exponent_notation() -> None:
    tiny = Decimal("1E-7")
    p = Position(id="p1", user_id="u", exchange="okx", symbol="X", side="short", size=tiny, entry_price=Decimal("1E+5"),
                 current_price=Decimal("1.0E+5"), pnl={"realized": Decimal("-0E-3"), "fees": tiny})  # fmt: skip
    s = TrailingStop(id="s1", user_id="u", exchange="okx", symbol="X", side="long", callback_rate=Decimal("2E-2"),
                     extreme_price=Decimal("6E+4"))  # fmt: skip
    for model in (p, s):
        text = model.model_dump_json()
        assert not EXPONENT.search(text), text
    assert p.model_dump(mode="json")["entry_price"] == "100000"
