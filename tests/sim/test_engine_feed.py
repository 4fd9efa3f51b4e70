"""Price feeds of the simulator engine: seeded random walk and replay."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import islice, pairwise

import pytest

from position_order_service.sim.engine import RandomWalkFeed, ReplayFeed, SimEngine, round_to_tick


def test_random_walk_is_deterministic_and_on_tick_grid() -> None:
    a = list(islice(RandomWalkFeed("50000", tick_size="0.1", volatility="0.001", seed=5), 500))
    b = list(islice(RandomWalkFeed("50000", tick_size="0.1", volatility="0.001", seed=5), 500))
    c = list(islice(RandomWalkFeed("50000", tick_size="0.1", volatility="0.001", seed=6), 500))
    assert a == b and a != c
    assert all(isinstance(p, D) and p > 0 and p % D("0.1") == 0 for p in a)
    assert len(set(a)) > 100  # it moves
    steps = [abs(y - x) / x for x, y in pairwise(a)]
    assert max(steps) < D("0.01")  # ~0.1 % per step, 6 sigma at most


def test_random_walk_floor_and_current() -> None:
    feed = RandomWalkFeed("1", tick_size="0.5", volatility="0.5", seed=1, floor="0.5")
    assert feed.current == D("1.0")
    prices = list(islice(feed, 200))
    assert min(prices) >= D("0.5") and feed.current == prices[-1]
    with pytest.raises(ValueError):
        RandomWalkFeed("1", tick_size="0")


def test_replay_feed() -> None:
    assert list(ReplayFeed(["1", 2, D("3.5")])) == [D(1), D(2), D("3.5")]
    looped = list(islice(ReplayFeed(["1", "2"], loop=True), 5))
    assert looped == [D(1), D(2), D(1), D(2), D(1)]
    assert list(ReplayFeed([], loop=True)) == []
    with pytest.raises(ValueError):
        ReplayFeed(["0"])


def test_round_to_tick() -> None:
    assert round_to_tick(D("100.26"), D("0.1")) == D("100.3")
    assert round_to_tick(D("100.25"), D("0.5")) == D("100.0")


def test_feed_drives_engine() -> None:
    eng = SimEngine("okx", seed=1)
    eng.create_account("k", "s", balances={"USDT": "100000"})
    feed = RandomWalkFeed("50000", tick_size="0.1", seed=9)
    eng.place_order("k", "BTC-USDT-SWAP", "buy", "1", ord_type="limit", px="49950")
    for price in islice(feed, 300):
        eng.set_price("BTC-USDT-SWAP", price)
    ticker = eng.ticker("BTC-USDT-SWAP")
    assert ticker is not None and ticker.last == feed.current
