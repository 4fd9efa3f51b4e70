"""REST faults through the real ccxt client on both venues: http_errors, drop_responses, hold_responses.

ccxt must raise what it raises against the real venue for the same reply (its own error tables decide)."""

from __future__ import annotations

import time

import aiohttp
import ccxt
import pytest

from .fault_fixtures import SYMBOL, Venue, venue

__all__ = ["venue"]


async def test_http_error_on_cancel_is_a_retryable_error_and_nothing_happens(venue: Venue) -> None:
    client = await venue.client()
    order = await venue.resting_buy(client)
    rule = {"path": venue.cancel_path, "method": venue.cancel_method, "status": 503, "count": 1}
    await venue.faults({"http_errors": [rule]})
    # OKX 503 + 50001 -> OnMaintenance (an ExchangeNotAvailable); Binance 503 + -1001 -> OperationFailed,
    # exactly what ccxt 4.5.90 raises for that reply from the real fapi URL (its linear table has no -1001)
    expected = ccxt.ExchangeNotAvailable if venue.name == "okx" else ccxt.OperationFailed
    with pytest.raises(expected):
        await client.cancel_order(order["id"], SYMBOL)
    assert venue.engine_order_state(order["id"]) == "live"  # not carried out
    assert (await venue.control("GET", "/sim/faults"))["http_errors"] == []  # the count was used up
    await client.cancel_order(order["id"], SYMBOL)  # the next one goes through
    assert venue.engine_order_state(order["id"]) == "canceled"
    assert (await venue.applied())["http_errors"] == 1


@pytest.mark.parametrize(("status", "code"), [(429, None), (503, "busy")])
async def test_rate_limit_and_busy_codes_map_to_ccxt_network_errors(
    venue: Venue, status: int, code: str | None
) -> None:
    client = await venue.client()
    rule: dict[str, object] = {"path": venue.place_path, "method": "POST", "status": status, "count": 1}
    if code == "busy":
        rule["code"] = "50013" if venue.name == "okx" else -1008
    await venue.faults({"http_errors": [rule]})
    if (
        status == 429
    ):  # OKX 50011 -> RateLimitExceeded; Binance: any 429 -> DDoSProtection (both NetworkError)
        expected: type[Exception] = ccxt.RateLimitExceeded if venue.name == "okx" else ccxt.DDoSProtection
    else:  # OKX 50013 "Systems are busy" -> ExchangeNotAvailable; Binance -1008 -> OperationFailed
        expected = ccxt.ExchangeNotAvailable if venue.name == "okx" else ccxt.OperationFailed
    with pytest.raises(expected):
        await venue.resting_buy(client)
    assert venue.server.ctx.engine.open_orders("fault-key") == []


async def test_http_errors_match_path_prefix_and_method_and_replay_by_seed(venue: Venue) -> None:
    path = "/api/v5/public/time" if venue.name == "okx" else "/fapi/v1/time"

    async def run(seed: int) -> list[int]:
        await venue.faults({"http_errors": [{"path": path[:-2], "method": "GET", "rate": 0.5}], "seed": seed})
        statuses = []
        for _ in range(24):
            async with venue.http.get(venue.server.url + path) as resp:
                statuses.append(resp.status)
        return statuses

    first, again, other = await run(3), await run(3), await run(4)
    assert first == again  # the same seed replays the same faults
    assert first != other
    assert {503, 200} == set(first)
    async with venue.http.post(venue.server.url + path) as resp:  # method filter: a POST is not hit
        assert resp.status != 503


async def test_drop_response_is_a_network_error_but_the_cancel_happened(venue: Venue) -> None:
    client = await venue.client()
    order = await venue.resting_buy(client)
    await venue.faults(
        {"drop_responses": [{"path": venue.cancel_path, "method": venue.cancel_method, "count": 1}]}
    )
    if venue.name == "okx":
        with pytest.raises(ccxt.NetworkError):
            await client.cancel_order(order["id"], SYMBOL)
    else:
        # DELETE is idempotent: aiohttp re-sends it once on a fresh connection when a reused keep-alive
        # connection is cut, so against Binance a cut cancel reply surfaces as -2011 OrderNotFound (the first
        # cancel did it). The same happens against the real fapi: the gateway must read it as "gone".
        with pytest.raises(ccxt.OrderNotFound):
            await client.cancel_order(order["id"], SYMBOL)
    assert venue.engine_order_state(order["id"]) == "canceled"
    assert (await venue.applied())["drop_responses"] == 1


async def test_drop_response_to_a_placement_is_a_network_error_and_the_order_exists(venue: Venue) -> None:
    client = await venue.client()
    await venue.faults({"drop_responses": [{"path": venue.place_path, "method": "POST", "count": 1}]})
    with pytest.raises(ccxt.NetworkError):
        await venue.resting_buy(client, cid="dropped1")
    [live] = venue.server.ctx.engine.open_orders("fault-key")
    assert live.client_order_id == "dropped1"


async def test_held_reply_times_the_client_out_but_the_order_exists(venue: Venue) -> None:
    client = await venue.client(timeout_ms=400)
    await venue.faults({"hold_responses": [{"path": venue.place_path, "ms": 1500, "count": 1}]})
    with pytest.raises(ccxt.RequestTimeout):  # the client gave up before the reply came
        await venue.resting_buy(client, cid="held1")
    found = await client.fetch_order(None, SYMBOL, {"clientOrderId": "held1"})
    assert found["clientOrderId"] == "held1" and found["status"] == "open"


async def test_held_replies_do_not_delay_the_server_shutdown(venue: Venue) -> None:
    await venue.faults({"hold_responses": [{"path": "/", "ms": 60000, "count": 1}]})
    path = "/api/v5/public/time" if venue.name == "okx" else "/fapi/v1/time"
    timeout = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(TimeoutError):
        async with venue.http.get(venue.server.url + path, timeout=timeout):
            pass
    started = time.monotonic()
    await venue.server.stop()
    assert time.monotonic() - started < 5
