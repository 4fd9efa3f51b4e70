"""The control API of faults and limits: /sim/faults (GET, POST merges, DELETE), /sim/limits, /sim/state.

Other helpers' end-to-end tests are written against these names and bodies: this file pins them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from position_order_service.sim.server import SimServer

DEFAULTS = {
    "drop_order_responses": 0,
    "delay_ms": 0,
    "http_errors": [],
    "drop_responses": [],
    "hold_responses": [],
    "ws_drop": {"rate": 0.0, "count": 0, "channels": []},
    "ws_duplicate": {"rate": 0.0, "count": 0, "channels": []},
    "ws_reorder": {"rate": 0.0, "count": 0, "channels": [], "window": 3},
    "ws_delay": {"rate": 0.0, "count": 0, "channels": [], "ms": 300},
    "clock_offset_ms": 0,
    "visibility_lag_ms": 0,
    "seed": 0,
}


@pytest.fixture(params=["okx", "binance"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[SimServer]:
    server = await SimServer(request.param).start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(
    http: aiohttp.ClientSession, sim: SimServer, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, sim.url + path, json=body) as resp:
        return resp.status, await resp.json()


async def test_get_post_merge_and_delete(sim: SimServer, http: aiohttp.ClientSession) -> None:
    assert await _call(http, sim, "GET", "/sim/faults") == (200, DEFAULTS)
    rule = {"path": "/api/v5/trade/cancel-order", "method": "POST", "status": 503, "count": 1}
    status, body = await _call(http, sim, "POST", "/sim/faults", {"http_errors": [rule], "seed": 7})
    assert status == 200
    assert body["http_errors"] == [rule] and body["seed"] == 7
    # a later POST merges: the fields it names replace theirs, the others stay
    hold = {"path": "/api/v5/trade/order", "ms": 15000, "count": 1}
    status, body = await _call(
        http,
        sim,
        "POST",
        "/sim/faults",
        {
            "hold_responses": [hold],
            "drop_responses": [{"path": "/api/v5/trade/cancel-order", "rate": 0.25}],
            "ws_drop": {"rate": 0.1, "channels": ["orders"]},
            "ws_reorder": {"count": 2, "window": 5},
            "ws_delay": {"count": 1, "ms": 400, "channels": ["orders"]},
            "clock_offset_ms": -300,
            "visibility_lag_ms": 5000,
        },
    )
    assert status == 200
    assert body["http_errors"] == [rule] and body["hold_responses"] == [hold]
    assert body["drop_responses"] == [{"path": "/api/v5/trade/cancel-order", "rate": 0.25}]
    assert body["ws_drop"] == {"rate": 0.1, "count": 0, "channels": ["orders"]}
    assert body["ws_reorder"] == {"rate": 0.0, "count": 2, "channels": [], "window": 5}
    assert body["ws_delay"] == {"rate": 0.0, "count": 1, "channels": ["orders"], "ms": 400}
    assert body["clock_offset_ms"] == -300 and body["visibility_lag_ms"] == 5000
    assert await _call(http, sim, "GET", "/sim/faults") == (200, body)
    status, cleared = await _call(http, sim, "DELETE", "/sim/faults")
    assert status == 200 and cleared == {**DEFAULTS, "seed": 7}  # the seed stays
    assert sim.ctx.engine.faults.clock_offset_ms == 0


async def test_the_original_two_fields_keep_working(sim: SimServer, http: aiohttp.ClientSession) -> None:
    status, body = await _call(http, sim, "POST", "/sim/faults", {"drop_order_responses": 2, "delay_ms": 5})
    assert status == 200 and body["drop_order_responses"] == 2 and body["delay_ms"] == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"drop_order_responses": -1}, "drop_order_responses"),
        ({"delay_ms": True}, "delay_ms"),
        ({"no_such_fault": 1}, "no_such_fault"),
        ({"http_errors": {"path": "/x"}}, "http_errors"),
        ({"http_errors": [{"status": 503}]}, "http_errors[0].path"),
        ({"http_errors": [{"path": "/x", "status": 404}]}, "http_errors[0].status"),
        ({"http_errors": [{"path": "/x", "count": 1, "rate": 0.5}]}, "http_errors[0].count"),
        ({"http_errors": [{"path": "/x", "rate": 1.5}]}, "http_errors[0].rate"),
        ({"http_errors": [{"path": "/x", "method": "PATCH"}]}, "http_errors[0].method"),
        ({"http_errors": [{"path": "/x"}, {"path": "/y", "bogus": 1}]}, "http_errors[1].bogus"),
        ({"drop_responses": [{"path": "/x", "count": 0}]}, "drop_responses[0].count"),
        ({"hold_responses": [{"path": "/x"}]}, "hold_responses[0].ms"),
        ({"ws_drop": {"channels": ["order"]}}, "ws_drop.channels"),
        ({"ws_duplicate": {"rate": -0.1}}, "ws_duplicate.rate"),
        ({"ws_reorder": {"window": 0}}, "ws_reorder.window"),
        ({"ws_delay": {"ms": 0}}, "ws_delay.ms"),
        ({"ws_delay": {"window": 2}}, "ws_delay.window"),
        ({"clock_offset_ms": "300"}, "clock_offset_ms"),
        ({"visibility_lag_ms": -5}, "visibility_lag_ms"),
        ({"seed": 1.5}, "seed"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(
    sim: SimServer, http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    before = (await _call(http, sim, "POST", "/sim/faults", {"delay_ms": 1}))[1]
    status, err = await _call(http, sim, "POST", "/sim/faults", {"clock_offset_ms": 99, **body})
    assert status == 400
    assert err["field"] == field, err
    assert await _call(http, sim, "GET", "/sim/faults") == (200, before)


async def test_venue_error_codes_are_checked_per_venue(sim: SimServer, http: aiohttp.ClientSession) -> None:
    good, bad = ("50013", -1008) if sim.venue == "okx" else (-1008, "50013")
    rule = {"path": "/", "status": 503, "count": 1}
    status, body = await _call(http, sim, "POST", "/sim/faults", {"http_errors": [{**rule, "code": good}]})
    assert status == 200 and body["http_errors"][0]["code"] == good
    status, err = await _call(http, sim, "POST", "/sim/faults", {"http_errors": [{**rule, "code": bad}]})
    assert status == 400 and err["field"] == "http_errors[0].code"


async def test_limits_route_and_state_counters(sim: SimServer, http: aiohttp.ClientSession) -> None:
    status, body = await _call(http, sim, "GET", "/sim/limits")
    assert status == 200
    assert body == {
        "enabled": True,
        "okx_ws_connects_per_s": 3,
        "okx_ws_requests_per_conn_per_hour": 480,
        "binance_ws_connects_per_5min": 300,
        "refused_connections": {sim.venue: 0},
        "closed_for_requests": {sim.venue: 0},
    }
    status, body = await _call(
        http, sim, "POST", "/sim/limits", {"enabled": False, "okx_ws_connects_per_s": 5}
    )
    assert status == 200 and body["enabled"] is False and body["okx_ws_connects_per_s"] == 5
    for bad, field in (({"enabled": "no"}, "enabled"), ({"binance_ws_connects_per_5min": 0}, "binance_ws_connects_per_5min"),
                       ({"other": 1}, "other")):  # fmt: skip
        status, err = await _call(http, sim, "POST", "/sim/limits", bad)
        assert status == 400 and err["field"] == field
    status, state = await _call(http, sim, "GET", "/sim/state")
    assert state["refused_connections"] == {sim.venue: 0}
    assert state["closed_for_requests"] == {sim.venue: 0}
    assert state["faults_applied"] == {}
