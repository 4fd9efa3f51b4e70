"""Issue 13 item 2: the dashboard in headless Chromium against the service on its simulator."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from playwright.sync_api import Locator, Page, expect

from .conftest import ADMIN, ALICE, Service, Watched, screenshot, sign_in, wait

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
    # more accounts for the overview: one trading, one that cannot connect (no credentials stored)
    trader, broken = unique_user("ops"), unique_user("nokeys")
    service.onboard(trader, (SOL, "150"))
    with service.api() as api:
        opened = api.post("/api/v1/positions/open", json={"user_id": trader, "exchange": "okx", "symbol": SOL,
                          "side": "short", "size": "2", "stop_loss": "160"})  # fmt: skip
        assert opened.status_code == 201, opened.text
        assert api.post(f"/api/v1/users/{broken}/activate", json={"exchanges": ["okx"]}).status_code == 200
    page.goto(f"{service.url}/dashboard#/")
    table = page.get_by_test_id("accounts-table")
    expect(table.locator(f'[data-key="{trader}|okx"]')).to_contain_text("connected")
    expect(table.locator(f'[data-key="{broken}|okx"]')).to_contain_text("error")  # pushed, not reloaded
    expect(table.locator(f'[data-key="{broken}|okx"]')).to_contain_text("credentials")
    screenshot(page, "overview", doc_name="dashboard-overview.png")
    assert watched.errors == []


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


def seqs(page: Page) -> list[int]:
    cells = page.get_by_test_id("timeline").locator(".vrow > div:first-child").all_inner_texts()
    return [int(c) for c in cells]


def test_the_timeline_resumes_by_seq_after_the_feed_drops(service: Service, watched: Watched) -> None:
    user = unique_user("resume")
    service.onboard(user, (SOL, "150"))
    page = watched.page
    sign_in(page, service, ADMIN)
    expect(page.get_by_test_id("overview")).to_be_visible()
    page.goto(f"{service.url}/dashboard#/account/{user}/okx")
    expect(page.get_by_test_id("feed-state")).to_contain_text("live")
    order = {"user_id": user, "exchange": "okx", "symbol": SOL, "side": "buy", "order_type": "limit",
             "quantity": "1", "price": "120"}  # fmt: skip
    with service.api() as api:
        assert api.post("/api/v1/orders", json=order).status_code == 201
        expect(page.get_by_test_id("timeline")).to_contain_text("@ 120")
        page.evaluate("window.__dashboard.feed.drop(1500)")  # the connection is gone for 1.5 s
        expect(page.get_by_test_id("feed-state")).to_contain_text("reconnecting")
        before = seqs(page)
        for price in ("121", "122"):  # two events while the page is away
            assert api.post("/api/v1/orders", json={**order, "price": price}).status_code == 201
        assert seqs(page) == before
    expect(page.get_by_test_id("feed-state")).to_contain_text("live")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("@ 121")  # the events made while the page was away
    expect(timeline).to_contain_text("@ 122")
    shown = seqs(page)
    assert shown == list(range(len(shown), 0, -1)), shown  # every seq once, none missing
    expect(page.get_by_test_id("orders-table")).to_have_attribute("data-rows", "3")
    assert watched.errors == []


def test_actions_ask_first_go_through_the_api_and_show_its_errors(service: Service, watched: Watched) -> None:
    user = unique_user("act")
    service.onboard(user, (SOL, "150"))
    with service.api() as api:
        opened = api.post("/api/v1/positions/open", json={"user_id": user, "exchange": "okx", "symbol": SOL,
                          "side": "long", "size": "1"})  # fmt: skip
        assert opened.status_code == 201, opened.text
        limit = {"user_id": user, "exchange": "okx", "symbol": SOL, "side": "buy", "order_type": "limit",
                 "quantity": "0.5", "price": "100"}  # fmt: skip
        assert api.post("/api/v1/orders", json=limit).status_code == 201
    page = watched.page
    sign_in(page, service, ADMIN)
    expect(page.get_by_test_id("overview")).to_be_visible()
    page.goto(f"{service.url}/dashboard#/account/{user}/okx")
    dialog = page.get_by_test_id("confirm-dialog")
    orders = page.get_by_test_id("orders-table")
    expect(orders).to_have_attribute("data-rows", "1")

    # cancel an order: asked first; backing out changes nothing
    orders.get_by_test_id("cancel").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    expect(dialog).to_have_count(0)
    expect(orders).to_have_attribute("data-rows", "1")
    orders.get_by_test_id("cancel").click()
    dialog.get_by_test_id("confirm").click()
    expect(orders).to_have_attribute("data-rows", "0")

    # a trailing stop, then a second one: the API's own 409 message in the dialog
    position = row(page, "positions-table", f"{SOL}|long")
    position.get_by_test_id("trail").click()
    dialog.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("stops-table")).to_contain_text("active")
    position.get_by_test_id("trail").click()
    dialog.get_by_test_id("confirm").click()
    expect(dialog.get_by_test_id("dialog-error")).to_contain_text(
        "trailing stop exists for SOL-USDT-SWAP long; delete it first"
    )
    screenshot(page, "action-error")
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_test_id("stops-table").get_by_test_id("delete-stop").click()
    dialog.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("stops-table")).to_contain_text("cancelled")

    # close part, a refused size (the API's 422 names the field), then the rest
    position.get_by_test_id("close").click()
    dialog.get_by_label("Size (base currency)").fill("0.4")
    dialog.get_by_test_id("confirm").click()
    expect(position).to_contain_text("0.6")
    position.get_by_test_id("close").click()
    dialog.get_by_label("Size (base currency)").fill("-3")
    dialog.get_by_test_id("confirm").click()
    expect(dialog.get_by_test_id("dialog-error")).to_contain_text("size: Input should be greater than 0")
    dialog.get_by_label("Size (base currency)").fill("")
    dialog.get_by_test_id("confirm").click()
    expect(position).to_have_count(0)

    # deactivate, activate
    page.get_by_test_id("deactivate").click()
    dialog.get_by_test_id("confirm").click()
    with service.api() as api:
        wait(
            lambda: user not in {u["user_id"] for u in api.get("/api/v1/users/active").json()["users"]},
            5,
            "deactivation",
        )
        page.get_by_test_id("activate").click()
        dialog.get_by_test_id("confirm").click()
        wait(
            lambda: user in {u["user_id"] for u in api.get("/api/v1/users/active").json()["users"]},
            5,
            "activation",
        )
    assert [
        e for e in watched.errors if "status of 4" not in e
    ] == []  # refused requests log as console errors


def test_a_table_of_1000_orders_stays_responsive(service: Service, watched: Watched) -> None:
    user = unique_user("many")
    service.onboard(user, (SOL, "150"))
    started = time.monotonic()
    with service.api() as api, ThreadPoolExecutor(6) as pool:

        def place(n: int) -> int:
            order = {"user_id": user, "exchange": "okx", "symbol": SOL, "side": "buy", "order_type": "limit",
                     "quantity": "0.01", "price": f"{50 + n / 100:.2f}"}  # fmt: skip
            return api.post("/api/v1/orders", json=order).status_code

        assert set(pool.map(place, range(1000))) == {201}
    print(f"\n1000 orders placed in {time.monotonic() - started:.1f} s")
    page = watched.page
    sign_in(page, service, ADMIN)
    expect(page.get_by_test_id("overview")).to_be_visible()
    opened = time.monotonic()
    page.goto(f"{service.url}/dashboard#/account/{user}/okx")
    orders = page.get_by_test_id("orders-table")
    expect(orders).to_have_attribute("data-rows", "1000")
    print(f"account page with 1000 open orders shown in {(time.monotonic() - opened) * 1000:.0f} ms")
    rendered = orders.locator(".vrow").count()
    assert 0 < rendered < 60, rendered  # virtualized: only the rows in view (and a few around) are in the DOM
    frame_ms = page.evaluate(
        """async () => {
            const body = document.querySelector('[data-testid="orders-table"] .vbody');
            const t0 = performance.now();
            body.scrollTop = body.scrollHeight;
            body.dispatchEvent(new Event('scroll'));
            await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            return performance.now() - t0;
        }"""
    )
    print(f"scroll to the last of 1000 rows painted in {frame_ms:.0f} ms")
    assert frame_ms < 250
    last_key = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=\"orders-table\"] .vrow')].at(-1).dataset.key"
    )
    orders.scroll_into_view_if_needed()
    expect(orders.locator(f'[data-key="{last_key}"]')).to_be_in_viewport()  # the bottom row, drawn
    with service.api() as api:  # a live change lands in the big table too
        some = api.get(f"/api/v1/orders/{user}/okx/open").json()["orders"][0]
        cancel = {"user_id": user, "exchange": "okx", "order_id": some["exchange_order_id"], "symbol": SOL}
        assert api.post("/api/v1/orders/cancel", json=cancel).status_code == 200
    expect(orders).to_have_attribute("data-rows", "999", timeout=3000)
    assert watched.errors == []
