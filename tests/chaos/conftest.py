from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .redis_proc import RedisProc

CI_SEEDS = [1, 2]
CI_STEPS = {"paper": 1500, "ccxt": 1500, "binance": 500}  # by gateway: the make test time each one costs


def chaos_seeds(config: pytest.Config) -> list[int]:
    given = config.getoption("--chaos-seed")
    if given:
        return list(given)
    env = os.environ.get("CHAOS_SEEDS", "").strip()
    if env:
        if "-" in env and "," not in env:  # a range: 1-50
            lo, hi = env.split("-", 1)
            return list(range(int(lo), int(hi) + 1))
        return [int(s) for s in env.split(",") if s.strip()]
    return CI_SEEDS


def chaos_steps(config: pytest.Config, via: str) -> int:
    given = config.getoption("--chaos-steps")
    if given:
        return int(given)
    return int(os.environ.get("CHAOS_STEPS", CI_STEPS[via]))


def hedge_mode(seed: int) -> bool:
    """Even seeds run the account in hedge (long/short) mode, odd ones in one-way (net) mode; CHAOS_MODE=net
    or hedge runs every seed in that mode."""
    mode = os.environ.get("CHAOS_MODE", "").strip().lower()
    if mode in ("net", "hedge"):
        return mode == "hedge"
    return seed % 2 == 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_seed" in metafunc.fixturenames:
        metafunc.parametrize("chaos_seed", chaos_seeds(metafunc.config), ids=lambda s: f"seed{s}")


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[RedisProc]:
    """A redis-server of the test's own (not the shared 6379), which it stops, restarts and freezes; a fresh
    one per seed, so a restart reloads only that seed's data."""
    server = RedisProc(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
