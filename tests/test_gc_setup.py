"""The collector's set-up at start-up (issue 15: full collections rare and short on the hot path)."""

from __future__ import annotations

import gc

from position_order_service.app import GC_THRESHOLDS, quiet_gc


def test_startup_objects_are_frozen_and_collections_made_rarer() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        quiet_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[2] > 10  # full collections rarer than the interpreter's default
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()  # the rest of the test run collects as it did
