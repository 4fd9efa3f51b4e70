"""GET /metrics parses with the Prometheus client parser and moves when work is done."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .conftest import Api


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lbl), v in values.items()
        if n == name and all(dict(lbl).get(k) == x for k, x in labels.items())
    )


async def test_metrics_parse_and_move(api: Api) -> None:
    api.engine.set_price("BTC-USDT-SWAP", "60000")
    await api.onboard("m1")
    before = samples((await api.client.get("/metrics")).text)
    r = await api.client.post(
        "/api/v1/orders",
        json={"user_id": "m1", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "side": "buy",
              "order_type": "market", "quantity": "0.01"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    after = samples((await api.client.get("/metrics")).text)
    assert (
        total(after, "order_manager_latency_seconds_count")
        == total(before, "order_manager_latency_seconds_count") + 1
    )
    assert total(after, "redis_operations_total", operation="apply", status="ok") > total(
        before, "redis_operations_total", operation="apply", status="ok"
    )
    assert total(after, "exchange_call_latency_seconds_count", endpoint="create_order") > total(
        before, "exchange_call_latency_seconds_count", endpoint="create_order"
    )
    assert total(after, "events_total") > total(before, "events_total")
    assert total(after, "tracked_users") >= 2  # demo + m1
    for name in ("position_manager_latency_seconds", "trailing_tick_to_order_seconds", "stream_consumer_lag",
                 "active_trailing_stops", "active_conditional_rules", "stream_reconnects_total",
                 "reconciliation_corrections_total", "exchange_errors_total"):  # fmt: skip
        assert f"# HELP {name}" in (await api.client.get("/metrics")).text
