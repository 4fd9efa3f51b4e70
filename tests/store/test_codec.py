from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from position_order_service.domain import Order, OrderType, PnLInfo, Position
from position_order_service.domain.events import order_fields
from position_order_service.store.codec import CorruptRecord
from position_order_service.store.repositories import ORDER_CODEC, POSITION_CODEC

decimals = st.decimals(min_value="0.00000001", max_value="1000000", places=8)
opt_decimals = st.none() | decimals
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
meta = st.dictionaries(
    st.text(max_size=8), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.booleans(), max_size=3
)

positions = st.builds(
    Position,
    user_id=st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != ""),
    exchange=st.sampled_from(["okx", "binance"]),
    symbol=st.sampled_from(["BTC-USDT-SWAP", "ETHUSDT"]),
    side=st.sampled_from(["long", "short"]),
    size=decimals,
    entry_price=decimals,
    current_price=opt_decimals,
    leverage=st.integers(1, 125),
    liquidation_price=opt_decimals,
    stop_loss_price=opt_decimals,
    grid_level=st.none() | st.integers(0, 20),
    pnl=st.builds(PnLInfo, realized=decimals, unrealized=decimals.map(lambda d: -d), fees=decimals),
    metadata=meta,
    created_at=times,
    updated_at=times,
)

orders = st.builds(
    Order,
    user_id=st.just("u1"),
    exchange=st.sampled_from(["okx", "binance"]),
    symbol=st.just("BTC-USDT-SWAP"),
    side=st.sampled_from(["buy", "sell"]),
    order_type=st.sampled_from([OrderType.LIMIT, OrderType.STOP_LIMIT]),
    quantity=decimals,
    price=decimals,
    trigger_price=decimals,
    client_order_id=st.none() | st.text(min_size=1, max_size=32),
    reduce_only=st.booleans(),
    grid_level=st.none() | st.integers(0, 20),
    metadata=meta,
    created_at=times,
)


@given(positions)
def test_position_round_trip(p: Position) -> None:
    enc = POSITION_CODEC.encode(p)
    assert all((isinstance(v, str) and v != "") or k == "user_id" for k, v in enc.items())
    assert POSITION_CODEC.decode("k", enc) == p


@given(orders)
def test_order_round_trip(o: Order) -> None:
    enc = ORDER_CODEC.encode(o)
    assert ORDER_CODEC.decode("k", {k.encode(): v.encode() for k, v in enc.items()}) == o


def test_encoding_shape() -> None:
    p = Position(
        user_id="u",
        exchange="okx",
        symbol="BTC-USDT-SWAP",
        side="long",
        size=Decimal("0.10"),
        entry_price=Decimal("45000.0"),
        pnl=PnLInfo(realized=Decimal("1.5")),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    enc = POSITION_CODEC.encode(p)
    assert enc["size"] == "0.1"  # one spelling per number: equal values, equal strings (issue 16)
    assert enc["realized_pnl"] == "1.5" and enc["entry_price"] == "45000"
    assert enc["created_at"] == "2026-01-01T00:00:00+00:00"
    assert enc["exchange"] == "okx"
    assert enc["external"] == "false"
    assert "current_price" not in enc  # None is an absent field, never ""
    assert enc["metadata"] == "{}"


def _valid_position_hash() -> dict[str, str]:
    return POSITION_CODEC.encode(
        Position(user_id="u", exchange="okx", symbol="X", side="long", size="1", entry_price="2")
    )


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("size", None, "is missing"),
        ("size", "abc", "not a decimal"),
        ("created_at", "yesterday", "ISO-8601"),
        ("external", "maybe", "'true' or 'false'"),
        ("metadata", "{not json", "not valid JSON"),
        ("leverage", "ten", "not an integer"),
        ("side", "sideways", "side"),
    ],
)
def test_corrupt_hash_names_key_and_field(field: str, value: str | None, problem: str) -> None:
    raw = _valid_position_hash()
    if value is None:
        del raw[field]
    else:
        raw[field] = value
    with pytest.raises(CorruptRecord) as err:
        POSITION_CODEC.decode("positions:realtime:u:okx:X:long", raw)
    assert "positions:realtime:u:okx:X:long" in str(err.value)
    assert field in str(err.value)
    assert problem in str(err.value)


@given(
    price=st.none() | decimals,
    trigger=st.none() | decimals,
    filled=st.sampled_from(["0", "0.5", "1"]),
    cid=st.none() | st.text("abc123", min_size=1, max_size=8),
    position_side=st.none() | st.sampled_from(["long", "short"]),
    grid=st.none() | st.integers(0, 20),
    reduce_only=st.booleans(),
)
def test_an_order_event_from_the_stored_spellings_is_the_same_bytes(
    price: Decimal | None,
    trigger: Decimal | None,
    filled: str,
    cid: str | None,
    position_side: str | None,
    grid: int | None,
    reduce_only: bool,
) -> None:
    """The store builds an order's event from the fields it encoded (issue 15: no second formatting pass):
    the payload is byte for byte the one built from the order itself."""
    o = Order.model_validate(
        {
            "user_id": "u1", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "exchange_order_id": "1",
            "client_order_id": cid, "side": "buy", "order_type": "limit" if price is not None else "market",
            "quantity": "1", "price": price, "trigger_price": trigger, "filled_qty": filled,
            "avg_fill_price": "100.50" if filled != "0" else None, "position_side": position_side,
            "grid_level": grid, "reduce_only": reduce_only, "fee": "0.0100",
        }
    )  # fmt: skip
    spelled = ORDER_CODEC.encode(o)
    assert orjson.dumps(order_fields(o, spelled)) == orjson.dumps(order_fields(o))


def test_a_spelling_follows_its_value_not_an_equal_value_spelled_before() -> None:
    """The encoder remembers spellings by value: an equal number has the one canonical spelling whatever its
    exponent, and an equal instant outside UTC (a record built without validation) keeps its own offset."""
    t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    base = Order(user_id="u", exchange="okx", symbol="X", side="buy", order_type="limit", quantity="2.50",
                 price="100", created_at=t, updated_at=t)  # fmt: skip
    assert ORDER_CODEC.encode(base)["quantity"] == "2.5"
    assert ORDER_CODEC.encode(base.model_copy(update={"quantity": Decimal("2.5000")}))["quantity"] == "2.5"
    elsewhere = t.astimezone(timezone(timedelta(hours=2)))
    moved = Order.model_construct(**{**dict(base), "created_at": elsewhere, "updated_at": elsewhere})
    enc = ORDER_CODEC.encode(moved)
    assert enc["created_at"] == "2026-03-01T14:00:00+02:00" == elsewhere.isoformat()
    assert ORDER_CODEC.encode(base)["created_at"] == "2026-03-01T12:00:00+00:00"
