"""The metrics the alert rules and the Grafana dashboard are built on (issue 13 item 3), fed by real work:
a fill, a trailing stop that fires, a rule that acts, an account whose stream is down, HTTP requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from position_order_service import metrics

from .conftest import Api
from .test_metrics import samples, total

SYMBOL = "BTC-USDT-SWAP"


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await api.client.get("/metrics")
    assert r.status_code == 200
    return samples(r.text)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_standard_process_and_http_request_metrics(api: Api) -> None:
    assert (await api.client.get("/api/v1/positions/u1/okx")).status_code == 200
    assert (await api.client.get("/api/v1/positions/u1/nowhere")).status_code == 422
    values = await scrape(api)
    assert total(values, "process_resident_memory_bytes") > 0
    assert total(values, "process_cpu_seconds_total") > 0
    assert total(values, "python_info") == 1
    # by route template, not by raw path (bounded cardinality), with the status class
    assert (
        total(values, "http_requests_total", handler="/api/v1/positions/{user_id}/{exchange}", status="2xx")
        >= 1
    )
    assert (
        total(values, "http_requests_total", handler="/api/v1/positions/{user_id}/{exchange}", status="4xx")
        >= 1
    )
    assert (
        total(values, "http_request_duration_seconds_count", handler="/api/v1/positions/{user_id}/{exchange}")
        >= 2
    )
    assert total(values, "http_requests_total", handler="/metrics") == 0  # scrapes are not counted
    assert total(values, "redis_up") == 1


async def test_accounts_tracked_and_stream_down_seconds(api: Api) -> None:
    api.engine.set_price(SYMBOL, "60000")
    await api.onboard("up1")
    values = await scrape(api)
    assert total(values, "accounts_tracked", exchange="okx") == 2  # demo + up1
    assert total(values, "account_stream_down_seconds", exchange="okx") == 0
    # an account that cannot connect (no credentials stored) is down, and its outage grows while it stays so
    r = await api.client.post("/api/v1/users/nokey/activate", json={"exchanges": ["okx"]})
    assert r.status_code == 200
    first = total(await scrape(api), "account_stream_down_seconds", exchange="okx")

    async def grown() -> bool:
        return total(await scrape(api), "account_stream_down_seconds", exchange="okx") >= first + 0.3

    await eventually(grown, what="the outage to grow")
    assert total(await scrape(api), "accounts_tracked", exchange="okx") == 3
    assert (await api.client.post("/api/v1/users/nokey/deactivate")).status_code == 200
    values = await scrape(api)
    assert total(values, "account_stream_down_seconds", exchange="okx") == 0
    assert total(values, "accounts_tracked", exchange="okx") == 2


async def test_fill_latency_and_outcomes_of_stops_and_rules(api: Api) -> None:
    api.engine.set_price(SYMBOL, "60000")
    await api.onboard("out1")
    before = await scrape(api)
    opened = await api.client.post(
        "/api/v1/positions/open",
        json={"user_id": "out1", "exchange": "okx", "symbol": SYMBOL, "side": "long", "size": "0.1"},
    )
    assert opened.status_code == 201, opened.text

    async def fill_seen() -> bool:
        return total(await scrape(api), "fill_to_event_seconds_count") > total(
            before, "fill_to_event_seconds_count"
        )

    await eventually(fill_seen, what="the fill's latency")

    # a rule: when the limit order A fills, cancel B
    order = {"user_id": "out1", "exchange": "okx", "symbol": SYMBOL, "side": "buy", "order_type": "limit",
             "quantity": "0.01"}  # fmt: skip
    a = await api.client.post("/api/v1/orders", json={**order, "price": "59000"})
    b = await api.client.post("/api/v1/orders", json={**order, "price": "50000"})
    assert a.status_code == 201 and b.status_code == 201, (a.text, b.text)
    rule = await api.client.post(
        "/api/v1/conditional-rules",
        json={"user_id": "out1", "exchange": "okx", "trigger_order_id": a.json()["exchange_order_id"],
              "cancel_order_ids": [b.json()["exchange_order_id"]], "condition": "filled"},
    )  # fmt: skip
    assert rule.status_code == 201, rule.text
    # a trailing stop that is cancelled, then one that fires
    stop = {"user_id": "out1", "exchange": "okx", "symbol": SYMBOL, "side": "long", "callback_rate": 0.01}
    assert (await api.client.post("/api/v1/trailing-stops", json=stop)).status_code == 201
    assert (
        await api.client.delete(f"/api/v1/trailing-stops/out1/{SYMBOL}/long?exchange=okx")
    ).status_code == 200
    assert (await api.client.post("/api/v1/trailing-stops", json=stop)).status_code == 201

    api.engine.set_price(SYMBOL, "58900")  # fills A (the rule acts) and crosses 60000 x 0.99 (the stop fires)

    async def outcomes() -> bool:
        v = await scrape(api)
        return total(v, "rule_outcomes_total", outcome="executed") > total(
            before, "rule_outcomes_total", outcome="executed"
        ) and total(v, "trailing_stop_outcomes_total", outcome="executed") > total(
            before, "trailing_stop_outcomes_total", outcome="executed"
        )

    await eventually(outcomes, what="the rule and the stop to finish")
    after = await scrape(api)
    assert total(after, "trailing_stop_outcomes_total", outcome="cancelled") == (
        total(before, "trailing_stop_outcomes_total", outcome="cancelled") + 1
    )
    assert total(after, "trailing_stop_outcomes_total", outcome="failed") == total(
        before, "trailing_stop_outcomes_total", outcome="failed"
    )
    for outcome in (
        "executed",
        "failed",
        "cancelled",
    ):  # present from the start, so increase() sees a first one
        assert ("trailing_stop_outcomes_total", (("outcome", outcome),)) in after


def test_stream_outage_is_timed_from_the_first_unhealthy_sample() -> None:
    now = [100.0]
    health: list[dict[str, Any]] = [
        {"user_id": "a", "exchange": "okx", "healthy": True},
        {"user_id": "b", "exchange": "okx", "healthy": False},
        {"user_id": "c", "exchange": "binance", "healthy": True},
    ]
    streams = metrics.AccountStreams(clock=lambda: now[0])
    assert streams.sample() == {}  # no source yet
    streams.set_source(lambda: health)
    assert streams.sample()[("b", "okx")] == 0.0
    now[0] = 130.0
    health.append({"user_id": "d", "exchange": "okx", "healthy": False})
    assert streams.sample() == {("a", "okx"): 0, ("b", "okx"): 30.0, ("c", "binance"): 0, ("d", "okx"): 0.0}
    families = {f.name: {s.labels["exchange"]: s.value for s in f.samples} for f in streams.collect()}
    now[0] = 131.0
    assert families == {
        "accounts_tracked": {"okx": 3, "binance": 1},
        "account_stream_down_seconds": {"okx": 30.0, "binance": 0.0},
    }
    health[1]["healthy"] = True  # b is back: the next outage starts from zero
    assert streams.sample()[("b", "okx")] == 0.0
    health[1]["healthy"] = False
    now[0] = 140.0
    assert streams.sample()[("b", "okx")] == 0.0
