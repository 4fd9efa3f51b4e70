"""Shared pieces of the fault and limit tests: one simulator per venue with a funded account, real ccxt.pro
clients, and a recorder of the raw messages the ccxt client receives (imported explicitly, no conftest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from position_order_service.exchanges.ccxt_factory import make_client
from position_order_service.sim.binance_wire import FRONT_KEY as BINANCE_FRONT
from position_order_service.sim.okx import HUB_KEY as OKX_HUB
from position_order_service.sim.server import SimServer

KEY, SECRET, PASS = "fault-key", "fault-secret", "fault-pass"
SYMBOL = "BTC/USDT:USDT"
WAIT = 5.0


def quick_close(client: Any) -> Any:
    """No grace period on close: ccxt waits ``timeout_on_exit`` (250 ms) for TLS shutdowns; loopback has none."""
    client.timeout_on_exit = 0
    return client


@dataclass
class Venue:
    """A simulator of one venue, its account, and the venue's words for the same things."""

    name: str
    server: SimServer
    http: aiohttp.ClientSession
    clients: list[Any] = field(default_factory=list)

    @property
    def inst_id(self) -> str:
        return "BTC-USDT-SWAP" if self.name == "okx" else "BTCUSDT"

    @property
    def amount(self) -> float:
        return 1 if self.name == "okx" else 0.01  # ccxt amounts: OKX contracts, Binance BTC

    @property
    def cancel_path(self) -> str:
        return "/api/v5/trade/cancel-order" if self.name == "okx" else "/fapi/v1/order"

    @property
    def cancel_method(self) -> str:
        return "POST" if self.name == "okx" else "DELETE"

    @property
    def place_path(self) -> str:
        return "/api/v5/trade/order" if self.name == "okx" else "/fapi/v1/order"

    @property
    def orders_channel(self) -> str:
        return "orders" if self.name == "okx" else "ORDER_TRADE_UPDATE"

    async def client(self, timeout_ms: int = 10_000) -> Any:
        c = quick_close(make_client(self.name, self.server.url, KEY, SECRET, PASS, timeout_ms=timeout_ms))
        if self.name == "okx":
            c.options["createOrder"] = "privatePostTradeOrder"  # one order per request: trade/order
        self.clients.append(c)
        await c.load_markets()
        return c

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.server.url + path, json=body) as resp:
            data = await resp.json()
            assert resp.status < 300, data
            return data

    async def faults(self, body: dict[str, Any]) -> Any:
        return await self.control("POST", "/sim/faults", body)

    async def applied(self) -> dict[str, int]:
        state = await self.control("GET", "/sim/state")
        return dict(state["faults_applied"])

    async def resting_buy(self, client: Any, cid: str | None = None, price: float = 59000) -> dict[str, Any]:
        params = {} if cid is None else {"clientOrderId": cid}
        order: dict[str, Any] = await client.create_order(SYMBOL, "limit", "buy", self.amount, price, params)
        return order

    async def orders_stream_ready(self) -> None:
        """Wait until the simulator holds an order subscription of the account (pushes cannot be missed)."""
        app = self.server.app
        assert app is not None
        if self.name == "okx":
            hub = app[OKX_HUB]
            await wait_until(
                lambda: any(c.subs.get("orders") for c in hub.conns), what="an orders subscription"
            )
        else:
            front = app[BINANCE_FRONT]
            account_id = self.server.ctx.engine.account_by_key(KEY).account_id
            await wait_until(lambda: bool(front.hub.user_connections(account_id)), what="a user stream")

    def engine_order_state(self, order_id: str) -> str:
        o = self.server.ctx.engine.get_order(KEY, order_id=order_id)
        return o.state.value


@pytest.fixture(params=["okx", "binance"])
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[Venue]:
    server = await SimServer(request.param).start()
    server.ctx.engine.create_account(KEY, SECRET, PASS if request.param == "okx" else None,
                                     balances={"USDT": "1000000"})  # fmt: skip
    server.ctx.engine.set_price("BTC-USDT-SWAP" if request.param == "okx" else "BTCUSDT", "60000")
    async with aiohttp.ClientSession() as http:
        v = Venue(request.param, server, http)
        try:
            yield v
        finally:
            for c in v.clients:
                await c.close()
            await server.stop()


class Recorder:
    """Every message the ccxt client parses, in arrival order (wraps the instance's ``handle_message``,
    which ccxt binds when it opens a socket: install before the first watch)."""

    def __init__(self, client: Any) -> None:
        self.messages: list[Any] = []
        self.times: list[float] = []  # time.monotonic() of each message's arrival
        original = client.handle_message

        def handle(conn: Any, message: Any) -> Any:
            self.messages.append(message)
            self.times.append(time.monotonic())
            return original(conn, message)

        client.handle_message = handle

    def order_pushes(self, venue: str) -> list[dict[str, Any]]:
        """Order updates as (client order id, state) dicts, one per data entry, in arrival order."""
        return [p for m in self.messages for p in self.order_pushes_of(m, venue)]

    @staticmethod
    def order_pushes_of(m: Any, venue: str) -> list[dict[str, Any]]:
        if not isinstance(m, dict):
            return []
        if venue == "okx" and m.get("arg", {}).get("channel") == "orders" and "data" in m:
            return [{"cid": d["clOrdId"], "state": d["state"], "raw": d} for d in m["data"]]
        if venue == "binance" and m.get("e") == "ORDER_TRADE_UPDATE":
            o = m["o"]
            return [{"cid": o["c"], "state": o["X"], "raw": m}]
        return []


async def wait_until(check: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def keep_watching(watch: Callable[[], Awaitable[Any]]) -> asyncio.Task[None]:
    """Run a ccxt watch in a loop (the recorder sees what arrives); cancel the task to stop."""

    async def loop() -> None:
        while True:
            await watch()

    return asyncio.get_running_loop().create_task(loop())
