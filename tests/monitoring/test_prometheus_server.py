"""A real Prometheus (Debian's package) scrapes the service, as an operator would run it: the service's series
arrive, every Grafana query runs, and AccountStreamDown fires when an account's stream is held down (the
simulator is stopped, so every reconnect is refused). The rule is the real one with its 60 s threshold cut
to 2 s; nothing else changes."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from playwright.sync_api import sync_playwright

from position_order_service.store.embedded import free_port

from ..browser.conftest import CHROMIUM, CHROMIUM_ARGS, screenshot
from ..processes import Process, cleaned, service_env, start_service, start_simulator, wait_until
from .support import ALERTS, require_tool
from .test_grafana_dashboard import queries

SYMBOL = "BTC-USDT-SWAP"


def fast_rules(tmp: Path) -> Path:
    doc = yaml.safe_load(ALERTS.read_text())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AccountStreamDown"]
    assert rule["expr"].endswith("> 60") and "for" not in rule
    rule["expr"] = rule["expr"].removesuffix("> 60") + "> 2"
    path = tmp / "alerts.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start_prometheus(tmp: Path, target: str) -> Process:
    binary = require_tool("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(fast_rules(tmp))],
        "scrape_configs": [{"job_name": "position-order-service", "static_configs": [{"targets": [target]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-admin-api"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    process = Process("prometheus", proc, log, f"http://127.0.0.1:{port}")

    def ready() -> bool:
        assert process.alive(), process.tail()
        try:
            return httpx.get(f"{process.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, within=30, what="Prometheus")
    return process


def query(prom: Process, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]  # type: ignore[no-any-return]


def value(prom: Process, expr: str) -> float | None:
    result = query(prom, expr)
    return float(result[0]["value"][1]) if result else None


def firing(prom: Process, name: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def alerts_page_screenshot(url: str) -> None:
    """Prometheus' own alerts page with the firing alert opened, for the README's Monitoring section."""
    if not Path(CHROMIUM).exists():
        return
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 720},
        )
        try:
            page = ctx.new_page()
            page.goto(url)
            page.get_by_text("AccountStreamDown").first.click()
            page.get_by_text("exchange=").first.wait_for()
            screenshot(page, "prometheus-alert-firing", doc_name="monitoring-alert.png")
        finally:
            ctx.close()


def test_prometheus_scrapes_the_service_and_fires_when_a_stream_is_held_down(
    real_redis_url: str, tmp_path: Path
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    sim = start_simulator(tmp_path)
    procs = [sim]
    try:
        with cleaned(real_redis_url, prefix):
            control = httpx.Client(base_url=sim.url, timeout=10)
            account = {"api_key": "k1", "secret": "s1", "passphrase": "p1"}
            assert control.post("/sim/accounts", json=account).status_code == 201
            assert control.post("/sim/prices", json={"symbol": SYMBOL, "price": "60000"}).status_code == 200
            env = service_env(real_redis_url, prefix, tmp_path, SIM="off", OKX_BASE_URL=sim.url)
            service = start_service(env, tmp_path)
            procs.append(service)
            api = httpx.Client(base_url=service.url, timeout=30)
            assert api.put("/api/v1/users/u1/credentials/okx", json=account).status_code == 204
            assert api.post("/api/v1/users/u1/activate", json={"exchanges": ["okx"]}).status_code == 200
            assert api.get("/api/v1/positions/u1/okx").status_code == 200  # an HTTP series to see

            prom = start_prometheus(tmp_path, service.url.removeprefix("http://"))
            procs.append(prom)
            wait_until(
                lambda: value(prom, 'accounts_tracked{exchange="okx"}') == 1,
                within=30,
                what="accounts_tracked",
            )
            assert value(prom, 'up{job="position-order-service"}') == 1
            assert value(prom, 'account_stream_down_seconds{exchange="okx"}') == 0
            assert value(prom, "redis_up") == 1
            assert (value(prom, "process_resident_memory_bytes") or 0) > 0
            assert query(prom, 'http_requests_total{handler="/api/v1/positions/{user_id}/{exchange}"}')
            for _title, expr in queries():  # every Grafana query is valid PromQL on a real Prometheus
                query(prom, expr)
            assert not firing(prom, "AccountStreamDown")

            sim.stop()  # the exchange goes away: the stream drops and every reconnect is refused
            alerts = wait_until(
                lambda: firing(prom, "AccountStreamDown"), within=45, what="AccountStreamDown"
            )
            assert alerts[0]["labels"]["exchange"] == "okx" and alerts[0]["labels"]["severity"] == "critical"
            assert (value(prom, 'account_stream_down_seconds{exchange="okx"}') or 0) > 2
            print(f"\nAccountStreamDown fired: {alerts[0]['annotations']['summary']}")
            alerts_page_screenshot(f"{prom.url}/classic/alerts")
    finally:
        for p in reversed(procs):
            p.stop()
