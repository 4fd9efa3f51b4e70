"""The consistency check catches hand-edited, missing and extra legacy keys (function and CLI)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from position_order_service import cli
from position_order_service.config import Settings
from position_order_service.integrations.consistency import KEY, check_consistency, run_check, same
from position_order_service.integrations.grid import GRIDAdapter
from position_order_service.integrations.hyperrsi import HYPERRSIAdapter
from tests.conftest import REAL_REDIS_URL
from tests.services.harness import SYMBOL, Harness


def test_values_compare_as_numbers_and_lists() -> None:
    assert same("0.10", "0.1") and same("45000.0", "45000") and same("[62000.0]", '["62000"]')
    assert not same("0.2", "0.1") and not same(None, "1") and not same("true", "false")


async def test_the_check_catches_a_hand_edited_legacy_key(
    h: Harness,
    hyperrsi: HYPERRSIAdapter,
    grid: GRIDAdapter,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h.account("c1")
    h.price("60000")
    await h.track("c1")
    await hyperrsi.open_position("c1", SYMBOL, "long", 0.1, 5, stop_loss=55000, take_profit=65000)
    await grid.initialize_grid_position("c1", "okx", SYMBOL, 3, 59000, 0.02, "o3")
    await h.accounts.stop("c1", "okx")  # nothing rewrites the keys while we edit them
    redis, keys = h.store.redis, h.store.keys
    report = await check_consistency(redis, keys, "c1")
    assert report.ok and report.hyperrsi_positions == 1 and report.grid_levels == 1, report.differences

    legacy_position = keys.legacy_hyperrsi_position("c1", SYMBOL, "long")
    legacy_level = keys.legacy_grid_level("okx", "c1", SYMBOL, 3)
    await redis.hset(legacy_position, mapping={"size": "0.2", "sl_price": "54000"})
    await redis.hset(legacy_level, "entry_price", "58000")
    await redis.hset(
        keys.legacy_grid_level("okx", "c1", SYMBOL, 4), mapping={"entry_price": "1", "position_size": "1"}
    )
    report = await check_consistency(redis, keys, "c1")
    found = {(d.key, d.field, d.legacy, d.new and str(Decimal(d.new))) for d in report.differences}
    assert (legacy_position, "size", "0.2", "0.1") in found
    assert (legacy_position, "sl_price", "54000", str(Decimal("55000"))) in found
    assert (legacy_level, "entry_price", "58000", "59000") in found
    assert (keys.legacy_grid_level("okx", "c1", SYMBOL, 4), KEY, "present", None) in found
    assert len(found) == 4
    assert "new: stop_loss_price" in str(next(d for d in report.differences if d.field == "sl_price"))
    assert (await check_consistency(redis, keys, "someone-else")).ok  # scoped to one user

    monkeypatch.setenv("REDIS_URL", REAL_REDIS_URL)
    monkeypatch.setenv("KEY_PREFIX", key_prefix)
    rc = await asyncio.to_thread(cli.main, ["check-consistency", "--user", "c1"])
    out = capsys.readouterr().out
    assert rc == 1
    assert f"{legacy_position} field size: legacy='0.2' new='0.1'" in out
    assert "INCONSISTENT: 4 difference(s)" in out

    await redis.delete(legacy_position, keys.legacy_grid_level("okx", "c1", SYMBOL, 4))
    await redis.hset(legacy_level, "entry_price", "59000.00")
    report = await check_consistency(redis, keys)
    assert [(d.key, d.field, d.new) for d in report.differences] == [(legacy_position, KEY, "open position")]
    await hyperrsi.close_position(
        "c1", SYMBOL, "long", reason="done"
    )  # closing removes the position for good
    rc = await asyncio.to_thread(cli.main, ["check-consistency", "--user", "c1"])
    assert rc == 0 and "consistent: 0 HYPERRSI position(s) and 1 GRID level(s)" in capsys.readouterr().out


def test_the_cli_needs_a_configured_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check(None, Settings(redis_url="", redis_host="")) == 2
    assert "REDIS_URL" in capsys.readouterr().err
