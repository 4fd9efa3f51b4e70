"""Raw HTTP against the Binance wire front: signing rules, Binance's error codes for unsigned, badly signed
and malformed requests (which must leave the engine untouched), and the public endpoints' shapes."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from position_order_service.sim.binance.auth import AccountKeys, authenticate_signed, strip_signature
from position_order_service.sim.binance.errors import BinanceError
from position_order_service.sim.binance.numbers import fmt
from position_order_service.sim.engine import SimEngine
from position_order_service.sim.server import SimServer
from tests.sim.binance_fixtures import KEY, SECRET, raw, sign, sim

__all__ = ["sim"]

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


def _flip_last(signed: str) -> str:
    return signed[:-1] + ("1" if signed.endswith("0") else "0")


async def _refused(sim: SimServer, method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    """Send a request that must be refused; the engine state must not change."""
    before = sim.ctx.engine.snapshot()
    status, body = await raw(sim, method, path, **kw)
    assert sim.ctx.engine.snapshot() == before
    return status, body


async def test_signed_order_via_body_query_and_mixed(sim: SimServer) -> None:
    status, body = await raw(sim, "POST", "/fapi/v1/order", body=sign(ORDER))
    assert status == 200 and body["status"] == "NEW" and body["type"] == "MARKET"  # ACK by default
    status, body = await raw(
        sim, "POST", "/fapi/v1/order", query=sign({**ORDER, "newOrderRespType": "RESULT"})
    )
    assert status == 200 and body["status"] == "FILLED" and body["executedQty"] == "0.01"
    # Binance "example 3": part in the query, part in the body; signed over query + body concatenated
    query = "symbol=BTCUSDT&side=SELL&type=MARKET"
    rest = f"quantity=0.02&newOrderRespType=RESULT&timestamp={int(time.time() * 1000)}"
    sig = hmac.new(SECRET.encode(), (query + rest).encode(), hashlib.sha256).hexdigest()
    status, body = await raw(sim, "POST", "/fapi/v1/order", query=query, body=f"{rest}&signature={sig}")
    assert status == 200 and body["side"] == "SELL" and body["status"] == "FILLED"
    assert sim.ctx.engine.positions(KEY) == []  # bought 0.01 twice, sold 0.02


@pytest.mark.parametrize(
    ("kw", "status", "code"),
    [
        ({"body": urllib.parse.urlencode({**ORDER, "timestamp": "1"})}, 400, -1102),  # no signature
        ({"body": sign(ORDER), "key": None}, 401, -2014),  # no API key
        ({"body": sign(ORDER), "key": "nobody"}, 401, -2015),  # unknown API key
        ({"body": sign(ORDER, secret="wrong")}, 400, -1022),  # wrong secret
        ({"body": sign({**ORDER, "timestamp": "1700000000000"})}, 400, -1021),  # outside recvWindow
        ({"body": sign({**ORDER, "timestamp": str(int(time.time() * 1000) + 60_000)})}, 400, -1021),
        ({"body": sign({**ORDER, "recvWindow": "70000"})}, 400, -1131),
        ({"body": _flip_last(sign(ORDER))}, 400, -1022),  # tampered signature
        ({"body": sign(ORDER).replace("quantity=0.01", "quantity=0.02")}, 400, -1022),  # tampered params
    ],
)
async def test_auth_failures_use_binance_codes_and_change_nothing(
    sim: SimServer, kw: dict[str, Any], status: int, code: int
) -> None:
    got_status, body = await _refused(sim, "POST", "/fapi/v1/order", **kw)
    assert (got_status, body["code"]) == (status, code)
    assert isinstance(body["msg"], str) and body["msg"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({**ORDER, "quantity": "1e-2"}, -1100),  # exponent: illegal characters
        ({**ORDER, "quantity": "-1"}, -1100),
        ({k: v for k, v in ORDER.items() if k != "quantity"}, -1102),
        ({k: v for k, v in ORDER.items() if k != "symbol"}, -1102),
        ({**ORDER, "symbol": "DOGEUSDT"}, -1121),
        ({**ORDER, "side": "HOLD"}, -1117),
        ({**ORDER, "type": "ICEBERG"}, -1116),
        ({**ORDER, "type": "STOP_MARKET", "stopPrice": "50000"}, -4120),  # conditional types: algo endpoint
        ({**ORDER, "type": "LIMIT", "price": "59000"}, -1102),  # LIMIT without timeInForce
        ({**ORDER, "type": "LIMIT", "price": "59000", "timeInForce": "DAY"}, -1115),
        ({**ORDER, "type": "LIMIT", "price": "59000.05", "timeInForce": "GTC"}, -4014),
        ({**ORDER, "price": "59000"}, -1106),  # price on a MARKET order
        ({**ORDER, "quantity": "0.0105"}, -1111),  # finer than the step size
        ({**ORDER, "quantity": "121"}, -4005),  # above MARKET_LOT_SIZE
        ({**ORDER, "quantity": "0"}, -4003),
        ({**ORDER, "quantity": "0.001"}, -4164),  # notional 60 < MIN_NOTIONAL 100
        ({**ORDER, "positionSide": "LONG"}, -4061),  # one-way account
        ({**ORDER, "positionSide": "UP"}, -1100),
        ({**ORDER, "newClientOrderId": "has space"}, -4015),
        ({**ORDER, "reduceOnly": "maybe"}, -1100),
        ({**ORDER, "reduceOnly": "true"}, -2022),  # nothing to reduce
        ({**ORDER, "quantity": "50"}, -2019),  # margin
    ],
)
async def test_malformed_or_refused_orders_change_nothing(
    sim: SimServer, params: dict[str, str], code: int
) -> None:
    status, body = await _refused(sim, "POST", "/fapi/v1/order", body=sign(params))
    assert status == 400
    assert body["code"] == code, body


async def test_more_malformed_requests(sim: SimServer) -> None:
    dup = sign(ORDER) + "&symbol=ETHUSDT"
    assert (await _refused(sim, "POST", "/fapi/v1/order", body=dup))[1]["code"] in (-1101, -1022)
    as_json = '{"symbol": "BTCUSDT", "side": "BUY"}'
    status, body = await _refused(
        sim, "POST", "/fapi/v1/order", body=as_json, content_type="application/json"
    )
    assert (status, body["code"]) == (400, -1102)
    status, body = await _refused(sim, "DELETE", "/fapi/v1/order", query=sign({"symbol": "BTCUSDT"}))
    assert body["code"] == -1102 and "orderId" in body["msg"]
    status, body = await _refused(
        sim, "DELETE", "/fapi/v1/order", query=sign({"symbol": "BTCUSDT", "orderId": "12"})
    )
    assert (status, body) == (400, {"code": -2011, "msg": "Unknown order sent."})
    status, body = await _refused(
        sim, "GET", "/fapi/v1/order", query=sign({"symbol": "BTCUSDT", "orderId": "x"})
    )
    assert body["code"] == -1100
    status, body = await _refused(
        sim, "POST", "/fapi/v1/leverage", body=sign({"symbol": "BTCUSDT", "leverage": "200"})
    )
    assert body == {"code": -4028, "msg": "Leverage 200 is not valid"}
    algo = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "TRAILING_STOP_MARKET",
            "quantity": "0.01", "callbackRate": "0.05"}  # fmt: skip
    assert (await _refused(sim, "POST", "/fapi/v1/algoOrder", body=sign(algo)))[1]["code"] == -1130
    algo = {**algo, "type": "TRAILING_STOP_MARKET", "callbackRate": "1", "closePosition": "true"}
    assert (await _refused(sim, "POST", "/fapi/v1/algoOrder", body=sign(algo)))[1]["code"] == -4136
    algo = {**algo, "type": "STOP_MARKET", "closePosition": "false", "triggerPrice": "59000"}
    algo.pop("callbackRate")
    algo["algoType"] = "VP"
    assert (await _refused(sim, "POST", "/fapi/v1/algoOrder", body=sign(algo)))[1]["code"] == -1100


async def test_algo_order_rest_shape(sim: SimServer) -> None:
    sim.ctx.engine.place_order(KEY, "BTCUSDT", "buy", "0.01")
    params = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
              "quantity": "0.01", "triggerPrice": "59000", "reduceOnly": "true", "clientAlgoId": "my-sl"}  # fmt: skip
    status, body = await raw(sim, "POST", "/fapi/v1/algoOrder", body=sign(params))
    assert status == 200
    assert {k: body[k] for k in ("algoType", "orderType", "symbol", "side", "positionSide", "quantity",
                                 "algoStatus", "triggerPrice", "price", "workingType", "reduceOnly",
                                 "closePosition", "clientAlgoId")} == {
        "algoType": "CONDITIONAL", "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL",
        "positionSide": "BOTH", "quantity": "0.01", "algoStatus": "NEW", "triggerPrice": "59000", "price": "0",
        "workingType": "CONTRACT_PRICE", "reduceOnly": True, "closePosition": False, "clientAlgoId": "my-sl",
    }  # fmt: skip
    status, listed = await raw(sim, "GET", "/fapi/v1/openAlgoOrders", query=sign({"symbol": "BTCUSDT"}))
    assert [a["algoId"] for a in listed] == [body["algoId"]]
    status, got = await raw(sim, "GET", "/fapi/v1/algoOrder", query=sign({"clientAlgoId": "my-sl"}))
    assert got["algoId"] == body["algoId"]
    status, gone = await raw(sim, "DELETE", "/fapi/v1/algoOrder", query=sign({"algoId": str(body["algoId"])}))
    assert gone == {"algoId": body["algoId"], "clientAlgoId": "my-sl", "code": "200", "msg": "success"}
    status, hist = await raw(sim, "GET", "/fapi/v1/allAlgoOrders", query=sign({"symbol": "BTCUSDT"}))
    assert [a["algoStatus"] for a in hist] == ["CANCELED"]


async def test_account_endpoints_shapes(sim: SimServer) -> None:
    sim.ctx.engine.place_order(KEY, "BTCUSDT", "sell", "0.01")
    _, v3 = await raw(sim, "GET", "/fapi/v3/positionRisk", query=sign({}))
    (pos,) = v3
    assert (pos["positionAmt"], pos["notional"], pos["positionSide"]) == (
        "-0.01",
        "-600",
        "BOTH",
    )  # at the mark
    assert "leverage" not in pos and pos["marginAsset"] == "USDT"
    _, v2 = await raw(sim, "GET", "/fapi/v2/positionRisk", query=sign({"symbol": "ETHUSDT"}))
    assert [(p["symbol"], p["positionAmt"], p["leverage"], p["marginType"]) for p in v2] == [
        ("ETHUSDT", "0", "10", "cross")
    ]
    _, acct = await raw(sim, "GET", "/fapi/v3/account", query=sign({}))
    (usdt,) = acct["assets"]
    assert usdt["asset"] == "USDT" and usdt["updateTime"] > 0
    assert Decimal(usdt["walletBalance"]) == Decimal("100000") - Decimal("0.2399996")
    assert [p["symbol"] for p in acct["positions"]] == ["BTCUSDT"]
    _, bal = await raw(sim, "GET", "/fapi/v2/balance", query=sign({}))
    assert bal[0]["asset"] == "USDT"
    _, brackets = await raw(sim, "GET", "/fapi/v1/leverageBracket", query=sign({}))
    assert {b["symbol"] for b in brackets} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    _, trades = await raw(sim, "GET", "/fapi/v1/userTrades", query=sign({"symbol": "BTCUSDT"}))
    assert [(t["side"], t["qty"], t["price"], t["maker"], t["buyer"]) for t in trades] == [
        ("SELL", "0.01", "59999.9", False, False)
    ]
    _, mode = await raw(sim, "GET", "/fapi/v1/positionSide/dual", query=sign({}))
    assert mode == {"dualSidePosition": False}


async def test_public_endpoints(sim: SimServer) -> None:
    status, info = await raw(sim, "GET", "/fapi/v1/exchangeInfo", key=None)
    assert status == 200
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.1"
    assert filters["LOT_SIZE"] == {
        "filterType": "LOT_SIZE",
        "minQty": "0.001",
        "maxQty": "1000",
        "stepSize": "0.001",
    }
    assert filters["MARKET_LOT_SIZE"]["maxQty"] == "120"
    assert filters["MIN_NOTIONAL"]["notional"] == "100"
    assert (btc["contractType"], btc["status"], btc["marginAsset"]) == ("PERPETUAL", "TRADING", "USDT")
    assert await raw(sim, "GET", "/fapi/v1/ping", key=None) == (200, {})
    _, t = await raw(sim, "GET", "/fapi/v1/time", key=None)
    assert abs(t["serverTime"] - time.time() * 1000) < 5000
    _, book = await raw(sim, "GET", "/fapi/v1/ticker/bookTicker", query="symbol=BTCUSDT", key=None)
    assert (book["bidPrice"], book["askPrice"]) == ("59999.9", "60000.1")
    _, prem = await raw(sim, "GET", "/fapi/v1/premiumIndex", key=None)
    assert {p["symbol"]: p["markPrice"] for p in prem}["ETHUSDT"] == "3000"
    assert await raw(sim, "GET", "/fapi/v1/ticker/24hr", query="symbol=NOPE", key=None) == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )


# ---------------------------------------------------------------------- pure parts (no server)

_ENGINE = SimEngine("binance")
_ENGINE.create_account("k", "s3cr3t")
_KEYS = AccountKeys(_ENGINE)
_VALUE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF", min_size=1, max_size=8).filter(
    lambda n: n not in ("signature", "timestamp", "recvWindow")
)


@settings(max_examples=80, deadline=None)
@given(params=st.dictionaries(_NAME, _VALUE, max_size=6), split=st.integers(min_value=0, max_value=6))
def test_any_correctly_signed_split_is_accepted_and_any_change_refused(
    params: dict[str, str], split: int
) -> None:
    now = 1_800_000_000_000
    items = [*params.items(), ("timestamp", str(now))]
    query = urllib.parse.urlencode(items[:split])
    body = urllib.parse.urlencode(items[split:])
    sig = hmac.new(b"s3cr3t", (query + body).encode(), hashlib.sha256).hexdigest()
    caller, parsed = authenticate_signed(_KEYS, "k", query, f"{body}&signature={sig}", now_ms=now)
    assert caller.api_key == "k"
    assert parsed.raw == dict(items)
    with pytest.raises(BinanceError) as err:
        authenticate_signed(_KEYS, "k", query, f"{body}&x=1&signature={sig}", now_ms=now)
    assert err.value.code == -1022


def test_strip_signature_keeps_the_rest_verbatim() -> None:
    assert strip_signature("a=1&signature=ab&b=%20") == ("a=1&b=%20", "ab")
    assert strip_signature("a=1") == ("a=1", None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "0"),
        ("0E-8", "0"),
        ("60000.10", "60000.1"),
        ("6E+4", "60000"),
        ("0.123456789", "0.12345679"),
        ("-0.5", "-0.5"),
        ("1E-9", "0"),
    ],
)
def test_fmt_is_plain_decimal(value: str, text: str) -> None:
    assert fmt(Decimal(value)) == text
