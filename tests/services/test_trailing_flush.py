"""Moved extremes are persisted in bounded chunks, with ticks between two chunks, and none is lost (issue 15 4c)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.services import trailing as trailing_mod
from position_order_service.store import Store

from .harness import SYMBOL, Harness, make_harness

D = Decimal
N = 24


@pytest.fixture
async def hp(store: Store, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    monkeypatch.setattr(trailing_mod, "FLUSH_CHUNK", 5)  # 24 stops: 5 chunks
    harness = await make_harness(store, via="paper", trailing_flush_interval_s=3600)  # flushed by the test
    yield harness
    await harness.close()


async def _stops(h: Harness) -> list[TrailingStop]:
    h.price("60000")
    out = []
    for i in range(N):
        st = TrailingStop.model_validate({"user_id": f"f{i}", "exchange": "okx", "symbol": SYMBOL, "side": "long",
                                          "callback_rate": str(D("0.01") + D(i) / 1000)})  # fmt: skip
        out.append(await h.trailing.create(st))
    assert all(s.state is StopState.ACTIVE and s.extreme_price == D(60000) for s in out)
    return out


async def _stored_extremes(h: Harness, stops: list[TrailingStop]) -> set[Decimal | None]:
    got = [await h.store.trailing_stops.get(s.user_id, "okx", SYMBOL, "long") for s in stops]
    return {s.extreme_price if s is not None else None for s in got}


async def test_a_flush_writes_chunks_with_ticks_between_and_ends_at_the_latest_extremes(hp: Harness) -> None:
    h = hp
    stops = await _stops(h)
    await h.trailing.flush()
    repo = h.store.trailing_stops
    write = repo.raise_extremes
    sizes: list[int] = []
    prices = iter(["60100", "60200", "60300"])

    async def between_chunks(moves: Any) -> int:
        sizes.append(len(moves))
        price = next(prices, None)
        if price is not None:  # a new high arrives while the flush is under way
            h.price(price)
            await h.settle(1)
        return await write(moves)

    repo.raise_extremes = between_chunks  # type: ignore[method-assign]
    h.price("60050")
    await h.settle(1)
    await h.trailing.flush()
    assert sizes and max(sizes) <= 5
    await h.trailing.flush()  # what moved during the first flush
    assert await _stored_extremes(h, stops) == {D("60300")}
    assert {h.trailing.stops[s.id].extreme_price for s in stops} == {D("60300")}


async def test_a_failed_chunk_is_written_by_the_next_flush(hp: Harness) -> None:
    h = hp
    stops = await _stops(h)
    await h.trailing.flush()
    repo = h.store.trailing_stops
    write = repo.raise_extremes
    calls = 0

    async def fail_second(moves: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("Redis away")
        return await write(moves)

    repo.raise_extremes = fail_second  # type: ignore[method-assign]
    h.price("61000")
    await h.settle(1)
    with pytest.raises(ConnectionError):
        await h.trailing.flush()
    assert len(await _stored_extremes(h, stops)) == 2  # one chunk written, the rest not yet
    await h.trailing.flush()
    assert await _stored_extremes(h, stops) == {D("61000")}
