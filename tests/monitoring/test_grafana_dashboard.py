"""deploy/grafana/position-order-service.json: a dashboard Grafana can import (schema sanity) whose every
query reads metrics the service serves. (Each expression is also run on a real Prometheus in
test_prometheus_server.py, which proves it parses.)"""

from __future__ import annotations

import json
from typing import Any

from ..api.conftest import Api
from .support import GRAFANA, SYNTHETIC, metric_names, served_names

PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard() -> dict[str, Any]:
    data = json.loads(GRAFANA.read_text())
    assert isinstance(data, dict)
    return data


def queries() -> list[tuple[str, str]]:
    return [
        (p["title"], t["expr"]) for p in dashboard()["panels"] if p["type"] != "row" for t in p["targets"]
    ]


def test_dashboard_schema_sanity() -> None:
    d = dashboard()
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
        assert key in d, key
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p["title"], p
        g = p["gridPos"]
        assert 0 <= g["x"] and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
        if p["type"] == "row":
            continue
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), p["title"]


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    read = set().union(*(metric_names(e) for _, e in queries()))
    wanted = {
        "accounts_tracked",  # tracked accounts
        "stream_reconnects_total",  # stream reconnects
        "events_total",  # events/s by type
        "fill_to_event_seconds_bucket",  # fill -> event latency
        "trailing_tick_to_order_seconds_bucket",  # tick -> order latency
        "trailing_stop_outcomes_total",  # trigger outcomes
        "rule_outcomes_total",
        "stream_consumer_lag",  # history writer lag
        "http_request_duration_seconds_bucket",  # HTTP latency by route
        "process_cpu_seconds_total",  # process CPU
        "process_resident_memory_bytes",  # and memory
    }
    assert wanted <= read, wanted - read


async def test_every_query_reads_metrics_the_service_serves(api: Api) -> None:
    served = served_names((await api.client.get("/metrics")).text) | SYNTHETIC
    for title, expr in queries():
        missing = metric_names(expr) - served
        assert not missing, f"panel {title!r} reads {missing}, which /metrics does not serve"
