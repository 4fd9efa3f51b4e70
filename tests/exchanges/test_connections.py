"""The service's own gateways and the venues' connection rules: the private sockets are reported open once they
are (an account's first snapshot waits for that), and many accounts starting at once are paced within OKX's
connection limit (3 attempts per second per address) instead of refused."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from position_order_service.domain.enums import Exchange
from position_order_service.exchanges.base import Credentials, ExchangeGateway, SocketsPending
from position_order_service.exchanges.ccxt_factory import (
    ConnectionLimits,
    ConnectPacer,
    make_client,
    pace_connections,
    set_connection_limits,
)
from position_order_service.exchanges.factory import build_gateway
from position_order_service.exchanges.markets import MarketRegistry
from position_order_service.sim.server import SimServer


async def _account(http: aiohttp.ClientSession, server: SimServer, n: int) -> Credentials:
    body = {"api_key": f"k{n}", "secret": f"s{n}", "passphrase": f"p{n}", "balances": {"USDT": "1000"}}
    async with http.post(server.url + "/sim/accounts", json=body) as resp:
        assert resp.status < 300, await resp.text()
    return Credentials(f"k{n}", f"s{n}", f"p{n}")


async def _refused(http: aiohttp.ClientSession, server: SimServer) -> Any:
    async with http.get(server.url + "/sim/limits") as resp:
        return (await resp.json())["refused_connections"]


async def test_the_pacer_admits_its_limit_per_window_and_makes_the_next_wait() -> None:
    pacer = ConnectPacer(3, 0.3)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(3):
        await pacer.wait()
    assert loop.time() - t0 < 0.1
    await pacer.wait()
    assert loop.time() - t0 >= 0.29


async def test_private_streams_are_ready_only_once_their_sockets_are_open() -> None:
    server = await SimServer("okx", limits=False).start()
    gateways: list[ExchangeGateway] = []
    try:
        async with aiohttp.ClientSession() as http:
            gw = await build_gateway(
                "okx", "u1", await _account(http, server, 1), base_url=server.url, registry=MarketRegistry()
            )
            gateways.append(gw)
            assert await gw.streams_ready(0.3) is False  # nobody watches: no private socket yet
            watch = asyncio.ensure_future(gw.watch_orders())
            try:
                assert await gw.streams_ready(5.0) is True
            finally:
                watch.cancel()
    finally:
        for g in gateways:
            await g.close()
        await server.stop()


async def test_many_accounts_starting_at_once_are_admitted_within_okx_s_connection_limit() -> None:
    server = await SimServer("okx").start()  # limits on: 3 connection attempts per second
    registry = MarketRegistry()
    gateways: list[ExchangeGateway] = []
    watches: list[asyncio.Future[Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(4):  # 4 accounts x (/private + /business) = 8 attempts at once
                creds = await _account(http, server, n)
                gateways.append(
                    await build_gateway("okx", f"u{n}", creds, base_url=server.url, registry=registry)
                )
            watches = [asyncio.ensure_future(gw.watch_orders()) for gw in gateways]
            ready = await asyncio.gather(*(gw.streams_ready(8.0) for gw in gateways))
            failed = [w.exception() for w in watches if w.done()]
            assert failed == [] and ready == [True] * 4, (failed, ready)
            assert await _refused(http, server) == {"okx": 0}
    finally:
        for w in watches:
            w.cancel()
        for g in gateways:
            await g.close()
        await server.stop()


async def test_a_pacer_with_spacing_spreads_its_attempts_and_the_venues_keep_their_bursts() -> None:
    pacer = ConnectPacer(10, 1.05, 0.105)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(4):
        await pacer.wait()
    assert loop.time() - t0 >= 3 * 0.105 - 0.01
    limits = ConnectionLimits()
    assert limits.connect_window(Exchange.OKX) == (3, 1.05, 0.0)
    assert limits.connect_window(Exchange.BINANCE) == (300, 310.0, 0.0)


async def test_an_attempt_counts_from_when_it_completes_so_slow_arrivals_cannot_bunch_up() -> None:
    """Two attempts that take 0.2 s each (a busy loop, a slow handshake): the third starts a full window after
    the first one COMPLETED (the exchange had seen it by then), not after it started."""
    pacer = ConnectPacer(2, 0.3)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    starts: list[float] = []

    async def attempt() -> None:
        starts.append(loop.time() - t0)
        await asyncio.sleep(0.2)

    await asyncio.gather(*(pacer.run(attempt) for _ in range(3)))
    assert starts[0] < 0.05 and starts[1] < 0.05
    assert starts[2] >= 0.2 + 0.3 - 0.01, starts  # counted from the start it would have been 0.3


async def test_the_pacer_says_how_many_attempts_are_ahead_of_a_waiter_until_its_attempt_starts() -> None:
    pacer = ConnectPacer(1, 0.3, address="okx 127.0.0.1:1")
    started: list[str] = []
    release = asyncio.Event()

    async def attempt(name: str) -> None:
        started.append(name)
        await release.wait()

    def queue_up(name: str) -> asyncio.Future[None]:
        return asyncio.ensure_future(pacer.run(lambda: attempt(name), waiter=name))

    names = ["a", "b", "c", "d"]
    runs = {n: queue_up(n) for n in names}
    await asyncio.sleep(0.05)
    assert started == ["a"]  # in flight: no longer waiting
    assert [pacer.ahead_of(n) for n in names] == [None, 0, 1, 2] and pacer.queued == 3
    queue = pacer.queue_of(["d", "c", "a"])
    assert queue is not None and (queue.sockets, queue.ahead) == (2, 1), queue
    assert queue.describe().startswith("waiting for a connection slot: 1 ahead (1/s for okx 127.0.0.1:1), ~")
    runs["c"].cancel()  # leaves the queue: "d" moves up
    await asyncio.sleep(0)
    assert [pacer.ahead_of(n) for n in names] == [None, 0, None, 1] and pacer.queued == 2
    release.set()
    await asyncio.gather(runs["a"], runs["b"], runs["d"])
    assert started == ["a", "b", "d"] and pacer.queued == 0 and pacer.queue_of(names) is None


async def test_the_wait_estimate_counts_the_attempts_still_in_flight() -> None:
    """Binance-like: 3 attempts per 10 s window, all 3 still connecting: the next waiter waits at least a window
    from now (they count from their completion), not ~0 s."""
    pacer = ConnectPacer(3, 10.0, address="binance x")
    release = asyncio.Event()

    async def attempt() -> None:
        await release.wait()

    tasks = [asyncio.create_task(pacer.run(attempt, waiter=i)) for i in range(4)]
    await asyncio.sleep(0.05)
    queue = pacer.queue_of([3])
    assert queue is not None and queue.ahead == 0 and queue.eta_s >= 9.9
    release.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_gateway_says_where_its_sockets_wait_at_the_pacer_until_their_attempts_start() -> None:
    """Three accounts' sockets (/private and /business each) at 1 attempt per 1.05 s: the last one's wait at our own pacer (not attempted,
    so nothing the venue did) until their turn; once open, nothing is pending."""
    set_connection_limits(ConnectionLimits(okx_connects_per_s=1))  # (conftest restores the defaults)
    server = await SimServer("okx", limits=False).start()
    registry = MarketRegistry()
    gateways: list[ExchangeGateway] = []
    watches: list[asyncio.Future[Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(3):
                creds = await _account(http, server, n)
                gateways.append(
                    await build_gateway("okx", f"u{n}", creds, base_url=server.url, registry=registry)
                )
            assert [gw.sockets_pending() for gw in gateways] == [SocketsPending()] * 3  # no socket yet
            for gw in gateways:
                watches.append(asyncio.ensure_future(gw.watch_orders()))
                await asyncio.sleep(0.05)  # (in this order at the pacer)
            last = gateways[-1].sockets_pending()
            assert last.queued is not None and last.attempted_since is None, last
            assert last.queued.ahead >= 1 and last.queued.describe().startswith(
                "waiting for a connection slot: "
            ), last
            first = gateways[0].sockets_pending()  # /private admitted at once and open, /business next
            assert first.queued is not None and first.queued.ahead < last.queued.ahead, (first, last)
            assert first.attempted_since is None, first
            ready = await asyncio.gather(*(gw.streams_ready(10.0) for gw in gateways))
            assert ready == [True] * 3
            assert [gw.sockets_pending() for gw in gateways] == [SocketsPending()] * 3
    finally:
        for w in watches:
            w.cancel()
        for g in gateways:
            await g.close()
        await server.stop()


async def _subscribe_three_tickers(paced: bool) -> tuple[int, Any]:
    """One public OKX socket subscribing three symbols, the venue allowing 2 requests per connection per hour."""
    server = await SimServer("okx").start()
    client = make_client("okx", server.url)
    limits = ConnectionLimits(okx_requests_per_conn_per_hour=2, reconnect_jitter_s=0)
    if paced:
        pace_connections(client, ConnectPacer(3, 1.05, 0.35), limits, Exchange.OKX)
    watches: list[asyncio.Future[Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/sim/limits", json={"okx_ws_requests_per_conn_per_hour": 2}):
                pass
            for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"):
                watches.append(asyncio.ensure_future(client.watch_ticker(symbol)))
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.5)
            async with http.get(server.url + "/sim/state") as resp:
                closed = (await resp.json())["closed_for_requests"]["okx"]
            budget = [getattr(ws, "request_budget", None) for ws in client.clients.values()]
            return closed, budget
    finally:
        for w in watches:
            w.cancel()
        await client.close()
        await server.stop()


async def test_okx_subscribe_requests_are_paced_within_the_per_connection_hourly_budget() -> None:
    closed, _ = await _subscribe_three_tickers(paced=False)
    assert closed == 1  # the third subscribe is over the budget: 60014 and the socket closed
    closed, budgets = await _subscribe_three_tickers(paced=True)
    assert closed == 0
    assert len(budgets) == 1 and budgets[0] is not None and budgets[0].waited >= 1  # the third one waits
