"""The OKX wire front at the byte level: raw aiohttp requests and WebSocket frames (no ccxt).

Unsigned, wrongly signed, stale or malformed requests get OKX's own codes and leave the engine untouched;
WebSocket login/subscribe errors, acks and push shapes; the signing and number formatting as properties.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from position_order_service.sim.engine import SimEngine
from position_order_service.sim.okx.auth import verify_rest
from position_order_service.sim.okx.codes import OkxError
from position_order_service.sim.okx.fmt import dstr
from position_order_service.sim.okx.ws import Sub, encode
from position_order_service.sim.server import SimServer

try:
    from .okx_fixtures import (
        BTC_ID,
        KEY,
        KEY_B,
        PASS,
        SECRET,
        call,
        http,
        iso_now,
        okx_server,
        okx_sign,
        signed_headers,
    )
except ImportError:  # tests/sim is not a package: pytest put its directory on sys.path
    from okx_fixtures import (  # type: ignore[no-redef]
        BTC_ID,
        KEY,
        KEY_B,
        PASS,
        SECRET,
        call,
        http,
        iso_now,
        okx_server,
        okx_sign,
        signed_headers,
    )

__all__ = ["http", "okx_server"]  # fixtures used by name

ORDER = orjson.dumps(
    {"instId": BTC_ID, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "1"}
).decode()
PATH = "/api/v5/trade/order"


def _snapshot(srv: SimServer) -> dict[str, Any]:
    return srv.ctx.engine.snapshot()


# ------------------------------------------------------------------ REST authentication


@pytest.mark.parametrize(
    ("make_headers", "code"),
    [
        (lambda: {}, "50103"),
        (lambda: {"OK-ACCESS-KEY": KEY}, "50104"),
        (lambda: signed_headers("POST", PATH, ORDER, secret="wrong-secret"), "50113"),
        (lambda: signed_headers("POST", PATH, ORDER, passphrase="wrong-pass"), "50105"),
        (lambda: signed_headers("POST", PATH, ORDER, key="no-such-key"), "50111"),
        (lambda: signed_headers("POST", PATH, ORDER, ts="yesterday"), "50112"),
        (lambda: signed_headers("POST", PATH, "{}"), "50113"),  # signature over another body
        (lambda: signed_headers("POST", "/api/v5/trade/batch-orders", ORDER), "50113"),  # over another path
    ],
    ids=[
        "unsigned",
        "no-passphrase",
        "wrong-secret",
        "wrong-passphrase",
        "unknown-key",
        "bad-timestamp",
        "other-body",
        "other-path",
    ],
)
async def test_bad_auth_is_rejected_and_changes_nothing(
    okx_server: SimServer, http: aiohttp.ClientSession, make_headers: Callable[[], dict[str, str]], code: str
) -> None:
    before = _snapshot(okx_server)
    status, body = await call(http, okx_server, "POST", PATH, ORDER, make_headers())
    assert status == 401 and body["code"] == code and body["data"] == []
    assert _snapshot(okx_server) == before


async def test_stale_timestamp_is_rejected(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    headers = signed_headers("GET", "/api/v5/account/balance", ts=iso_now(-60_000))
    status, body = await call(http, okx_server, "GET", "/api/v5/account/balance", headers=headers)
    assert (status, body["code"]) == (401, "50102")


async def test_signed_get_with_query(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    path = f"/api/v5/account/positions?instType=SWAP&instId={BTC_ID}"
    status, body = await call(http, okx_server, "GET", path)
    assert (status, body) == (200, {"code": "0", "msg": "", "data": []})
    tampered = signed_headers("GET", "/api/v5/account/positions?instType=SWAP")
    status, body = await call(http, okx_server, "GET", path, headers=tampered)
    assert (status, body["code"]) == (401, "50113")


async def test_malformed_and_empty_bodies(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    before = _snapshot(okx_server)
    status, body = await call(http, okx_server, "POST", PATH, '{"instId": "BTC-USDT-SWAP",')
    assert (status, body["code"]) == (400, "50002")
    status, body = await call(http, okx_server, "POST", PATH, "")
    assert (status, body["code"]) == (400, "50000")
    status, body = await call(http, okx_server, "POST", PATH, '"just a string"')
    assert (status, body["code"]) == (400, "50002")
    assert _snapshot(okx_server) == before


# ------------------------------------------------------------------ REST order items


@pytest.mark.parametrize(
    ("change", "s_code"),
    [
        ({"instId": None}, "50014"),
        ({"instId": "DOGE-USDT-SWAP"}, "51001"),
        ({"side": "up"}, "51000"),
        ({"tdMode": None}, "50014"),
        ({"ordType": "stop"}, "51000"),
        ({"sz": "abc"}, "51000"),
        ({"sz": "0.015"}, "51121"),
        ({"sz": "6000"}, "51202"),
        ({"sz": "4000"}, "51008"),
        ({"clOrdId": "has spaces!"}, "51000"),
        ({"posSide": "long"}, "51000"),  # long/short in net mode
        ({"reduceOnly": True}, "51134"),  # nothing to reduce
        ({"ordType": "limit"}, "51204"),  # no px
    ],
)
async def test_order_item_errors(
    okx_server: SimServer, http: aiohttp.ClientSession, change: dict[str, Any], s_code: str
) -> None:
    item: dict[str, Any] = {
        "instId": BTC_ID,
        "tdMode": "cross",
        "side": "buy",
        "ordType": "market",
        "sz": "1",
    }
    item.update(change)
    item = {k: v for k, v in item.items() if v is not None}
    before = _snapshot(okx_server)
    status, body = await call(http, okx_server, "POST", PATH, orjson.dumps(item).decode())
    assert status == 200 and body["code"] == "1" and body["msg"] == "All operations failed"
    [row] = body["data"]
    assert row["sCode"] == s_code and row["ordId"] == "" and row["sMsg"]
    assert _snapshot(okx_server) == before


async def test_batch_partly_done(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    good = {"instId": BTC_ID, "tdMode": "cross", "side": "buy", "ordType": "limit", "px": "59000", "sz": "1",
            "clOrdId": "good1"}  # fmt: skip
    bad = dict(good, sz="0.015", clOrdId="bad1")
    status, body = await call(
        http, okx_server, "POST", "/api/v5/trade/batch-orders", orjson.dumps([good, bad]).decode()
    )
    assert status == 200 and body["code"] == "2"
    assert [(r["clOrdId"], r["sCode"]) for r in body["data"]] == [("good1", "0"), ("bad1", "51121")]
    assert "inTime" in body and "outTime" in body
    [order] = okx_server.ctx.engine.open_orders(KEY)
    assert order.client_order_id == "good1" and order.order_id == body["data"][0]["ordId"]
    path = f"/api/v5/trade/order?instId={BTC_ID}&clOrdId=good1"
    _, got = await call(http, okx_server, "GET", path)
    assert got["data"][0]["state"] == "live" and got["data"][0]["px"] == "59000"


async def test_cancel_codes(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    path = "/api/v5/trade/cancel-order"
    _, body = await call(
        http, okx_server, "POST", path, orjson.dumps({"instId": BTC_ID, "ordId": "1"}).decode()
    )
    assert body["data"][0]["sCode"] == "51400"
    _, body = await call(http, okx_server, "POST", path, orjson.dumps({"instId": BTC_ID}).decode())
    assert body["data"][0]["sCode"] == "51003"
    _, placed = await call(http, okx_server, "POST", PATH, ORDER)
    oid = placed["data"][0]["ordId"]
    _, body = await call(
        http, okx_server, "POST", path, orjson.dumps({"instId": BTC_ID, "ordId": oid}).decode()
    )
    assert body["data"][0]["sCode"] == "51402"  # filled


async def test_public_endpoints(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    async def get(path: str) -> dict[str, Any]:
        async with http.get(okx_server.url + path) as resp:
            return orjson.loads(await resp.read())  # type: ignore[no-any-return]

    assert (await get("/api/v5/public/instruments"))["code"] == "50014"
    assert (await get("/api/v5/public/instruments?instType=SPOT"))["data"] == []
    insts = (await get("/api/v5/public/instruments?instType=SWAP"))["data"]
    btc = next(i for i in insts if i["instId"] == BTC_ID)
    assert (btc["ctVal"], btc["lotSz"], btc["minSz"], btc["tickSz"], btc["state"]) == (
        "0.01",
        "0.01",
        "0.01",
        "0.1",
        "live",
    )
    assert (await get("/api/v5/market/ticker?instId=NOPE-USDT-SWAP"))["code"] == "51001"
    [t] = (await get(f"/api/v5/market/ticker?instId={BTC_ID}"))["data"]
    assert (t["last"], t["bidPx"], t["askPx"], t["instType"]) == ("60000", "59999.9", "60000.1", "SWAP")
    [ts] = (await get("/api/v5/public/time"))["data"]
    assert abs(int(ts["ts"]) - time.time() * 1000) < 5000


# ------------------------------------------------------------------ WebSocket


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, payload: dict[str, Any] | str) -> None:
        await self.ws.send_str(payload if isinstance(payload, str) else orjson.dumps(payload).decode())

    async def recv(self, timeout: float = 5.0) -> Any:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        return msg.data if msg.data == "pong" else orjson.loads(msg.data)

    async def silent(self, timeout: float = 0.2) -> bool:
        try:
            await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            return True
        return False

    async def login(
        self, key: str = KEY, secret: str = SECRET, passphrase: str = PASS, ts: str | None = None
    ) -> Any:
        ts = ts or str(int(time.time()))
        sign = okx_sign(secret, ts + "GET/users/self/verify")
        await self.send({"op": "login", "args": [{"apiKey": key, "passphrase": passphrase, "timestamp": ts,
                                                  "sign": sign}]})  # fmt: skip
        return await self.recv()


async def _ws(http: aiohttp.ClientSession, srv: SimServer, kind: str) -> WsClient:
    url = srv.url.replace("http://", "ws://") + f"/ws/v5/{kind}"
    return WsClient(await http.ws_connect(url))


async def test_ws_ping_errors_and_login(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    c = await _ws(http, okx_server, "private")
    await c.send("ping")
    assert await c.recv() == "pong"
    await c.send("{not json")
    assert (await c.recv())["code"] == "60012"
    await c.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
    assert (await c.recv())["code"] == "60011"  # not logged in
    assert (await c.login(secret="wrong"))["code"] == "60007"
    assert (await c.login(passphrase="wrong"))["code"] == "60024"
    assert (await c.login(key="nobody"))["code"] == "60005"
    assert (await c.login(ts=str(int(time.time()) - 120)))["code"] == "60006"
    ok = await c.login()
    assert (ok["event"], ok["code"]) == ("login", "0") and ok["connId"]
    await c.send({"op": "subscribe", "args": [{"channel": "nope"}]})
    assert (await c.recv())["code"] == "60018"
    await c.send({"op": "subscribe", "args": [{"channel": "orders-algo", "instType": "ANY"}]})
    assert (await c.recv())["code"] == "64001"  # lives on /business
    await c.send({"op": "fly"})
    assert (await c.recv())["code"] == "60019"
    b = await _ws(http, okx_server, "business")
    await b.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": BTC_ID}]})
    assert (await b.recv())["code"] == "64002"


async def test_ws_private_pushes(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    c = await _ws(http, okx_server, "private")
    other = await _ws(http, okx_server, "private")
    await c.login()
    await other.login(KEY_B, "okx-secret-b", "okx-pass-b")
    arg = {"channel": "orders", "instType": "SWAP", "instId": BTC_ID}
    await c.send({"op": "subscribe", "args": [arg, {"channel": "positions", "instType": "ANY"}]})
    await other.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
    ack = await c.recv()
    assert ack["event"] == "subscribe" and ack["arg"] == arg and ack["connId"]
    ack = await c.recv()
    assert ack["event"] == "subscribe" and ack["arg"]["channel"] == "positions"
    snap = await c.recv()
    assert snap["arg"]["channel"] == "positions" and snap["eventType"] == "snapshot" and snap["data"] == []
    assert (await other.recv())["event"] == "subscribe"
    status, body = await call(http, okx_server, "POST", PATH, ORDER)
    assert status == 200 and body["code"] == "0"
    oid = body["data"][0]["ordId"]
    push = await c.recv()
    uid = okx_server.ctx.engine.account_by_key(KEY).account_id
    assert push["arg"] == {**arg, "uid": uid}
    states = [d["state"] for d in push["data"]]
    assert states == ["live", "filled"]  # merged into one frame, in order
    filled = push["data"][-1]
    assert filled["ordId"] == oid and filled["fillSz"] == "1" and filled["execType"] == "T"
    assert filled["fillPx"] == "60000.1" and filled["accFillSz"] == "1" and filled["avgPx"] == "60000.1"
    assert Decimal(filled["fillFee"]) < 0 and filled["fillFeeCcy"] == "USDT" and filled["tradeId"]
    pos = await c.recv()
    assert pos["arg"]["channel"] == "positions" and pos["eventType"] == "event_update"
    [p] = pos["data"]
    assert (p["pos"], p["posSide"], p["avgPx"], p["instId"], p["tradeId"]) == ("1", "net", "60000.1", BTC_ID,
                                                                              filled["tradeId"])  # fmt: skip
    assert await other.silent()  # account B sees nothing of account A
    await c.send({"op": "unsubscribe", "args": [arg]})
    assert (await c.recv())["event"] == "unsubscribe"
    await call(http, okx_server, "POST", PATH, ORDER)
    pos = await c.recv()  # positions only: orders were unsubscribed
    assert pos["arg"]["channel"] == "positions"
    assert await c.silent()


async def test_ws_business_algo_channels(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    b = await _ws(http, okx_server, "business")
    assert (await b.login())["code"] == "0"
    await b.send({"op": "subscribe", "args": [{"channel": "orders-algo", "instType": "ANY"},
                                              {"channel": "algo-advance", "instType": "SWAP"}]})  # fmt: skip
    assert [(await b.recv())["event"] for _ in range(2)] == ["subscribe", "subscribe"]
    await call(http, okx_server, "POST", PATH, ORDER)
    trail = {"instId": BTC_ID, "tdMode": "cross", "side": "sell", "ordType": "move_order_stop", "sz": "1",
             "callbackRatio": "0.02", "reduceOnly": True, "algoClOrdId": "trail1"}  # fmt: skip
    _, body = await call(http, okx_server, "POST", "/api/v5/trade/order-algo", orjson.dumps(trail).decode())
    assert body["code"] == "0" and body["data"][0]["algoClOrdId"] == "trail1"
    push = await b.recv()
    assert push["arg"]["channel"] == "algo-advance"  # trailing stops are not on orders-algo
    [algo] = push["data"]
    assert (algo["ordType"], algo["callbackRatio"], algo["state"], algo["algoClOrdId"]) == (
        "move_order_stop", "0.02", "live", "trail1")  # fmt: skip
    stop = {"instId": BTC_ID, "tdMode": "cross", "side": "sell", "ordType": "conditional", "sz": "1",
            "slTriggerPx": "59000", "slOrdPx": "-1"}  # fmt: skip
    _, body = await call(http, okx_server, "POST", "/api/v5/trade/order-algo", orjson.dumps(stop).decode())
    push = await b.recv()
    assert push["arg"]["channel"] == "orders-algo" and push["data"][0]["algoId"] == body["data"][0]["algoId"]
    wrong = dict(stop, slTriggerPx="61000")  # a sell stop above the last price would fire at once
    _, body = await call(http, okx_server, "POST", "/api/v5/trade/order-algo", orjson.dumps(wrong).decode())
    assert body["code"] == "1" and body["data"][0]["sCode"] == "51280"


async def test_ws_tickers(okx_server: SimServer, http: aiohttp.ClientSession) -> None:
    c = await _ws(http, okx_server, "public")
    arg = {"channel": "tickers", "instId": BTC_ID}
    await c.send({"op": "subscribe", "args": [arg, {"channel": "mark-price", "instId": BTC_ID}]})
    assert (await c.recv())["arg"] == arg
    first = await c.recv()
    assert first["arg"] == arg and first["data"][0]["last"] == "60000"
    okx_server.ctx.engine.set_price("ETH-USDT-SWAP", "3100")  # another instrument: not pushed
    okx_server.ctx.engine.set_price(BTC_ID, "60010.5")
    msgs = [await c.recv() for _ in range(3)]  # mark-price ack + snapshot, then the BTC ticker
    tick = [m for m in msgs if m.get("arg") == arg and "data" in m]
    assert tick and tick[-1]["data"][0]["last"] == "60010.5" and tick[-1]["data"][0]["askPx"] == "60010.6"


# ------------------------------------------------------------------ properties and units


_DEC = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False,
                   places=8)  # fmt: skip


@given(_DEC)
def test_dstr_round_trips_without_exponent(d: Decimal) -> None:
    s = dstr(d)
    assert Decimal(s) == d and "E" not in s and "e" not in s
    assert s == "0" or not s.endswith("0") or "." not in s


@settings(max_examples=60)
@given(body=st.text(max_size=60), method=st.sampled_from(["GET", "POST"]), flip=st.integers(0, 43))
def test_signature_accepts_exact_and_rejects_any_change(body: str, method: str, flip: int) -> None:
    eng = SimEngine("okx")
    eng.create_account("k", "s3cret", "pp")
    ts = iso_now()
    path = "/api/v5/trade/order?x=1"
    sign = okx_sign("s3cret", ts + method + path + body)
    headers = {
        "OK-ACCESS-KEY": "k",
        "OK-ACCESS-PASSPHRASE": "pp",
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-SIGN": sign,
    }
    assert verify_rest(eng, headers, method, path, body).api_key == "k"
    with pytest.raises(OkxError) as err:
        verify_rest(eng, headers, method, path, body + "x")
    assert err.value.code == "50113"
    pos = flip % len(sign)
    bad = sign[:pos] + ("A" if sign[pos] != "A" else "B") + sign[pos + 1 :]
    with pytest.raises(OkxError):
        verify_rest(eng, {**headers, "OK-ACCESS-SIGN": bad}, method, path, body)


def test_encode_merges_adjacent_pushes_of_one_subscription() -> None:
    orders = Sub("orders", {"channel": "orders"}, {"channel": "orders", "uid": "1"})
    positions = Sub("positions", {"channel": "positions"}, {"channel": "positions", "uid": "1"})
    shared = [{"ordId": "1", "state": "live"}]
    items: list[Any] = [
        (orders, {"arg": orders.push_arg, "data": shared}),
        (orders, {"arg": orders.push_arg, "data": [{"ordId": "1", "state": "filled"}]}),
        (positions, {"arg": positions.push_arg, "data": [{"pos": "1"}]}),
        (positions, {"arg": positions.push_arg, "data": [{"pos": "2"}]}),
        "pong",
        (orders, {"arg": orders.push_arg, "data": [{"ordId": "2", "state": "live"}]}),
    ]
    out = [m if m == "pong" else orjson.loads(m) for m in encode(items)]
    assert [m if m == "pong" else [d.get("state") or d.get("pos") for d in m["data"]] for m in out] == [
        ["live", "filled"],
        ["1"],
        ["2"],
        "pong",
        ["live"],
    ]
    assert shared == [{"ordId": "1", "state": "live"}]  # shared data lists are never mutated
