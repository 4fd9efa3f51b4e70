from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from position_order_service.domain import (
    Exchange,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    PnLInfo,
    Position,
    PositionSide,
    PositionStatus,
)
from position_order_service.domain.models import new_id


def test_migration_guide_position_check() -> None:
    position = Position(
        user_id="test",
        exchange=Exchange.OKX,
        symbol="BTC-USDT-SWAP",
        side=PositionSide.LONG,
        size=Decimal("0.1"),
        entry_price=Decimal("45000"),
    )
    assert position.notional_value == Decimal("4500")
    assert position.is_open is True


def test_notional_uses_current_price_when_known() -> None:
    p = Position(
        user_id="u", exchange="okx", symbol="X", side="long", size="2", entry_price="10", current_price="12"
    )
    assert p.notional_value == Decimal("24")


def test_pnl_net_and_percentage() -> None:
    pnl = PnLInfo(realized=Decimal("10"), unrealized=Decimal("-4"), fees=Decimal("1.5"))
    assert pnl.net == Decimal("4.5")
    p = Position(
        user_id="u",
        exchange="okx",
        symbol="X",
        side="long",
        size="1",
        entry_price="100",
        leverage=10,
        pnl=PnLInfo(unrealized=Decimal("5")),
    )
    assert p.pnl_percentage == Decimal("50")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("canceled", OrderStatus.CANCELLED),
        ("cancelled", OrderStatus.CANCELLED),
        ("closed", OrderStatus.FILLED),
        ("live", OrderStatus.OPEN),
        ("partially_filled", OrderStatus.PARTIALLY_FILLED),
        ("NEW", OrderStatus.OPEN),
        ("expired", OrderStatus.EXPIRED),
    ],
)
def test_exchange_status_spellings(raw: str, expected: OrderStatus) -> None:
    assert OrderStatus(raw) is expected


def test_other_spellings() -> None:
    assert PositionSide("buy") is PositionSide.LONG
    assert PositionSide("SHORT") is PositionSide.SHORT
    assert OrderSide("SELL") is OrderSide.SELL
    assert Exchange("binanceusdm") is Exchange.BINANCE
    assert OrderType("TRAILING_STOP_MARKET") is OrderType.TRAILING_STOP
    assert OrderType("stop") is OrderType.STOP_MARKET
    with pytest.raises(ValueError):
        OrderStatus("bogus")


def _order(**kw: object) -> Order:
    base: dict[str, object] = {
        "user_id": "u",
        "exchange": "okx",
        "symbol": "BTC-USDT-SWAP",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "price": "100",
    }
    base.update(kw)
    return Order.model_validate(base)


def test_order_computed_fields() -> None:
    o = _order(filled_qty="0.25", status="partially_filled")
    assert o.remaining_qty == Decimal("0.75")
    assert o.fill_percentage == Decimal("25")
    assert o.is_active and not o.is_filled


def test_order_cross_field_rules_name_the_field() -> None:
    with pytest.raises(ValidationError, match="filled_qty"):
        _order(filled_qty="2")
    with pytest.raises(ValidationError, match="price is required"):
        _order(price=None)
    with pytest.raises(ValidationError, match="trigger_price is required"):
        _order(order_type="stop_market", price=None)
    with pytest.raises(ValidationError, match="callback_rate"):
        _order(order_type="trailing_stop", price=None)
    with pytest.raises(ValidationError, match="filled order"):
        _order(status="filled", filled_qty="0.5")


@pytest.mark.parametrize(
    ("field", "value"),
    [("quantity", "-1"), ("quantity", "abc"), ("price", "0"), ("quantity", "NaN"), ("quantity", True)],
)
def test_invalid_numbers_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        _order(**{field: value})
    assert field in str(err.value)


def test_floats_are_read_by_their_repr_not_binary_value() -> None:
    o = _order(quantity=0.1, price=45000.1)
    assert o.quantity == Decimal("0.1")
    assert o.price == Decimal("45000.1")


def test_leverage_bounds_and_grid_level() -> None:
    kw: dict[str, object] = {
        "user_id": "u",
        "exchange": "okx",
        "symbol": "X",
        "side": "long",
        "size": "1",
        "entry_price": "1",
    }
    with pytest.raises(ValidationError, match="leverage"):
        Position.model_validate({**kw, "leverage": 126})
    with pytest.raises(ValidationError, match="grid_level"):
        Position.model_validate({**kw, "grid_level": 21})
    Position.model_validate({**kw, "leverage": 125, "grid_level": 20})


def test_times_are_tz_aware_utc() -> None:
    kst = timezone(timedelta(hours=9))
    o = _order(created_at=datetime(2026, 1, 1, 9, 0, tzinfo=kst))
    assert o.created_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert o.created_at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match="timezone-aware"):
        _order(created_at=datetime(2026, 1, 1))


def test_position_status_consistency() -> None:
    with pytest.raises(ValidationError, match="closed_at"):
        Position(
            user_id="u",
            exchange="okx",
            symbol="X",
            side="long",
            size="0",
            entry_price="1",
            status=PositionStatus.OPEN,
            closed_at=datetime.now(UTC),
        )


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="sizee"):
        _order(sizee="1")


def test_new_ids_are_distinct_random_uuids() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        u = uuid.UUID(hex=i)
        assert (u.hex, u.version, u.variant) == (i, 4, uuid.RFC_4122)
