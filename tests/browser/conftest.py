"""The dashboard in a real browser: Debian's Chromium driven by Playwright for Python (never `playwright
install`), against the service started as a process on free ports with its in-process simulators.

One service and one browser serve the package's tests; each test opens its own page (its own session storage,
so it signs in itself) and uses its own users. Screenshots go to tests/artifacts/dashboard/ (gitignored);
with UPDATE_DOC_SCREENSHOTS=1 the README's copies in docs/img/ are refreshed from them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Playwright, Request, sync_playwright

from ..conftest import IN_CI, require_server
from ..processes import ROOT, Process, cleaned, service_env, start_service
from ..processes import wait_until as wait

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ADMIN = "dashboard-admin-token-0123456789"
ALICE = "dashboard-alice-token-0123456789"
ARTIFACTS = ROOT / "tests" / "artifacts" / "dashboard"
DOC_IMAGES = ROOT / "docs" / "img"


@dataclass
class Service:
    process: Process
    sim_url: str

    @property
    def url(self) -> str:
        return self.process.url

    def api(self, token: str = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def sim(self) -> httpx.Client:
        return httpx.Client(base_url=self.sim_url, timeout=10)

    def onboard(self, user: str, price: tuple[str, str] | None = None) -> None:
        """A user with a funded simulator account, stored credentials and tracking started."""
        account = {"api_key": f"key-{user}", "secret": f"secret-{user}", "passphrase": f"pass-{user}"}
        with self.sim() as sim, self.api() as api:
            r = sim.post("/sim/accounts", json={**account, "balances": {"USDT": "1000000"}})
            assert r.status_code == 201, r.text
            if price:
                assert (
                    sim.post("/sim/prices", json={"symbol": price[0], "price": price[1]}).status_code == 200
                )
            assert api.put(f"/api/v1/users/{user}/credentials/okx", json=account).status_code == 204
            assert api.post(f"/api/v1/users/{user}/activate", json={"exchanges": ["okx"]}).status_code == 200

            def ready() -> bool:
                accounts = api.get("/api/v1/accounts").json()["accounts"]
                return any(a["user_id"] == user and a["connected"] for a in accounts)

            wait(ready, 20, f"{user}'s streams")


@dataclass
class Watched:
    """A page with every console error, page error and request it made recorded."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        return [
            u
            for u in self.requests
            if urlsplit(u).hostname not in ("127.0.0.1", None) and not u.startswith("data:")
        ]


@pytest.fixture(scope="package")
def chromium_ok() -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="package")
def service(
    chromium_ok: None, real_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    require_server("Redis", "127.0.0.1", 6379)
    tmp = tmp_path_factory.mktemp("dashboard-service")
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    from position_order_service.store.embedded import free_port

    env = service_env(
        real_redis_url, prefix, tmp, SIM="on", SIM_PORT=str(free_port()), SIM_BINANCE_PORT=str(free_port()),
        API_TOKENS=f"{ADMIN}=*;{ALICE}=alice", DEMO_USER="demo",
    )  # fmt: skip
    with cleaned(real_redis_url, prefix):
        process = start_service(env, tmp)
        try:
            status = httpx.get(
                f"{process.url}/api/v1/status", headers={"Authorization": f"Bearer {ADMIN}"}
            ).json()
            for sim_url in status["simulators"].values():
                # tests onboard several users at once: over OKX's 3 connection attempts per second, which the
                # embedded simulators enforce like the venue (the service would retry, slower)
                httpx.post(f"{sim_url}/sim/limits", json={"enabled": False}).raise_for_status()
            yield Service(process, status["simulators"]["okx"])
        finally:
            process.stop()
            print(f"\nservice log: {process.log}")


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def context(
    chromium_ok: None, playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir
    ctx = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1440, "height": 1000}, device_scale_factor=1,
    )  # fmt: skip
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def watched(context: BrowserContext) -> Iterator[Watched]:
    page = context.new_page()
    w = Watched(page)
    page.on("console", lambda m: w.errors.append(f"console: {m.text}") if _is_error(m) else None)
    page.on("pageerror", lambda e: w.errors.append(f"page error: {e}"))
    page.on("request", lambda r: _record(w, r))
    yield w
    page.close()


def _is_error(message: ConsoleMessage) -> bool:
    return message.type == "error"


def _record(w: Watched, request: Request) -> None:
    w.requests.append(request.url)


def sign_in(page: Page, service: Service, token: str) -> None:
    page.goto(f"{service.url}/dashboard")
    page.get_by_label("Token").fill(token)
    page.get_by_test_id("signin-submit").click()


def screenshot(page: Page, name: str, doc_name: str | None = None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"\nscreenshot: {path}")
    if doc_name and os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / doc_name)
        print(f"README screenshot refreshed: {DOC_IMAGES / doc_name}")
    return path
