"""Prometheus metrics (GET /metrics). One set per process; the app sets the gauges' sources at start.

Names are a contract with deploy/prometheus/alerts.yml and deploy/grafana/position-order-service.json (the
tests check that every expression there names a metric served here). Besides the service's own metrics the
registry carries the standard process_* / python_* collectors and the HTTP request metrics of
prometheus-fastapi-instrumentator (http_requests_total, http_request_duration_seconds by route).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

if TYPE_CHECKING:
    from fastapi import FastAPI

REGISTRY = CollectorRegistry(auto_describe=True)
# the standard process_*, python_info and python_gc_* series (the same collectors prometheus_client registers
# on its default registry)
for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_standard)
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
# buckets above 0.1 s: without them a p99 over the 100 ms target reads as exactly 0.1 and the alert on it
# (deploy/prometheus/alerts.yml, TickToOrderSlow) could never fire
tick_to_trigger = Histogram(
    "trailing_tick_to_order_seconds", "Price tick seen -> trailing stop's close order sent", registry=REGISTRY,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)  # fmt: skip
tracked_users = Gauge("tracked_users", "Users tracked (user x exchange streams)", registry=REGISTRY)
active_stops = Gauge("active_trailing_stops", "Live trailing stops held by this instance", registry=REGISTRY)
active_rules = Gauge(
    "active_conditional_rules", "Live conditional rules held by this instance", registry=REGISTRY
)
consumer_lag = Gauge(
    "stream_consumer_lag", "Events the history writer has not applied yet", registry=REGISTRY
)
fill_to_event = Histogram(
    "fill_to_event_seconds", "Exchange fill time -> its event written (includes the exchange's delivery)",
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)  # fmt: skip
trailing_stop_outcomes = Counter(
    "trailing_stop_outcomes_total",
    "Trailing stops finished, by outcome (executed|failed|cancelled)",
    ["outcome"],
    registry=REGISTRY,
)
rule_outcomes = Counter(
    "rule_outcomes_total", "Conditional rules finished, by outcome (executed|failed)", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip
task_failures = Counter(
    "task_failures_total", "Background task failures (restarted by the supervisor)", ["task"], registry=REGISTRY
)  # fmt: skip
redis_up = Gauge(
    "redis_up", "1 when the service's Redis answered a PING at the last scrape of /metrics, else 0",
    registry=REGISTRY,
)  # fmt: skip

# outcome series exist from the start at 0: an alert on increase() then sees the first failure too
_OUTCOMES: dict[str, Any] = {}
for _outcome in ("executed", "failed", "cancelled"):
    _OUTCOMES[f"trailing_stop.{_outcome}"] = trailing_stop_outcomes.labels(outcome=_outcome)
for _outcome in ("executed", "failed"):
    _OUTCOMES[f"conditional.{_outcome}"] = rule_outcomes.labels(outcome=_outcome)


def count_outcome(event_type: str) -> None:
    """Count a stop's or rule's final transition, by the event type it was saved with."""
    child = _OUTCOMES.get(event_type)
    if child is not None:
        child.inc()


def observe_since(histogram: Histogram, since: datetime) -> None:
    """Observe the seconds from `since` (an exchange's time) to now; never negative (clock skew)."""
    histogram.observe(max(0.0, (datetime.now(UTC) - since).total_seconds()))


class AccountStreams(Collector):
    """`accounts_tracked{exchange}` and `account_stream_down_seconds{exchange}` from the trackers' health.

    The source is a callable returning one mapping per tracked account with `user_id`, `exchange` and
    `healthy` (AccountRegistry.health()). An account's outage is timed from the first time it is seen
    unhealthy (each scrape and each dashboard read samples it) until it is seen healthy again, so the figure
    is a lower bound, short by at most one sampling interval. The gauge is the longest current outage of any
    account on the exchange, 0 when all are connected.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._source: Callable[[], Iterable[Mapping[str, Any]]] | None = None
        self._down_since: dict[tuple[str, str], float] = {}

    def set_source(self, source: Callable[[], Iterable[Mapping[str, Any]]] | None) -> None:
        self._source = source
        self._down_since.clear()

    def sample(self) -> dict[tuple[str, str], float]:
        """Seconds each tracked account's stream has been down (0 = connected), keyed by (user, exchange)."""
        if self._source is None:
            return {}
        now = self._clock()
        out: dict[tuple[str, str], float] = {}
        for h in self._source():
            key = (str(h["user_id"]), str(h["exchange"]))
            if h.get("healthy"):
                self._down_since.pop(key, None)
                out[key] = 0.0
            else:
                out[key] = now - self._down_since.setdefault(key, now)
        for gone in self._down_since.keys() - out.keys():
            del self._down_since[gone]
        return out

    def describe(self) -> Iterator[Metric]:
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.sample())

    @staticmethod
    def _families(accounts: dict[tuple[str, str], float]) -> Iterator[Metric]:
        tracked = GaugeMetricFamily(
            "accounts_tracked", "Accounts (user x exchange) tracked", labels=["exchange"]
        )
        down = GaugeMetricFamily(
            "account_stream_down_seconds",
            "Longest current outage of any tracked account's private stream on the exchange (0 = all up)",
            labels=["exchange"],
        )
        per_exchange: dict[str, list[float]] = {}
        for (_, exchange), seconds in accounts.items():
            per_exchange.setdefault(exchange, []).append(seconds)
        for exchange, outages in sorted(per_exchange.items()):
            tracked.add_metric([exchange], len(outages))
            down.add_metric([exchange], max(outages))
        yield tracked
        yield down


account_streams = AccountStreams()
REGISTRY.register(account_streams)

# HTTP request metrics by route (templated path): http_requests_total{method,status,handler} and
# http_request_duration_seconds{method,handler}, built once per process (the library would otherwise register
# them again, and silently drop them, for each app a process builds). Only these two: the library's default
# set also keeps request/response size summaries and a second latency histogram, each paid on every request.
_HTTP_METRICS = [
    m
    for m in (
        http_metrics.requests(registry=REGISTRY),
        http_metrics.latency(
            registry=REGISTRY, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
        ),
    )
    if m is not None
]


def http_observers() -> list[Callable[[Any], None]]:
    """The request metrics' observers, for a route served outside the instrumented app (api/fast.py)."""
    return list(_HTTP_METRICS)


def instrument(app: FastAPI) -> None:
    """Count and time every HTTP request of `app` (not /metrics itself) on this registry."""
    instrumentator = Instrumentator(registry=REGISTRY, excluded_handlers=["/metrics"])
    for m in _HTTP_METRICS:
        instrumentator.add(m)
    instrumentator.instrument(app)


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


# labelled children looked up once: `labels()` costs microseconds, and these two count every state write
_redis_children: dict[tuple[str, bool], Any] = {}
_event_children: dict[str, Any] = {}


def count_redis(operation: str, ok: bool, n: int = 1) -> None:
    child = _redis_children.get((operation, ok))
    if child is None:
        child = redis_operations.labels(operation=operation, status="ok" if ok else "error")
        _redis_children[(operation, ok)] = child
    child.inc(n)


def count_events(event_types: Any) -> None:
    for t in event_types:
        if t:
            child = _event_children.get(t)
            if child is None:
                child = _event_children[t] = events.labels(event_type=t)
            child.inc()


# supervision and the account actors (issue 11)
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

stale_writes_refused = Counter(
    "stale_writes_refused_total",
    "State writes refused by the fence: this worker's lease of the account was gone (issue 14)",
    ["exchange"],
    registry=REGISTRY,
)
leases_held = Gauge("account_leases_held", "Account leases this worker holds", registry=REGISTRY)
leases_lost = Counter(
    "account_leases_lost_total",
    "Account leases this worker found expired or taken at renewal",
    registry=REGISTRY,
)
lease_moves = Counter(
    "account_lease_moves_total",
    "Account leases taken or released by this worker",
    ["action"],
    registry=REGISTRY,
)
