"""Prometheus metrics (GET /metrics). One set per process; the app sets the gauges' sources at start."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# the migration guide's three
position_manager_latency = Histogram(
    "position_manager_latency_seconds", "PositionManager command latency", ["operation"], registry=REGISTRY,
    buckets=_LATENCY,
)  # fmt: skip
order_manager_latency = Histogram(
    "order_manager_latency_seconds", "OrderManager command latency", ["operation"], registry=REGISTRY,
    buckets=_LATENCY,
)  # fmt: skip
redis_operations = Counter(
    "redis_operations_total",
    "Redis writes by operation and status",
    ["operation", "status"],
    registry=REGISTRY,
)

exchange_latency = Histogram(
    "exchange_call_latency_seconds", "Exchange (gateway) call latency", ["exchange", "endpoint"], registry=REGISTRY,
    buckets=_LATENCY,
)  # fmt: skip
exchange_errors = Counter(
    "exchange_errors_total", "Exchange call errors", ["exchange", "endpoint", "error"], registry=REGISTRY
)
events = Counter("events_total", "Events written (state + event)", ["event_type"], registry=REGISTRY)
reconnects = Counter("stream_reconnects_total", "Exchange stream reconnects", ["exchange"], registry=REGISTRY)
corrections = Counter(
    "reconciliation_corrections_total", "Changes found by REST snapshots", ["exchange"], registry=REGISTRY
)
tick_to_trigger = Histogram(
    "trailing_tick_to_order_seconds", "Price tick seen -> trailing stop's close order sent", registry=REGISTRY,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)  # fmt: skip
tracked_users = Gauge("tracked_users", "Users tracked (user x exchange streams)", registry=REGISTRY)
active_stops = Gauge("active_trailing_stops", "Live trailing stops held by this instance", registry=REGISTRY)
active_rules = Gauge(
    "active_conditional_rules", "Live conditional rules held by this instance", registry=REGISTRY
)
consumer_lag = Gauge(
    "stream_consumer_lag", "Events the history writer has not applied yet", registry=REGISTRY
)


def set_gauge_sources(sources: dict[Gauge, Callable[[], float]]) -> None:
    for gauge, fn in sources.items():
        gauge.set_function(fn)


@asynccontextmanager
async def timed(histogram: Histogram, **labels: str) -> AsyncIterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(**labels).observe(time.perf_counter() - start)


def render() -> bytes:
    return generate_latest(REGISTRY)


def count_redis(operation: str, ok: bool, n: int = 1) -> None:
    redis_operations.labels(operation=operation, status="ok" if ok else "error").inc(n)


def count_events(event_types: Any) -> None:
    for t in event_types:
        if t:
            events.labels(event_type=t).inc()


# supervision and the account actors (issue 11)
task_failures = Counter(
    "task_failures_total", "Background task failures (each is logged and the task restarted)", ["task"],
    registry=REGISTRY,
)  # fmt: skip
bus_backlog = Gauge(
    "bus_backlog", "Domain events waiting for a bus subscriber", ["subscriber"], registry=REGISTRY
)
account_write_retries = Counter(
    "account_write_retries_total", "Account state writes retried after a Redis error", ["exchange"],
    registry=REGISTRY,
)  # fmt: skip
price_feed_silent = Counter(
    "price_feed_silent_total", "Price feeds found silent and reconnected", ["exchange"], registry=REGISTRY
)
price_feeds_silent_now = Gauge(
    "price_feeds_silent", "Price feeds silent right now (longer than PRICE_FEED_SILENT_S)", ["exchange"],
    registry=REGISTRY,
)  # fmt: skip
trigger_retries = Counter(
    "trigger_retries_total", "Trailing-stop and rule transitions or cancels retried after a failure", ["kind"],
    registry=REGISTRY,
)  # fmt: skip
