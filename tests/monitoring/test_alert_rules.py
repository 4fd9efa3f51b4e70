"""deploy/prometheus/alerts.yml: valid (promtool check rules), each alert unit-tested (promtool test rules),
and every metric it reads served by the service's /metrics."""

from __future__ import annotations

import re
import subprocess

from position_order_service import metrics

from ..api.conftest import Api
from .support import ALERT_TESTS, ALERTS, SYNTHETIC, alert_rules, metric_names, require_tool, served_names


def test_promtool_checks_the_rules() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_each_alert_pass() -> None:
    promtool = require_tool("promtool")
    assert ALERT_TESTS, "no rule unit tests under deploy/prometheus/tests"
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, ALERT_TESTS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set()
    for path in ALERT_TESTS:
        tested |= set(re.findall(r"alertname:\s*(\w+)", path.read_text()))
    assert tested == {r["alert"] for r in alert_rules()}, "every alert has a unit test"


async def test_every_metric_the_rules_read_is_served(api: Api) -> None:
    served = served_names((await api.client.get("/metrics")).text) | SYNTHETIC
    for rule in alert_rules():
        missing = metric_names(rule["expr"]) - served
        assert not missing, f"{rule['alert']} reads {missing}, which /metrics does not serve"


def test_tick_to_order_buckets_reach_past_the_alert_threshold() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "TickToOrderSlow"]
    threshold = float(re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip()).group(1))  # type: ignore[union-attr]
    bounds = [b for b in metrics.tick_to_trigger._upper_bounds if b != float("inf")]
    # histogram_quantile never reads above the highest finite bound: without one past the threshold the
    # p99 of even the slowest orders would read as at most the threshold, and the alert could never fire
    assert max(bounds) > threshold


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, handler) (rate(x_bucket{a="b"}[5m]))) > 0.1'
    ) == {"x_bucket"}
    assert metric_names("stream_consumer_lag > 1000 and deriv(stream_consumer_lag[10m]) > 0") == {
        "stream_consumer_lag"
    }
    assert metric_names('up{job="a"} == 0 or on (instance) redis_up') == {"up", "redis_up"}
