"""Push faults, the clock offset and the visibility lag through the real ccxt.pro client on both venues.

A Recorder wraps the client's message handler, so the assertions are about what ccxt itself received."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt
import pytest

from position_order_service.sim.push_faults import FLUSH_AFTER_S

from .fault_fixtures import SYMBOL, Recorder, Venue, keep_watching, venue, wait_until

__all__ = ["venue"]


async def _watching_orders(venue: Venue) -> tuple[Any, Recorder, asyncio.Task[None]]:
    """A ccxt client watching its orders, with the stream proven live by a probe order's push."""
    client = await venue.client()
    rec = Recorder(client)
    task = await keep_watching(lambda: client.watch_orders(SYMBOL))
    await venue.orders_stream_ready()
    await venue.resting_buy(client, cid="probe")
    await wait_until(lambda: _cids(rec, venue) == ["probe"], what="the probe's push")
    return client, rec, task


def _tagged(rec: Recorder, venue: Venue) -> list[dict[str, Any]]:
    """One entry per received message: its order update's client id (first entry), if it has one."""
    out: list[dict[str, Any]] = []
    for m in rec.messages:
        found = Recorder.order_pushes_of(m, venue.name)
        out.append(found[0] if found else {})
    return out


def _cids(rec: Recorder, venue: Venue, prefix: str = "") -> list[str]:
    return [p["cid"] for p in rec.order_pushes(venue.name) if p["cid"].startswith(prefix)]


async def test_ws_drop_loses_a_push_while_rest_shows_the_order(venue: Venue) -> None:
    client, rec, task = await _watching_orders(venue)
    try:
        await venue.faults({"ws_drop": {"count": 1, "channels": [venue.orders_channel]}})
        lost = await venue.resting_buy(client, cid="lost")
        await venue.resting_buy(client, cid="seen")
        await wait_until(lambda: "seen" in _cids(rec, venue), what="the second order's push")
        assert "lost" not in _cids(rec, venue)
        fetched = await client.fetch_order(lost["id"], SYMBOL)
        assert fetched["status"] == "open" and fetched["clientOrderId"] == "lost"
        assert (await venue.applied())["ws_drop"] == 1
    finally:
        task.cancel()


async def test_ws_duplicate_delivers_a_push_twice(venue: Venue) -> None:
    client, rec, task = await _watching_orders(venue)
    try:
        await venue.faults({"ws_duplicate": {"count": 1, "channels": ["orders"]}})  # OKX's name on both
        await venue.resting_buy(client, cid="twice")
        await venue.resting_buy(client, cid="once")
        await wait_until(lambda: "once" in _cids(rec, venue), what="the second order's push")
        assert _cids(rec, venue) == ["probe", "twice", "twice", "once"]
        first, second = [p["raw"] for p in rec.order_pushes(venue.name) if p["cid"] == "twice"]
        assert first == second
    finally:
        task.cancel()


async def _fill_burst(venue: Venue, client: Any, rec: Recorder, prefix: str, seed: int) -> list[str]:
    """Eight resting buys filled by one price move (one burst of pushes), under a seeded reorder fault;
    returns the order in which their fill pushes reached ccxt, as indexes of placement order."""
    cids = [f"{prefix}{i}" for i in range(8)]
    for cid in cids:
        await venue.resting_buy(client, cid=cid)
    await wait_until(lambda: len(_cids(rec, venue, prefix)) == 8, what="the new-order pushes")
    before = len(rec.order_pushes(venue.name))
    await venue.faults({"ws_reorder": {"rate": 0.5, "window": 3, "channels": ["orders"]}, "seed": seed})
    await venue.control("POST", "/sim/prices", {"symbol": venue.inst_id, "price": "58000"})
    filled = "filled" if venue.name == "okx" else "FILLED"

    def fills() -> list[str]:
        return [p["cid"] for p in rec.order_pushes(venue.name)[before:] if p["state"] == filled]

    await wait_until(lambda: len(fills()) == 8, what="the fill pushes")
    await venue.faults({"ws_reorder": {}})
    await venue.control("POST", "/sim/prices", {"symbol": venue.inst_id, "price": "60000"})
    return [str(cids.index(c)) for c in fills()]


async def test_ws_reorder_changes_the_order_of_pushes_the_same_way_per_seed(venue: Venue) -> None:
    client, rec, task = await _watching_orders(venue)
    try:
        await client.cancel_order((await client.fetch_open_orders(SYMBOL))[0]["id"], SYMBOL)  # the probe
        first = await _fill_burst(venue, client, rec, "a", seed=11)
        again = await _fill_burst(venue, client, rec, "b", seed=11)
        assert sorted(first) == [str(i) for i in range(8)]
        assert first != sorted(first)  # reordered
        assert again == first  # replayed by the seed
        assert (await venue.applied())["ws_reorder"] >= 2
    finally:
        task.cancel()


async def test_a_held_push_is_flushed_even_if_nothing_follows(venue: Venue) -> None:
    client, rec, task = await _watching_orders(venue)
    try:
        await venue.faults({"ws_reorder": {"count": 1, "channels": ["orders"], "window": 3}})
        started = time.monotonic()
        await venue.resting_buy(client, cid="late")
        await wait_until(lambda: "late" in _cids(rec, venue), what="the held push")
        assert time.monotonic() - started >= FLUSH_AFTER_S * 0.8
    finally:
        task.cancel()


def _assert_shifted(ms: Any, offset_ms: int, what: str) -> None:
    expected = time.time() * 1000 + offset_ms
    assert abs(int(ms) - expected) < 5000, f"{what}={ms}, expected about {expected:.0f}"


async def test_clock_offset_shifts_rest_and_ws_timestamps(venue: Venue) -> None:
    client, rec, task = await _watching_orders(venue)
    offset = -60_000
    try:
        await venue.faults({"clock_offset_ms": offset})
        _assert_shifted(await client.fetch_time(), offset, "server time")
        order = await venue.resting_buy(client, cid="shifted")
        await wait_until(lambda: "shifted" in _cids(rec, venue), what="the push")
        [push] = [p["raw"] for p in rec.order_pushes(venue.name) if p["cid"] == "shifted"]
        if venue.name == "okx":
            for name in ("cTime", "uTime"):
                _assert_shifted(push[name], offset, name)
        else:
            _assert_shifted(push["E"], offset, "E")
            _assert_shifted(push["T"], offset, "T")
            _assert_shifted(push["o"]["T"], offset, "o.T")
        fetched = await client.fetch_order(order["id"], SYMBOL)
        _assert_shifted(fetched["timestamp"], offset, "order timestamp")
    finally:
        task.cancel()


async def test_visibility_lag_hides_a_new_order_from_queries_but_not_from_the_stream(venue: Venue) -> None:
    client, rec, task = await _watching_orders(venue)
    lag_ms = 1000
    try:
        await venue.faults({"visibility_lag_ms": lag_ms})
        placed_at = time.monotonic()
        await venue.resting_buy(client, cid="hidden")
        with pytest.raises(ccxt.OrderNotFound):
            await client.fetch_order(None, SYMBOL, {"clientOrderId": "hidden"})
        assert [o["clientOrderId"] for o in await client.fetch_open_orders(SYMBOL)] == ["probe"]
        await wait_until(lambda: "hidden" in _cids(rec, venue), what="the push")
        pushed_at = rec.times[[p.get("cid") for p in _tagged(rec, venue)].index("hidden")]
        assert pushed_at - placed_at < lag_ms / 1000  # the stream did not wait for the lag

        found: dict[str, Any] | None = None
        while found is None:
            try:
                found = await client.fetch_order(None, SYMBOL, {"clientOrderId": "hidden"})
            except ccxt.OrderNotFound:
                assert time.monotonic() - placed_at < 5, "still hidden 5 s after placement"
                await asyncio.sleep(0.05)
        assert time.monotonic() - placed_at >= lag_ms / 1000 * 0.9
        assert found["status"] == "open"
        assert {o["clientOrderId"] for o in await client.fetch_open_orders(SYMBOL)} == {"probe", "hidden"}
        # cancelling does not wait for visibility (the matching engine knows the order at once)
        await venue.faults({"visibility_lag_ms": 60_000})
        fresh = await venue.resting_buy(client, cid="fresh")
        await client.cancel_order(fresh["id"], SYMBOL)
        await venue.faults({"visibility_lag_ms": 0})
        assert venue.engine_order_state(fresh["id"]) == "canceled"
    finally:
        task.cancel()
