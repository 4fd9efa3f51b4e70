"""History API over a tiny app (the router + a context holding the HistoryDB), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from position_order_service.api.auth import TokenGrant, parse_tokens
from position_order_service.api.history import router
from position_order_service.history import HistoryDB
from position_order_service.history import tables as t
from position_order_service.history.mapping import Batch
from position_order_service.history.writer import apply_batch

from .support import T0, order_payload, payload

DAY1 = T0  # 2026-11-21 09:00 UTC
DAY2 = T0 + timedelta(days=1)


class Ctx:
    def __init__(self, history: HistoryDB | None, token_grants: list[TokenGrant] | None = None) -> None:
        self.history = history
        self.token_grants = token_grants or []  # none configured: every caller may read every user


def _app(history: HistoryDB | None) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.ctx = Ctx(history)
    return app


@pytest.fixture
async def client(history_db: HistoryDB) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(history_db))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


class Feed:
    """Writes payloads through the writer's batch path, one stream per user, seq increasing."""

    def __init__(self, db: HistoryDB) -> None:
        self.db = db
        self.seq: dict[str, int] = {}

    async def write(self, *payloads: dict[str, Any]) -> None:
        batch = Batch()
        for p in payloads:
            user = p["user_id"]
            self.seq[user] = self.seq.get(user, 0) + 1
            batch.add(f"events:{user}", user, 0, self.seq[user], p)
        async with self.db.engine.begin() as conn:
            await apply_batch(conn, batch)


def fill(
    ts: datetime,
    trade_id: str,
    fee: str,
    user_id: str = "u1",
    exchange: str = "okx",
    symbol: str = "BTC-USDT-SWAP",
) -> dict[str, Any]:
    return payload(
        "fill.created",
        ts,
        user_id=user_id,
        exchange=exchange,
        trade_id=trade_id,
        order_id="o",
        symbol=symbol,
        side="buy",
        price="100",
        size="1",
        fee=fee,
        fee_currency="USDT",
        liquidity="taker",
    )


def pos(
    ts: datetime,
    pid: str,
    realized: str,
    status: str = "open",
    user_id: str = "u1",
    exchange: str = "okx",
    size: str = "1",
) -> dict[str, Any]:
    etype = "position.closed" if status == "closed" else "position.updated"
    return payload(
        etype,
        ts,
        user_id=user_id,
        exchange=exchange,
        position_id=pid,
        symbol="BTC-USDT-SWAP",
        side="long",
        size=size,
        entry_price="100",
        current_price="110",
        unrealized_pnl="0",
        realized_pnl=realized,
        leverage=3,
        grid_level=None,
        status=status,
    )


async def _orders(feed: Feed) -> None:
    items = []
    for i in range(25):
        ts = T0 + timedelta(minutes=i // 2)  # pairs share a creation time: the id breaks the tie
        symbol = "BTC-USDT-SWAP" if i % 2 == 0 else "ETH-USDT-SWAP"
        items.append(order_payload(ts, f"o{i:02d}", status="filled" if i % 5 == 0 else "open", symbol=symbol))
    items += [
        order_payload(T0, f"b{i}", user_id="u1", exchange="binance", symbol="BTCUSDT") for i in range(3)
    ]
    items += [order_payload(T0, f"x{i}", user_id="u2") for i in range(2)]
    await feed.write(*items)


async def _pages(client: httpx.AsyncClient, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        q = dict(params) | ({"cursor": cursor} if cursor else {})
        r = await client.get(url, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


async def test_orders_pages_cover_everything_once_newest_first(
    client: httpx.AsyncClient, history_db: HistoryDB
) -> None:
    feed = Feed(history_db)
    await _orders(feed)
    pages = await _pages(client, "/api/v1/history/u1/okx/orders", limit=10)
    assert [len(p) for p in pages] == [10, 10, 5]
    items = [i for p in pages for i in p]
    async with history_db.sessionmaker() as s:
        expected = (
            (
                await s.execute(
                    select(t.orders.c.order_id)
                    .where(t.orders.c.user_id == "u1", t.orders.c.exchange == "okx")
                    .order_by(t.orders.c.created_at.desc(), t.orders.c.id.desc())
                )
            )
            .scalars()
            .all()
        )
    assert [i["order_id"] for i in items] == list(expected)
    assert len({i["order_id"] for i in items}) == 25
    first = items[0]
    assert first["quantity"] == "2" and first["price"] == "100.5" and isinstance(first["price"], str)
    assert first["created_at"].endswith("+00:00")
    assert "src_version" not in first

    # rows written after page 1 do not shift the pages that follow
    r1 = (await client.get("/api/v1/history/u1/okx/orders", params={"limit": 10})).json()
    await feed.write(order_payload(T0 + timedelta(hours=5), "new"))
    r2 = (
        await client.get("/api/v1/history/u1/okx/orders", params={"limit": 10, "cursor": r1["next_cursor"]})
    ).json()
    assert [i["order_id"] for i in r2["items"]] == [i["order_id"] for i in pages[1]]


async def test_order_filters(client: httpx.AsyncClient, history_db: HistoryDB) -> None:
    await _orders(Feed(history_db))
    url = "/api/v1/history/u1/okx/orders"
    btc = (await client.get(url, params={"symbol": "BTC-USDT-SWAP", "limit": 100})).json()["items"]
    assert len(btc) == 13 and {i["symbol"] for i in btc} == {"BTC-USDT-SWAP"}
    unified = (await client.get(url, params={"symbol": "BTC/USDT:USDT", "limit": 100})).json()["items"]
    assert [i["id"] for i in unified] == [i["id"] for i in btc]
    filled = (await client.get(url, params={"status": "filled"})).json()["items"]
    assert sorted(i["order_id"] for i in filled) == ["o00", "o05", "o10", "o15", "o20"]
    window = (
        await client.get(url, params={"start": "2026-11-21T09:02:00Z", "end": "2026-11-21T09:04:00+00:00"})
    ).json()["items"]
    assert sorted(i["order_id"] for i in window) == ["o04", "o05", "o06", "o07"]
    naive = (
        await client.get(url, params={"start": "2026-11-21T09:02:00", "end": "2026-11-21T09:04:00"})
    ).json()
    assert sorted(i["order_id"] for i in naive["items"]) == ["o04", "o05", "o06", "o07"]
    binance = (
        await client.get("/api/v1/history/u1/binance/orders", params={"symbol": "BTC/USDT:USDT"})
    ).json()
    assert sorted(i["order_id"] for i in binance["items"]) == ["b0", "b1", "b2"]
    assert (await client.get("/api/v1/history/nobody/okx/orders")).json() == {
        "items": [],
        "next_cursor": None,
    }


async def test_fills_and_positions_pages(client: httpx.AsyncClient, history_db: HistoryDB) -> None:
    feed = Feed(history_db)
    await feed.write(*[fill(DAY1 + timedelta(minutes=i), f"t{i}", "0.1") for i in range(7)])
    await feed.write(
        pos(DAY1, "p1", "0"), pos(DAY1 + timedelta(hours=1), "p1", "5", status="closed", size="0")
    )
    await feed.write(pos(DAY2, "p2", "0"))
    pages = await _pages(client, "/api/v1/history/u1/okx/fills", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i["trade_id"] for p in pages for i in p] == [f"t{i}" for i in reversed(range(7))]
    assert pages[0][0]["fee"] == "0.1" and pages[0][0]["ts"].startswith("2026-11-21T09:06:00")
    positions = (await client.get("/api/v1/history/u1/okx/positions")).json()["items"]
    assert [(p["position_id"], p["status"]) for p in positions] == [("p2", "open"), ("p1", "closed")]
    assert positions[1]["realized_pnl"] == "5" and positions[1]["exit_price"] == "110"
    closed = (await client.get("/api/v1/history/u1/okx/positions", params={"status": "closed"})).json()[
        "items"
    ]
    assert [p["position_id"] for p in closed] == ["p1"]


async def test_pnl_per_utc_day(client: httpx.AsyncClient, history_db: HistoryDB) -> None:
    feed = Feed(history_db)
    await feed.write(
        pos(DAY1, "p1", "0", size="2"),
        pos(DAY1 + timedelta(hours=2), "p1", "10", size="1"),  # partial close: realized on day 1
        fill(DAY1, "t1", "0.5"),
        fill(DAY1 + timedelta(hours=14, minutes=59), "t2", "0.25"),  # 23:59 UTC: still day 1
        fill(DAY2 - timedelta(hours=9), "t3", "0.125"),  # 00:00 UTC of day 2
        fill(DAY1, "b1", "1", exchange="binance", symbol="BTCUSDT"),
    )
    await feed.write(
        pos(DAY2 + timedelta(hours=3), "p1", "25.5", status="closed", size="0"),
        pos(DAY2, "q1", "-3", exchange="binance"),
    )
    r = await client.get("/api/v1/history/u1/pnl", params={"period": "day"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "items": [
            {"date": "2026-11-21", "realized_pnl": "10", "fees": "1.75", "net": "8.25"},
            {"date": "2026-11-22", "realized_pnl": "12.5", "fees": "0.125", "net": "12.375"},
        ]
    }
    okx = (await client.get("/api/v1/history/u1/pnl", params={"exchange": "okx"})).json()["items"]
    assert [(d["date"], d["realized_pnl"], d["fees"], d["net"]) for d in okx] == [
        ("2026-11-21", "10", "0.75", "9.25"),
        ("2026-11-22", "15.5", "0.125", "15.375"),
    ]
    day2 = (await client.get("/api/v1/history/u1/pnl", params={"start": "2026-11-22T00:00:00Z"})).json()[
        "items"
    ]
    assert [d["date"] for d in day2] == ["2026-11-22"]
    assert (await client.get("/api/v1/history/u2/pnl")).json() == {"items": []}


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/api/v1/history/u1/okx/orders", {"limit": 0}, "limit"),
        ("/api/v1/history/u1/okx/orders", {"limit": 1001}, "limit"),
        ("/api/v1/history/u1/okx/fills", {"limit": "many"}, "limit"),
        ("/api/v1/history/u1/okx/orders", {"start": "yesterday"}, "start"),
        (
            "/api/v1/history/u1/okx/positions",
            {"start": "2026-11-22T00:00:00Z", "end": "2026-11-21T00:00:00Z"},
            "end",
        ),
        ("/api/v1/history/u1/kraken/orders", {}, "exchange"),
        ("/api/v1/history/u1/okx/orders", {"status": "sleeping"}, "status"),
        ("/api/v1/history/u1/pnl", {"period": "week"}, "period"),
    ],
)
async def test_invalid_parameters_are_422_naming_the_field(
    client: httpx.AsyncClient, url: str, params: dict[str, Any], field: str
) -> None:
    r = await client.get(url, params=params)
    assert r.status_code == 422, r.text
    assert any(field in err["loc"] for err in r.json()["detail"]), r.json()


async def test_bad_cursor_is_400(client: httpx.AsyncClient, history_db: HistoryDB) -> None:
    feed = Feed(history_db)
    await feed.write(*[fill(DAY1 + timedelta(minutes=i), f"t{i}", "0.1") for i in range(3)])
    fills_cursor = (await client.get("/api/v1/history/u1/okx/fills", params={"limit": 1})).json()[
        "next_cursor"
    ]
    assert fills_cursor
    for cursor in (
        "garbage!",
        "eyJrIjoib3JkZXJzIn0",
        fills_cursor,
    ):  # not base64 JSON / no fields / other kind
        r = await client.get("/api/v1/history/u1/okx/orders", params={"cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
        assert "cursor" in r.json()["detail"]


async def test_without_history_database_is_503() -> None:
    transport = httpx.ASGITransport(app=_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/api/v1/history/u1/okx/orders")
    assert r.status_code == 503


async def test_history_needs_a_token_allowed_for_the_user(history_db: HistoryDB) -> None:
    app = FastAPI()
    app.include_router(router)
    app.state.ctx = Ctx(history_db, parse_tokens("alice-token-0123456789=alice"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/api/v1/history/alice/okx/orders")).status_code == 401
        h = {"Authorization": "Bearer alice-token-0123456789"}
        assert (await c.get("/api/v1/history/alice/okx/orders", headers=h)).status_code == 200
        assert (await c.get("/api/v1/history/bob/okx/orders", headers=h)).status_code == 403
