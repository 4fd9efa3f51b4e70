"""Issue 13 item 2: the dashboard in headless Chromium against the service on its simulator."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

from playwright.sync_api import Locator, Page, expect

from .conftest import ADMIN, ALICE, Service, Watched, screenshot, sign_in

SOL = "SOL-USDT-SWAP"  # no demo price feed moves it: the tests set its price


def test_overview_loads_with_no_console_error_and_no_request_off_loopback(
    service: Service, watched: Watched
) -> None:
    page = watched.page
    sign_in(page, service, ADMIN)
    expect(page.get_by_test_id("overview")).to_be_visible()
    accounts = page.get_by_test_id("accounts-table")
    expect(accounts.locator('[data-key="demo|okx"]')).to_be_visible()
    expect(accounts.locator('[data-key="demo|okx"]')).to_contain_text("connected")
    expect(page.get_by_test_id("figure-redis")).to_contain_text("reachable")
    expect(page.get_by_test_id("feed-state")).to_contain_text("live")
    page.reload()  # signed in: the token stays for this tab
    expect(page.get_by_test_id("overview")).to_be_visible()
    expect(accounts.locator('[data-key="demo|okx"]')).to_be_visible()
    page.goto(f"{service.url}/dashboard#/account/demo/okx")
    expect(page.get_by_test_id("positions-table").locator('[data-key="BTC-USDT-SWAP|long"]')).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert watched.errors == []
    assert watched.foreign_requests() == []
    assert any("/dashboard/static/vendor/lightweight-charts.mjs" in u for u in watched.requests)
    screenshot(page, "account-demo")
    page.goto(f"{service.url}/dashboard#/")
    expect(page.get_by_test_id("accounts-table").locator('[data-key="demo|okx"]')).to_be_visible()
    screenshot(page, "overview", doc_name="dashboard-overview.png")


def unique_user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def row(page: Page, table: str, key: str) -> Locator:
    return page.get_by_test_id(table).locator(f'[data-key="{key}"]')


def test_wrong_token_is_refused_with_a_visible_message(service: Service, watched: Watched) -> None:
    page = watched.page
    sign_in(page, service, "not-a-configured-token-0000")
    expect(page.get_by_test_id("signin-error")).to_have_text("invalid token")
    expect(page.get_by_test_id("overview")).to_have_count(0)
    screenshot(page, "signin-refused")
    page.get_by_label("Token").fill(ALICE)  # a user's token: it sees only its users
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("overview")).to_be_visible()
    expect(page.get_by_test_id("accounts-table").locator('[data-key="demo|okx"]')).to_have_count(0)


def test_a_fill_on_the_simulator_shows_in_the_positions_table_within_2_s(
    service: Service, watched: Watched
) -> None:
    user = unique_user("fill")
    service.onboard(user, (SOL, "150"))
    with service.api() as api:
        order = {"user_id": user, "exchange": "okx", "symbol": SOL, "side": "buy", "order_type": "limit",
                 "quantity": "2", "price": "149"}  # fmt: skip
        assert api.post("/api/v1/orders", json=order).status_code == 201
    page = watched.page
    sign_in(page, service, ADMIN)
    expect(page.get_by_test_id("overview")).to_be_visible()
    page.goto(f"{service.url}/dashboard#/account/{user}/okx")
    expect(page.get_by_test_id("orders-table")).to_have_attribute("data-rows", "1")
    expect(page.get_by_test_id("positions-table")).to_have_attribute("data-rows", "0")
    page.evaluate("window.__notReloaded = true")
    with service.sim() as sim:
        started = time.monotonic()
        assert sim.post("/sim/prices", json={"symbol": SOL, "price": "148.9"}).status_code == 200  # fills
        expect(row(page, "positions-table", f"{SOL}|long")).to_be_visible(timeout=2000)
        elapsed = time.monotonic() - started
    print(f"\nfill on the simulator -> row in the positions table: {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0
    expect(row(page, "positions-table", f"{SOL}|long")).to_contain_text("2")
    expect(page.get_by_test_id("orders-table")).to_have_attribute("data-rows", "0")
    assert page.evaluate("window.__notReloaded") is True
    assert watched.errors == []


def test_trailing_stop_from_the_page_draws_moves_and_closes_the_position(
    service: Service, watched: Watched
) -> None:
    user = unique_user("trail")
    service.onboard(user, (SOL, "150"))
    with service.api() as api:
        opened = api.post("/api/v1/positions/open", json={"user_id": user, "exchange": "okx", "symbol": SOL,
                          "side": "long", "size": "1", "stop_loss": "140", "take_profit": "165"})  # fmt: skip
        assert opened.status_code == 201, opened.text
        entry = format(
            Decimal(opened.json()["position"]["entry_price"]).normalize(), "f"
        )  # filled at the ask
    page = watched.page
    sign_in(page, service, ADMIN)
    expect(page.get_by_test_id("overview")).to_be_visible()
    page.goto(f"{service.url}/dashboard#/account/{user}/okx")
    position = row(page, "positions-table", f"{SOL}|long")
    expect(position).to_be_visible()
    lines = page.get_by_test_id("chart-lines")
    expect(lines.locator('[data-line="entry"]')).to_have_attribute("data-price", entry)
    expect(lines.locator('[data-line="stop-loss"]')).to_have_attribute("data-price", "140")
    expect(lines.locator('[data-line="take-profit"]')).to_have_attribute("data-price", "165")

    position.get_by_test_id("trail").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Callback rate (%)").fill("1")
    dialog.get_by_test_id("confirm").click()
    expect(dialog).to_have_count(0)
    trailing = lines.locator('[data-line="trailing"]')
    expect(trailing).to_have_attribute("data-price", "148.5")  # 150 x (1 - 1 %)
    expect(page.get_by_test_id("stops-table")).to_contain_text("active")

    with service.sim() as sim:
        for price in ("150.5", "151", "151.5", "152"):  # a new extreme
            assert sim.post("/sim/prices", json={"symbol": SOL, "price": price}).status_code == 200
            time.sleep(0.3)
        expect(trailing).to_have_attribute("data-price", "150.48", timeout=8000)  # 152 x 0.99
        expect(page.get_by_test_id("stops-table").get_by_test_id("stop-price")).to_have_text("150.48")
        screenshot(page, "account-trailing-stop", doc_name="dashboard-account.png")
        assert sim.post("/sim/prices", json={"symbol": SOL, "price": "150.2"}).status_code == 200  # fires
        expect(position).to_have_count(0, timeout=10_000)
    expect(page.get_by_test_id("stops-table")).to_contain_text("executed")
    expect(trailing).to_have_count(0)
    assert watched.errors == []
