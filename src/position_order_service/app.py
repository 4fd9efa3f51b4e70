"""Wiring: builds every part once, in one place, and hands the FastAPI app its context."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from redis.asyncio import Redis

from . import __version__, metrics
from .api.auth import TokenGrant, parse_tokens
from .config import Settings
from .exchanges.base import Credentials, ExchangeGateway
from .history import HistoryDB, HistoryWriter
from .integrations.context import CommandServices
from .integrations.grid import GRIDAdapter
from .integrations.hyperrsi import HYPERRSIAdapter
from .services.active_users import ActiveUserManager
from .services.credentials import CredentialCipher, CredentialStore, credential_cipher
from .services.gateway_pool import GatewayPool
from .services.orders import OrderManager
from .services.positions import PositionManager
from .services.prices import PriceHub
from .services.rules import ConditionalRuleEngine
from .services.tracker import TrackerOptions
from .services.tracking import TrackingService
from .services.trailing import TrailingStopEngine
from .sim.server import DEMO_API_KEY, DEMO_PASSPHRASE, DEMO_SECRET, SimServer
from .store import Store
from .store.connection import make_redis
from .store.embedded import EmbeddedServer, start_embedded

log = logging.getLogger(__name__)


class AppContext:
    """Everything the routes and background workers share. Built by `start`, torn down by `stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.started_at_utc = datetime.now(UTC)
        self.token_grants: list[TokenGrant] = parse_tokens(settings.api_tokens.get_secret_value())
        self.embedded_redis: EmbeddedServer | None = None
        self.simulator: SimServer | None = None  # the OKX one (`make run`'s demo trades there)
        self.simulators: dict[str, SimServer] = {}
        self.base_urls = {"okx": settings.okx_base_url, "binance": settings.binance_base_url}
        self._redis: Redis | None = None
        self._parts: dict[str, Any] = {}
        self._history_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None

    # typed accessors of the parts built in start()
    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "context not started"
        return self._redis

    @property
    def store(self) -> Store:
        return self._parts["store"]  # type: ignore[no-any-return]

    @property
    def credentials(self) -> CredentialStore:
        return self._parts["credentials"]  # type: ignore[no-any-return]

    @property
    def gateways(self) -> GatewayPool:
        return self._parts["gateways"]  # type: ignore[no-any-return]

    @property
    def prices(self) -> PriceHub:
        return self._parts["prices"]  # type: ignore[no-any-return]

    @property
    def tracking(self) -> TrackingService:
        return self._parts["tracking"]  # type: ignore[no-any-return]

    @property
    def active_users(self) -> ActiveUserManager:
        return self._parts["active_users"]  # type: ignore[no-any-return]

    @property
    def history(self) -> HistoryDB | None:
        return self._parts.get("history")

    @property
    def hyperrsi(self) -> HYPERRSIAdapter:
        return self._parts["hyperrsi"]  # type: ignore[no-any-return]

    @property
    def grid(self) -> GRIDAdapter:
        return self._parts["grid"]  # type: ignore[no-any-return]

    @property
    def trailing(self) -> TrailingStopEngine:
        return self._parts["trailing"]  # type: ignore[no-any-return]

    @property
    def rules(self) -> ConditionalRuleEngine:
        return self._parts["rules"]  # type: ignore[no-any-return]

    @property
    def order_manager(self) -> OrderManager:
        return self._parts["order_manager"]  # type: ignore[no-any-return]

    @property
    def position_manager(self) -> PositionManager:
        return self._parts["position_manager"]  # type: ignore[no-any-return]

    async def start(self) -> None:
        s = self.settings
        if s.uses_embedded_redis:
            # started from the loop's own thread: the kernel's parent-death signal (PR_SET_PDEATHSIG) follows
            # the thread that forked redis-server, and a pool thread may end before the process does
            self.embedded_redis = start_embedded(s.embedded_redis_port, s.embedded_redis, s.data_dir)
            url = self.embedded_redis.url
            if self.embedded_redis.persistent:
                log.info(
                    "embedded %s listening at %s, persisting to %s (append-only file, fsync every second)",
                    self.embedded_redis.kind,
                    url,
                    s.data_dir,
                )
            else:
                log.info("embedded %s listening at %s (keeps nothing)", self.embedded_redis.kind, url)
        else:
            url = s.redis_dsn()
        self._redis = make_redis(url, health_check_interval=30)
        await self._redis.ping()
        store = self._parts["store"] = Store.create(
            self._redis, prefix=s.key_prefix, dual_write=s.dual_schema_write, retention=s.stream_retention
        )

        self._parts["credentials"] = CredentialStore(
            self._redis, store.keys, self._cipher(), allow_legacy_plaintext=s.allow_legacy_plaintext_keys
        )
        if s.runs_simulator:
            self.simulator = await _start_sim("okx", s.sim_port)
            binance = await _start_sim("binance", s.sim_binance_port)
            self.simulators = {"okx": self.simulator, "binance": binance}
            for name, sim in self.simulators.items():
                self.base_urls[name] = sim.url
            self.credentials.register_static(
                s.demo_user, "okx", Credentials(DEMO_API_KEY, DEMO_SECRET, DEMO_PASSPHRASE)
            )
            self.credentials.register_static(s.demo_user, "binance", Credentials(DEMO_API_KEY, DEMO_SECRET))
            log.info(
                "embedded simulators: OKX at %s, Binance USD-M at %s (demo user %r)",
                self.simulator.url,
                binance.url,
                s.demo_user,
            )

        from .exchanges.markets import MarketRegistry

        registry = MarketRegistry()
        self._parts["markets"] = registry

        async def build(exchange: str, user_id: str, credentials: Credentials | None) -> ExchangeGateway:
            from .exchanges.factory import build_gateway

            return await build_gateway(
                exchange,
                user_id,
                credentials,
                base_url=self.base_urls.get(exchange, ""),
                registry=registry,
            )

        gateways = self._parts["gateways"] = GatewayPool(self.credentials, build)
        prices = self._parts["prices"] = PriceHub(store, gateways, max_hz=s.price_events_max_hz)
        options = TrackerOptions(
            silent_reconcile_s=s.reconcile_silent_s, mark_interval_s=s.position_mark_interval_s
        )
        tracking = self._parts["tracking"] = TrackingService(store, gateways, prices, options)
        orders = self._parts["order_manager"] = OrderManager(store, gateways, tracking)
        self._parts["position_manager"] = PositionManager(store, gateways, tracking, orders)
        trailing = self._parts["trailing"] = TrailingStopEngine(
            store,
            gateways,
            tracking,
            orders,
            prices,
            flush_interval_s=s.trailing_flush_interval_s,
            resync_interval_s=s.engine_resync_interval_s,
            lease_s=s.trigger_lease_s,
        )
        if s.fault_kill_after_trigger:
            log.warning(
                "FAULT_KILL_AFTER_TRIGGER is on: this process kills itself when a trailing stop fires"
            )
            trailing.on_sent = lambda stop: os.kill(os.getpid(), signal.SIGKILL)
        bot_services = CommandServices.from_app(self)
        self._parts["hyperrsi"] = HYPERRSIAdapter(self._redis, bot_services)
        self._parts["grid"] = GRIDAdapter(self._redis, bot_services)
        rules = self._parts["rules"] = ConditionalRuleEngine(
            store, tracking, orders, prices, resync_interval_s=s.engine_resync_interval_s
        )
        active = self._parts["active_users"] = ActiveUserManager(
            store,
            tracking,
            user_rescan_s=s.user_rescan_interval_s,
            symbol_rescan_s=s.symbol_rescan_interval_s,
        )
        if self.simulator is not None:
            await active.activate(s.demo_user, ["okx"])
        await active.start()
        await trailing.start()
        await rules.start()
        # everything built so far lives as long as the process: keep it out of the collector's full passes
        # (a gen-2 collection over it stalled the loop for ~200 ms in bench_fill_to_pubsub)
        gc.freeze()
        metrics.set_gauge_sources(
            {
                metrics.tracked_users: lambda: len(tracking.trackers),
                metrics.active_stops: lambda: len(trailing.stops),
                metrics.active_rules: lambda: len(rules.rules),
            }
        )
        metrics.account_streams.set_source(tracking.health)
        if s.history:
            from .preflight import mask_url

            log.info("history database: %s", mask_url(s.history_url()))
            db = self._parts["history"] = await HistoryDB.open(s.history_url())
            writer = self._parts["history_writer"] = HistoryWriter(
                self._redis, store.keys, db, track_active_users=True, discover_interval_s=5
            )
            for user_id in await active.active_user_ids():
                writer.add_user(user_id)
            self._history_task = asyncio.create_task(writer.run(), name="history-writer")
            self._lag_task = asyncio.create_task(self._watch_history_lag(writer), name="history-lag")

    async def _watch_history_lag(self, writer: HistoryWriter) -> None:
        while True:
            with contextlib.suppress(Exception):
                metrics.consumer_lag.set(sum((await writer.lag()).values()))
            await asyncio.sleep(5)

    def _cipher(self) -> CredentialCipher:
        return credential_cipher(self.settings.credentials_key.get_secret_value(), self.settings.data_dir)

    async def on_credentials_changed(self, user_id: str, exchange: str) -> None:
        """New or removed credentials: rebuild the user's gateway and tracker if they are tracked."""
        if self.tracking.get(user_id, exchange) is not None or (user_id, exchange) in self.tracking.failures:
            await self.tracking.stop(user_id, exchange)
        await self.active_users.rescan_users()

    async def stop(self) -> None:
        metrics.account_streams.set_source(None)
        if self._lag_task is not None:
            self._lag_task.cancel()
        if "history_writer" in self._parts:
            self._parts["history_writer"].stop()
            if self._history_task is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await self._history_task
            await self._parts["history"].close()
        if "hyperrsi" in self._parts:
            await self.hyperrsi.close()
        for name in ("trailing", "rules", "active_users"):
            part = self._parts.get(name)
            if part is not None:
                await part.stop()
        if "tracking" in self._parts:
            await self.tracking.stop_all()
        if "prices" in self._parts:
            await self.prices.close()
        if "gateways" in self._parts:
            await self.gateways.close()
        for sim in self.simulators.values():
            await sim.stop()
        self.simulators = {}
        self.simulator = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
            self.embedded_redis = None
        self._parts.clear()

    async def readiness(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Readiness (GET /ready): Redis answers, the history writer runs, and every stream this instance
        tracks is connected. Users who cannot be tracked at all (no credentials) are listed, not counted
        against the instance: they are their operator's to fix, and restarting this one would not help."""
        checks: dict[str, dict[str, Any]] = {}
        try:
            async with asyncio.timeout(2):
                await self.redis.ping()
            checks["redis"] = {"ok": True}
        except Exception as exc:  # the probe reports, it never fails
            checks["redis"] = {"ok": False, "detail": f"unreachable: {type(exc).__name__}"}
        if not self.settings.history:
            checks["history_writer"] = {"ok": True, "detail": "history is off (HISTORY=false)"}
        else:
            task = self._history_task
            alive = task is not None and not task.done()
            checks["history_writer"] = {"ok": alive} if alive else {"ok": False, "detail": "not running"}
        health = self.tracking.health() if "tracking" in self._parts else []
        down = [
            f"{h['user_id']}/{h['exchange']}: {h['state']}"
            for h in health
            if h["state"] not in ("healthy", "error")
        ]
        untrackable = [f"{h['user_id']}/{h['exchange']}" for h in health if h["state"] == "error"]
        streams: dict[str, Any] = {"ok": not down, "connected": sum(1 for h in health if h.get("healthy"))}
        if down:
            streams["detail"] = "not connected: " + ", ".join(down)
        if untrackable:
            streams["untrackable"] = untrackable
        checks["streams"] = streams
        return all(c["ok"] for c in checks.values()), checks

    async def status(self) -> dict[str, Any]:
        redis_ok = True
        try:
            await self.redis.ping()
        except Exception:  # the status page reports, it never fails
            redis_ok = False
        tracking = self.tracking.health() if "tracking" in self._parts else []
        return {
            "service": self.settings.service_name,
            "version": __version__,
            "started_at": self.started_at_utc.isoformat(),
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "redis": {"ok": redis_ok, "embedded": self.embedded_redis.kind if self.embedded_redis else None},
            "simulator": self.simulator.url if self.simulator else None,
            "simulators": {name: sim.url for name, sim in self.simulators.items()},
            "connections": {
                "tracked_users": len({h["user_id"] for h in tracking}),
                "streams": len(self.tracking.trackers) if "tracking" in self._parts else 0,
                "healthy": sum(1 for h in tracking if h.get("healthy")),
            },
            "subscriptions": self.prices.subscriptions() if "prices" in self._parts else [],
            "trailing_stops": len(self.trailing.stops) if "trailing" in self._parts else 0,
            "conditional_rules": len(self.rules.rules) if "rules" in self._parts else 0,
            "users": tracking,
        }


async def _start_sim(venue: str, port: int) -> SimServer:
    try:
        return await SimServer(venue, port=port, demo=True).start()
    except OSError as exc:
        if port == 0:
            raise
        log.warning(
            "port %d for the %s simulator is taken (%s): using a free port", port, venue, exc.strerror
        )
        return await SimServer(venue, port=0, demo=True).start()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    ctx = AppContext(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await ctx.start()
        except BaseException:
            await ctx.stop()  # leave no embedded server or simulator behind
            raise
        try:
            yield
        finally:
            await ctx.stop()

    from .api.commands import router as commands_router
    from .api.dashboard import router as dashboard_router
    from .api.errors import install_error_handlers
    from .api.feed import router as feed_router
    from .api.health import router as health_router
    from .api.history import router as history_router
    from .api.machines import router as machines_router
    from .api.read import router as read_router
    from .api.users import router as users_router
    from .integrations.legacy_api import router as legacy_router

    # /docs and /redoc from assets shipped in a package (fastapi-offline), not a CDN: they work offline
    app = FastAPIOffline(
        title="position-order-service",
        version=__version__,
        description="Real-time positions and orders of many users on OKX and Binance USD-M, with events, "
        "trailing stops and conditional cancellation.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    metrics.instrument(app)
    install_error_handlers(app)
    for router in (
        health_router,
        read_router,
        users_router,
        commands_router,
        machines_router,
        feed_router,
        history_router,
        legacy_router,
        dashboard_router,
    ):
        app.include_router(router)
    from .dashboard import install as install_dashboard

    install_dashboard(app)
    return app
