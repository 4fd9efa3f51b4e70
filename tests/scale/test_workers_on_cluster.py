"""The scale-out scenarios of test_workers.py on a real 3-master Redis Cluster (tests/redis_backends.py).

A module of its own, not a parameter of test_workers.py: the test runner (pytest-xdist, --dist loadscope) gives
each module to one worker, and the scenarios take minutes per deployment, so the two deployments run side by side.
"""

from __future__ import annotations

import pytest

from . import test_workers as scenarios

pytestmark = scenarios.pytestmark
deployment = scenarios.deployment
d = scenarios.d


@pytest.fixture(scope="module")
def backend() -> str:
    return "cluster"


# the scenarios, in the order they run (each leaves the deployment with live workers for the next)
test_each_account_is_tracked_by_exactly_one_worker_and_each_fill_is_one_event = (
    scenarios.test_each_account_is_tracked_by_exactly_one_worker_and_each_fill_is_one_event
)
test_kill_9_mid_flow_moves_accounts_within_a_lease_and_a_firing_stop_closes_once = (
    scenarios.test_kill_9_mid_flow_moves_accounts_within_a_lease_and_a_firing_stop_closes_once
)
test_a_new_worker_gets_its_share_within_two_lease_periods = (
    scenarios.test_a_new_worker_gets_its_share_within_two_lease_periods
)
test_a_graceful_stop_moves_accounts_with_no_gap_in_events = (
    scenarios.test_a_graceful_stop_moves_accounts_with_no_gap_in_events
)
test_a_worker_paused_past_its_lease_writes_nothing_when_it_resumes = (
    scenarios.test_a_worker_paused_past_its_lease_writes_nothing_when_it_resumes
)
