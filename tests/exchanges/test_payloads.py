"""Unit tests of the pieces under the gateways: payload parsers (units and sign traps), market conversion,
error mapping, client order ids and the stream pump. No sockets."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal as D
from typing import Any

import ccxt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from position_order_service.domain.enums import (
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    PositionStatus,
    TimeInForce,
)
from position_order_service.domain.market import MarketInfo
from position_order_service.domain.reconcile import SIZE_UNKNOWN, needs_size
from position_order_service.exchanges.base import (
    AuthenticationFailed,
    ExchangeUnavailable,
    GatewayError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    StreamDisconnected,
)
from position_order_service.exchanges.binance import params as bn_params
from position_order_service.exchanges.binance import parse as bn
from position_order_service.exchanges.common import dec, fmt, ms_to_dt
from position_order_service.exchanges.errors import map_ccxt_error, scrub
from position_order_service.exchanges.markets import MarketTable, UnknownSymbol, market_info_from_ccxt
from position_order_service.exchanges.okx import params as okx_params
from position_order_service.exchanges.okx import parse as okx
from position_order_service.exchanges.streams import MergedStream

OKX_BTC = MarketInfo(
    "BTC-USDT-SWAP", "BTC/USDT:USDT", "BTC", "USDT", "USDT", D("0.1"), D("0.0001"), D("0.0001"), D("0.01"),
    max_leverage=100,
)  # fmt: skip
BN_BTC = MarketInfo(
    "BTCUSDT", "BTC/USDT:USDT", "BTC", "USDT", "USDT", D("0.1"), D("0.001"), D("0.001"), min_notional=D("100")
)


# ---------------------------------------------------------------- OKX


def test_okx_order_converts_contracts_and_flips_the_fee_sign() -> None:
    raw = {
        "instId": "BTC-USDT-SWAP", "ordId": "1", "clOrdId": "abc", "ordType": "limit", "side": "buy",
        "posSide": "net", "sz": "10", "px": "59000.5", "accFillSz": "4", "avgPx": "59000.5",
        "state": "partially_filled", "fee": "-1.18001", "feeCcy": "USDT", "reduceOnly": "false",
        "cTime": "1700000000123", "uTime": "1700000000456",
    }  # fmt: skip
    o = okx.parse_order(raw, OKX_BTC, "u")
    assert (o.quantity, o.filled_qty, o.price) == (D("0.1"), D("0.04"), D("59000.5"))
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.order_type is OrderType.LIMIT
    assert o.fee == D("1.18001") and o.fee_currency == "USDT"
    assert o.created_at == ms_to_dt(1700000000123) and o.created_at.tzinfo is not None
    assert o.position_side is None and not o.reduce_only


def test_okx_rebate_is_not_a_negative_fee() -> None:
    raw = {"instId": "BTC-USDT-SWAP", "ordId": "1", "ordType": "post_only", "side": "sell", "sz": "1",
           "px": "60000", "accFillSz": "1", "avgPx": "60000", "state": "filled", "fee": "0.12"}  # fmt: skip
    o = okx.parse_order(raw, OKX_BTC, "u")
    assert o.fee == 0 and o.metadata["fee_rebate"] == "0.12"
    assert o.post_only and o.time_in_force is TimeInForce.POST_ONLY


def test_okx_fill_fee_is_positive_cost_and_size_in_base() -> None:
    raw = {"instId": "BTC-USDT-SWAP", "ordId": "9", "clOrdId": "c", "tradeId": "77", "fillPx": "60000.1",
           "fillSz": "10", "fillFee": "-3.000005", "fillFeeCcy": "USDT", "execType": "T", "side": "buy",
           "posSide": "long", "fillTime": "1700000000000"}  # fmt: skip
    f = okx.parse_fill(raw, OKX_BTC)
    assert f is not None
    assert (f.size, f.price, f.fee, f.liquidity) == (D("0.1"), D("60000.1"), D("3.000005"), "taker")
    assert f.position_side is PositionSide.LONG
    assert okx.parse_fill({**raw, "tradeId": ""}, OKX_BTC) is None  # an order update without a trade
    assert f.exchange_time and f.timestamp == ms_to_dt("1700000000000")
    untimed = okx.parse_fill({k: v for k, v in raw.items() if k != "fillTime"}, OKX_BTC)
    assert (
        untimed is not None and not untimed.exchange_time
    )  # our clock stands in: it never moves a fill mark


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"ordType": "conditional", "slTriggerPx": "59000", "slOrdPx": "-1", "reduceOnly": "true"},
            OrderType.STOP_LOSS,
        ),
        ({"ordType": "conditional", "slTriggerPx": "59000", "slOrdPx": "-1"}, OrderType.STOP_MARKET),
        ({"ordType": "conditional", "slTriggerPx": "59000", "slOrdPx": "58900"}, OrderType.STOP_LIMIT),
        ({"ordType": "conditional", "tpTriggerPx": "61000", "tpOrdPx": "-1"}, OrderType.TAKE_PROFIT),
        ({"ordType": "trigger", "triggerPx": "61000", "ordPx": "-1"}, OrderType.TRIGGER),
        (
            {"ordType": "move_order_stop", "callbackRatio": "0.02", "activePx": "61000"},
            OrderType.TRAILING_STOP,
        ),
    ],
)
def test_okx_algo_types(fields: dict[str, str], expected: OrderType) -> None:
    raw = {"instId": "BTC-USDT-SWAP", "algoId": "5", "algoClOrdId": "a1", "side": "sell", "posSide": "net",
           "sz": "10", "state": "live", **fields}  # fmt: skip
    o = okx.parse_order(raw, OKX_BTC, "u")
    assert o.order_type is expected and o.metadata["algo"] is True
    assert o.exchange_order_id == "5" and o.client_order_id == "a1" and o.quantity == D("0.1")
    if expected is OrderType.TRAILING_STOP:
        assert o.callback_rate == D("0.02")  # OKX callbackRatio is already a fraction
        assert o.metadata["activation_price"] == "61000"
    if expected is OrderType.STOP_LIMIT:
        assert o.price == D("58900")
    if expected is OrderType.TRIGGER:
        assert o.price is None  # "-1" = market


def test_okx_oco_and_triggered_algo() -> None:
    raw = {"instId": "BTC-USDT-SWAP", "algoId": "5", "ordType": "oco", "side": "sell", "posSide": "long",
           "sz": "10", "state": "effective", "slTriggerPx": "59000", "slOrdPx": "-1", "tpTriggerPx": "62000",
           "tpOrdPx": "-1", "actualSide": "tp", "ordId": "900", "triggerTime": "1700000000000"}  # fmt: skip
    o = okx.parse_algo(raw, OKX_BTC, "u")
    assert o.order_type is OrderType.STOP_LOSS and o.trigger_price == D("59000")
    assert o.metadata["take_profit_price"] == "62000" and o.metadata["triggered_leg"] == "tp"
    assert o.status is OrderStatus.FILLED and o.filled_qty == o.quantity == D("0.1")
    assert o.metadata["child_order_id"] == "900" and o.reduce_only  # sell on the long side closes it


def test_okx_close_all_algo_without_a_size_is_marked_as_such() -> None:
    """closeFraction=1: no ``sz``. Live, or fired without a usable actualSz, the minimum stands in, marked
    SIZE_UNKNOWN (the gateway reads a fired one's size from its child); a fired one with actualSz has it."""
    raw = {"instId": "BTC-USDT-SWAP", "algoId": "7", "ordType": "conditional", "side": "sell", "posSide": "net",
           "sz": "", "closeFraction": "1", "reduceOnly": "true", "state": "live", "slTriggerPx": "59000",
           "slOrdPx": "-1", "actualSz": ""}  # fmt: skip
    live = okx.parse_algo(raw, OKX_BTC, "u")
    assert live.status is OrderStatus.OPEN and live.quantity == OKX_BTC.min_size and live.filled_qty == 0
    assert live.metadata["close_position"] and live.metadata[SIZE_UNKNOWN] and not needs_size(live)
    for actual in ("0", ""):
        fired = okx.parse_algo(
            {**raw, "state": "effective", "ordId": "900", "actualSz": actual}, OKX_BTC, "u"
        )
        assert fired.status is OrderStatus.FILLED and fired.metadata[SIZE_UNKNOWN] and needs_size(fired)
        assert fired.metadata["child_order_id"] == "900"
    sized = okx.parse_algo({**raw, "state": "effective", "ordId": "900", "actualSz": "3"}, OKX_BTC, "u")
    assert sized.filled_qty == sized.quantity == D("0.03") and SIZE_UNKNOWN not in sized.metadata
    assert not needs_size(sized)


def test_okx_positions_net_hedge_and_flat() -> None:
    base = {"instId": "BTC-USDT-SWAP", "avgPx": "60000", "markPx": "60100", "upl": "1", "lever": "10",
            "mgnMode": "cross", "liqPx": "54000", "fee": "-3", "pnl": "0", "cTime": "1", "uTime": "2"}  # fmt: skip
    short = okx.parse_position({**base, "posSide": "net", "pos": "-20"}, OKX_BTC, "u")
    assert short is not None and short.side is PositionSide.SHORT and short.size == D("0.2")
    assert short.pnl.fees == D("3") and short.leverage == 10 and short.current_price == D("60100")
    hedge = okx.parse_position({**base, "posSide": "long", "pos": "5"}, OKX_BTC, "u")
    assert hedge is not None and hedge.side is PositionSide.LONG and hedge.size == D("0.05")
    flat = okx.parse_position({**base, "posSide": "net", "pos": "0", "avgPx": ""}, OKX_BTC, "u", "long")
    assert flat is not None and flat.status is PositionStatus.CLOSED and flat.closed_at is not None
    assert okx.parse_position({**base, "posSide": "net", "pos": "0"}, OKX_BTC, "u") is None


def test_okx_order_params_units() -> None:
    from position_order_service.domain.market import OrderRequest

    trail = OrderRequest("BTC-USDT-SWAP", OrderSide.SELL, OrderType.TRAILING_STOP, D("0.1"), "c1",
                         callback_rate=D("0.015"), activation_price=D("61000"), reduce_only=True)  # fmt: skip
    kind, amount, price, params = okx_params.order_params(trail, OKX_BTC.to_contracts(D("0.1")), "c1", None)
    assert (kind, amount, price) == ("market", "10", None)
    assert params["trailingPercent"] == "1.5"  # percent for ccxt, which sends callbackRatio 0.015
    assert params["activePx"] == "61000" and params["reduceOnly"] is True and params["algoClOrdId"] == "c1"
    hedged = okx_params.order_params(trail, D(10), "c1", PositionSide.LONG)[3]
    assert hedged["positionSide"] == "long" and "reduceOnly" not in hedged


# ---------------------------------------------------------------- Binance


def test_binance_ws_order_and_fill() -> None:
    o = {"s": "BTCUSDT", "c": "c1", "S": "BUY", "o": "LIMIT", "f": "GTX", "q": "0.2", "p": "59000", "ap": "59000",
         "sp": "0", "x": "TRADE", "X": "PARTIALLY_FILLED", "i": 42, "l": "0.1", "z": "0.1", "L": "59000",
         "T": 1700000000000, "t": 7, "m": True, "R": False, "ps": "BOTH", "N": "USDT", "n": "1.18"}  # fmt: skip
    order = bn.parse_order(o, BN_BTC, "u", (D("1.18"), "USDT"))
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.exchange_order_id == "42"
    assert (order.quantity, order.filled_qty, order.fee) == (D("0.2"), D("0.1"), D("1.18"))
    assert order.post_only and order.time_in_force is TimeInForce.POST_ONLY
    fill = bn.parse_fill(o, BN_BTC)
    assert fill is not None and (fill.trade_id, fill.size, fill.fee, fill.liquidity) == (
        "7",
        D("0.1"),
        D("1.18"),
        "maker",
    )
    assert bn.parse_fill({**o, "x": "NEW"}, BN_BTC) is None
    assert fill.exchange_time
    untimed = bn.parse_fill({k: v for k, v in o.items() if k != "T"}, BN_BTC)
    assert untimed is not None and not untimed.exchange_time
    trade = bn.parse_trade({"id": 8, "orderId": 42, "side": "BUY", "qty": "0.1", "price": "59000"}, BN_BTC)
    assert trade is not None and not trade.exchange_time


def test_binance_algo_update_trailing_percent_to_fraction() -> None:
    o = {"caid": "c2", "aid": 1000, "at": "CONDITIONAL", "o": "TRAILING_STOP_MARKET", "s": "BTCUSDT", "S": "SELL",
         "ps": "BOTH", "q": "0.1", "X": "TRIGGERED", "ai": "55", "tp": "60760", "p": "0", "R": True,
         "AP": "61000", "cr": "2", "tt": 1700000000000, "T": 1700000000000}  # fmt: skip
    a = bn.parse_order(o, BN_BTC, "u")
    assert a.order_type is OrderType.TRAILING_STOP and a.callback_rate == D("0.02")
    assert a.metadata["activation_price"] == "61000" and a.metadata["child_order_id"] == "55"
    assert a.status is OrderStatus.FILLED and a.client_order_id == "c2" and a.reduce_only


@pytest.mark.parametrize(
    ("kind", "reduce_only", "price", "expected"),
    [
        ("STOP_MARKET", True, "0", OrderType.STOP_LOSS),
        ("STOP_MARKET", False, "0", OrderType.STOP_MARKET),
        ("STOP", False, "58000", OrderType.STOP_LIMIT),
        ("TAKE_PROFIT_MARKET", True, "0", OrderType.TAKE_PROFIT),
    ],
)
def test_binance_rest_algo_types(kind: str, reduce_only: bool, price: str, expected: OrderType) -> None:
    raw = {"algoId": 3, "clientAlgoId": "x", "algoType": "CONDITIONAL", "orderType": kind, "symbol": "BTCUSDT",
           "side": "SELL", "positionSide": "BOTH", "quantity": "0.002", "algoStatus": "NEW",
           "triggerPrice": "59000.00", "price": price, "reduceOnly": reduce_only, "createTime": 1700000000000}  # fmt: skip
    a = bn.parse_order(raw, BN_BTC, "u")
    assert a.order_type is expected and a.trigger_price == D("59000") and a.status is OrderStatus.OPEN


def test_binance_close_position_algo_takes_the_executed_size_of_its_update() -> None:
    """closePosition=true: no quantity. TRIGGERED (child working, ``aq`` 0) and the REST view (no executed size)
    are SIZE_UNKNOWN; FINISHED carries what the child executed (``aq``, ``ap``): that is the algo's fill."""
    o = {"caid": "c3", "aid": 1001, "at": "CONDITIONAL", "o": "STOP_MARKET", "s": "BTCUSDT", "S": "SELL",
         "ps": "BOTH", "q": "", "X": "TRIGGERED", "ai": "56", "ap": "", "aq": "0", "tp": "59000", "p": "",
         "cp": True, "R": False, "tt": 1700000000000, "T": 1700000000000}  # fmt: skip
    triggered = bn.parse_order(o, BN_BTC, "u")
    assert triggered.metadata["close_position"] and needs_size(triggered)
    assert triggered.metadata["child_order_id"] == "56" and triggered.reduce_only
    # a TRIGGERED update's executed size may be part of the child's fill: not taken as the algo's size
    partial = bn.parse_order({**o, "aq": "0.01", "ap": "58890"}, BN_BTC, "u")
    assert needs_size(partial) and partial.filled_qty == BN_BTC.min_size
    finished = bn.parse_order({**o, "X": "FINISHED", "aq": "0.03", "ap": "58890"}, BN_BTC, "u")
    assert finished.status is OrderStatus.FILLED and not needs_size(finished)
    assert (finished.quantity, finished.filled_qty, finished.avg_fill_price) == (
        D("0.03"),
        D("0.03"),
        D("58890"),
    )
    assert SIZE_UNKNOWN not in finished.metadata
    rest = {"algoId": 1001, "clientAlgoId": "c3", "algoType": "CONDITIONAL", "orderType": "STOP_MARKET",
            "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH", "quantity": "", "algoStatus": "FINISHED",
            "triggerPrice": "59000", "price": "", "closePosition": True, "reduceOnly": False,
            "actualOrderId": "56", "actualPrice": "58890", "createTime": 1700000000000,
            "updateTime": 1700000000000}  # fmt: skip
    assert needs_size(bn.parse_order(rest, BN_BTC, "u"))


def test_binance_positions_and_balance() -> None:
    p = bn.parse_position({"s": "BTCUSDT", "pa": "-0.3", "ep": "60000", "up": "-3", "mt": "isolated", "ps": "BOTH"},
                          BN_BTC, "u", None, 7)  # fmt: skip
    assert p is not None and p.side is PositionSide.SHORT and p.size == D("0.3") and p.leverage == 7
    assert p.margin_mode.value == "isolated"
    flat = bn.parse_position({"symbol": "BTCUSDT", "positionAmt": "0", "positionSide": "LONG"}, BN_BTC, "u")
    assert flat is not None and flat.side is PositionSide.LONG and flat.status is PositionStatus.CLOSED
    assert bn.parse_balance({"assets": [{"asset": "USDT", "marginBalance": "100.5"}]}) == {"USDT": D("100.5")}
    assert okx.parse_balance({"data": [{"details": [{"ccy": "USDT", "eq": "7.25"}]}]}) == {"USDT": D("7.25")}


# ---------------------------------------------------------------- markets


def test_market_info_from_ccxt_okx_and_binance() -> None:
    okx_market = {"id": "BTC-USDT-SWAP", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "settle": "USDT",
                  "contract": True, "linear": True, "swap": True, "contractSize": 0.01,
                  "info": {"instId": "BTC-USDT-SWAP", "ctVal": "0.01", "lotSz": "0.01", "minSz": "0.01",
                           "tickSz": "0.1", "lever": "100"}}  # fmt: skip
    m = market_info_from_ccxt("okx", okx_market)
    assert m is not None and (m.lot_size, m.min_size, m.contract_value) == (
        D("0.0001"),
        D("0.0001"),
        D("0.01"),
    )
    assert m.max_leverage == 100 and str(m.tick_size) == "0.1"
    bn_market = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "settle": "USDT",
                 "contract": True, "linear": True, "swap": True,
                 "info": {"symbol": "BTCUSDT", "filters": [
                     {"filterType": "PRICE_FILTER", "tickSize": "0.10"},
                     {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001"},
                     {"filterType": "MIN_NOTIONAL", "notional": "100"}]}}  # fmt: skip
    b = market_info_from_ccxt("binance", bn_market)
    assert b is not None and str(b.tick_size) == "0.1" and b.min_notional == 100 and b.contract_value == 1
    assert market_info_from_ccxt("okx", {**okx_market, "contract": False}) is None  # spot is not traded
    table = MarketTable("okx", "", [m])
    assert table["BTC/USDT:USDT"] is table["BTC-USDT-SWAP"] is table["btc-usdt-swap"]
    with pytest.raises(UnknownSymbol) as err:
        table["ETH-USDT-SWAP"]
    assert isinstance(err.value, KeyError) and isinstance(err.value, InvalidOrder)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ccxt.AuthenticationError('okx {"code":"50113","msg":"Invalid Sign"}'), AuthenticationFailed),
        (ccxt.PermissionDenied("binanceusdm denied"), AuthenticationFailed),
        (
            ccxt.InsufficientFunds('binanceusdm {"code":-2019,"msg":"Margin is insufficient."}'),
            InsufficientFunds,
        ),
        (
            ccxt.OrderNotFound('okx {"code":"1","data":[{"sCode":"51603","sMsg":"Order does not exist"}]}'),
            OrderNotFound,
        ),
        (ccxt.InvalidOrder("okx bad size"), InvalidOrder),
        (ccxt.BadSymbol("okx no such instrument"), InvalidOrder),
        (ccxt.RequestTimeout("okx POST timed out"), ExchangeUnavailable),
        (ccxt.ExchangeNotAvailable("okx 503"), ExchangeUnavailable),
        (ccxt.NetworkError("closed"), ExchangeUnavailable),
        (ccxt.ExchangeError("okx something else"), GatewayError),
        (ConnectionResetError("reset"), ExchangeUnavailable),
    ],
)
def test_ccxt_errors_map_to_gateway_errors(exc: Exception, expected: type[GatewayError]) -> None:
    mapped = map_ccxt_error(exc)
    assert type(mapped) is expected


def test_error_reason_and_code_are_the_exchanges_and_secret_free() -> None:
    e = map_ccxt_error(ccxt.InsufficientFunds('binanceusdm {"code":-2019,"msg":"Margin is insufficient."}'))
    assert (e.reason, e.code) == ("Margin is insufficient.", "-2019")
    e = map_ccxt_error(
        ccxt.OrderNotFound(
            'okx {"code":"1","data":[{"sCode":"51603","sMsg":"Order does not exist"}],"msg":""}'
        )
    )
    assert (e.reason, e.code) == ("Order does not exist", "51603")
    stream = map_ccxt_error(ccxt.NetworkError("Connection closed by remote server"), stream=True)
    assert isinstance(stream, StreamDisconnected)
    leaked = ccxt.RequestTimeout(
        "binanceusdm GET http://h/fapi/v1/order?symbol=X&timestamp=1&signature=deadbeef00 s3cr3tvalue"
    )
    reason = map_ccxt_error(leaked, secrets=["s3cr3tvalue"]).reason
    assert "deadbeef00" not in reason and "s3cr3tvalue" not in reason
    assert scrub('{"apiKey":"abcd1234","sign":"xyz"}') == '{"apiKey":"***","sign":"***"}'


# ---------------------------------------------------------------- ids and numbers


@given(st.text(min_size=1, max_size=80))
def test_client_order_ids_are_valid_and_stable(cid: str) -> None:
    o = okx_params.CLIENT_IDS.apply(cid)
    b = bn_params.CLIENT_IDS.apply(cid)
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", o) and o == okx_params.CLIENT_IDS.apply(cid)
    assert re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", b) and b == bn_params.CLIENT_IDS.apply(cid)


def test_valid_client_order_ids_pass_unchanged() -> None:
    assert okx_params.CLIENT_IDS.apply("abcDEF123") == "abcDEF123"
    assert (
        okx_params.CLIENT_IDS.apply("0b7c2c4e-5d9f-4a41-8c35-7f0e1f6d2a10")
        == "0b7c2c4e5d9f4a418c357f0e1f6d2a10"
    )
    assert bn_params.CLIENT_IDS.apply("x-abc_1.2:3/4") == "x-abc_1.2:3/4"
    long_dashed = "a-" * 19  # 38 characters: Binance allows dashes, so it is hashed, never undashed
    assert bn_params.CLIENT_IDS.apply(long_dashed).startswith("h")


def test_decimals_never_go_through_binary_floats() -> None:
    assert dec("0.1") == D("0.1") and dec(0.1) == D("0.1") and dec("") is None and dec("x") is None
    assert dec(True) is None and dec(float("nan")) is None
    assert fmt(D("1E+1")) == "10" and fmt(D("0.100")) == "0.1" and fmt(D("100")) == "100"


# ---------------------------------------------------------------- the stream pump


class _Source:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


async def test_merged_stream_batches_and_keeps_watches_armed() -> None:
    a, b = _Source(), _Source()
    stream = MergedStream([a, b])
    a.queue.put_nowait([1])
    assert await stream.next() == [[1]]
    a.queue.put_nowait([2])
    b.queue.put_nowait([3])
    await asyncio.sleep(0.01)  # both arrive while nobody is waiting: still delivered, in one batch
    assert sorted(x[0] for x in await stream.next()) == [2, 3]
    assert a.calls >= 3 and b.calls >= 2  # re-armed after each result
    await stream.close()


async def test_merged_stream_reports_a_shared_drop_once_and_recovers() -> None:
    a, b = _Source(), _Source()
    stream = MergedStream([a, b], grace_s=0.2)
    pending = asyncio.create_task(stream.next())
    await asyncio.sleep(0.01)
    a.queue.put_nowait(ccxt.NetworkError("a dropped"))
    await asyncio.sleep(0.01)
    b.queue.put_nowait(ccxt.NetworkError("b dropped"))
    with pytest.raises(ccxt.NetworkError, match="a dropped"):
        await pending
    nxt = asyncio.create_task(stream.next())  # both restart; b's error was folded into the first report
    await asyncio.sleep(0.01)
    b.queue.put_nowait(["ok"])
    assert await asyncio.wait_for(nxt, 1) == [["ok"]]
    await stream.close()


async def test_conflated_stream_keeps_the_newest() -> None:
    a = _Source()
    stream = MergedStream([a], conflate=True)
    pending = asyncio.create_task(stream.next())
    await asyncio.sleep(0.01)
    assert a.calls == 1
    for i in range(3):
        a.queue.put_nowait(i)
    await asyncio.sleep(0.01)
    assert await pending in ([0], [2])
    await stream.close()
