"""Wiring: the one function that builds the service's object graph (`build_graph`), and the container it
returns (`Services`, with `start`/`stop`).

Every entry point uses it: the HTTP app (app.py, through `build_service`, which first starts the embedded
Redis and simulators when configured), a bot process's command services (integrations/context.py: the same
graph, no account tracking), and the tests' harness. Everything below is built here once and handed down;
nothing else constructs a collaborator of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from . import __version__, metrics
from .api.auth import TokenGrant, parse_tokens
from .bus import Bus
from .config import Settings
from .exchanges.base import Credentials, ExchangeGateway
from .exchanges.ccxt_factory import set_connection_limits
from .exchanges.markets import MarketRegistry
from .services.account import AccountOptions, AccountRegistry
from .services.active_users import ActiveUserManager
from .services.credentials import CredentialCipher, CredentialStore, credential_cipher
from .services.gateway_pool import GatewayBuilder, GatewayPool
from .services.leases import LeaseManager
from .services.orders import OrderManager
from .services.positions import PositionManager
from .services.prices import PriceHub
from .services.rules import ConditionalRuleEngine
from .services.trailing import TrailingStopEngine
from .store import Store
from .store.connection import connect_redis, is_cluster_client, wait_until_loaded
from .supervisor import Job, Supervisor

if TYPE_CHECKING:
    from .history import HistoryDB, HistoryWriter
    from .integrations.grid import GRIDAdapter
    from .integrations.hyperrsi import HYPERRSIAdapter
    from .sim.server import SimServer
    from .store.embedded import EmbeddedServer

log = logging.getLogger(__name__)
IDLE_GATEWAY_S = 600.0  # gateways of untracked users (commands only) are closed after this long unused


@dataclass
class Services:
    """The object graph. `start()` starts the background work (account actors, engines, rescans, history);
    `stop()` stops it in reverse order and closes what `build_service` opened."""

    settings: Settings
    redis: Redis
    store: Store
    supervisor: Supervisor
    bus: Bus
    credentials: CredentialStore
    markets: MarketRegistry
    gateways: GatewayPool
    prices: PriceHub
    accounts: AccountRegistry
    order_manager: OrderManager
    position_manager: PositionManager
    trailing: TrailingStopEngine
    rules: ConditionalRuleEngine
    active_users: ActiveUserManager
    track_accounts: bool = True
    base_urls: dict[str, str] = field(default_factory=dict)
    token_grants: list[TokenGrant] = field(default_factory=list)
    hyperrsi: HYPERRSIAdapter | None = None
    grid: GRIDAdapter | None = None
    leases: LeaseManager | None = None  # scale-out: this worker's account leases (None: it tracks everyone)
    undecryptable: list[tuple[str, str]] = field(default_factory=list)  # credentials our key cannot read
    history: HistoryDB | None = None
    history_writer: HistoryWriter | None = None
    embedded_redis: EmbeddedServer | None = None
    simulators: dict[str, SimServer] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    started_at_utc: datetime = field(default_factory=lambda: datetime.now(UTC))
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _started: bool = False
    _history_job: Job | None = None

    @property
    def simulator(self) -> SimServer | None:
        """The OKX simulator (`make run`'s demo trades there)."""
        return self.simulators.get("okx")

    @property
    def tracking(self) -> AccountRegistry:
        """The account registry under its old name (scripts that read `ctx.tracking`)."""
        return self.accounts

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self._started = True
        if not self.track_accounts:
            if s.history and s.role == "api":
                await self._open_history()  # the history routes read it; the workers write it
            return
        self.prices.start()
        self.accounts.start_marks()
        if self.simulator is not None:
            await self.active_users.activate(s.demo_user, ["okx"])
        await self._check_credentials()
        if self.leases is not None:
            await self.leases.start(own_redis=self.embedded_redis is not None)
        await self.active_users.start()
        await self.trailing.start()
        await self.rules.start()
        self.supervisor.every(
            "idle-gateways",
            60.0,
            lambda: self.gateways.evict_idle(self.accounts.tracked_accounts(), IDLE_GATEWAY_S),
        )
        metrics.set_gauge_sources(
            {
                metrics.tracked_users: lambda: len(self.accounts.actors),
                metrics.active_stops: lambda: len(self.trailing.stops),
                metrics.active_rules: lambda: len(self.rules.rules),
            }
        )
        metrics.account_streams.set_source(self.accounts.health)
        if s.history:
            await self._start_history()

    async def _check_credentials(self) -> None:
        """Every process of a deployment shares CREDENTIALS_KEY: say so in one line (and in /ready) when
        stored credentials of active accounts cannot be decrypted with ours."""
        wanted = sorted(await self.active_users.desired())
        self.undecryptable = await self.credentials.undecryptable(wanted)
        if self.undecryptable:
            names = ", ".join(f"{u}/{e}" for u, e in self.undecryptable[:10])
            more = f" and {len(self.undecryptable) - 10} more" if len(self.undecryptable) > 10 else ""
            log.error(
                "CREDENTIALS_KEY cannot decrypt the stored credentials of %d account(s): %s%s; this process "
                "cannot track them (every process of a deployment must share one CREDENTIALS_KEY)",
                len(self.undecryptable), names, more,
            )  # fmt: skip

    async def _open_history(self) -> HistoryDB:
        from .history import HistoryDB
        from .preflight import mask_url

        log.info("history database: %s", mask_url(self.settings.history_url()))
        db = self.history = await HistoryDB.open(self.settings.history_url())
        return db

    async def _start_history(self) -> None:
        from .history import HistoryWriter

        db = await self._open_history()
        writer = self.history_writer = HistoryWriter(
            self.redis,
            self.store.keys,
            db,
            track_active_users=True,
            discover_interval_s=5,
            linger_s=self.settings.history_linger_ms / 1000,
        )
        for user_id in await self.active_users.active_user_ids():
            writer.add_user(user_id)
        if self.leases is not None:  # one active history writer among the workers, by lease
            leases = self.leases

            async def by_lease() -> None:
                await leases.run_as_singleton("history-writer", writer.run, writer.stop)

            self._history_job = self.supervisor.spawn("history-writer", by_lease)
        else:
            self._history_job = self.supervisor.spawn("history-writer", writer.run)

        async def lag() -> None:
            metrics.consumer_lag.set(sum((await writer.lag()).values()))

        self.supervisor.every("history-lag", 5.0, lag, first_delay_s=0)

    async def stop(self) -> None:
        if self._started and self.track_accounts:
            metrics.account_streams.set_source(None)
        if self.history_writer is not None:
            self.history_writer.stop()
        for part in (self.hyperrsi, self.grid):
            if part is not None:
                await part.close()
        if self._started and self.track_accounts:
            await self.trailing.stop()
            await self.rules.stop()
            await self.active_users.stop()
        if self.leases is not None:
            await self.leases.stop()  # the actors stop, then every lease is released at once
        await self.accounts.stop_all()
        await self.supervisor.stop()  # the bus, the price feeds, the history writer, the periodic jobs
        if self.history is not None:
            await self.history.close()
            self.history = None
        await self.prices.close()
        await self.gateways.close()
        for close in reversed(self.closers):
            await close()
        self.closers = []

    # -- what the API asks of the whole ----------------------------------------------------------------
    async def on_credentials_changed(self, user_id: str, exchange: str) -> None:
        """New or removed credentials: rebuild the user's gateway and actor if they are tracked."""
        if self.accounts.get(user_id, exchange) is not None or (user_id, exchange) in self.accounts.failures:
            await self.accounts.stop(user_id, exchange)
        await self.active_users.rescan_users()

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
        elif self.settings.role == "api":
            checks["history_writer"] = {"ok": True, "detail": "written by the workers (ROLE=api)"}
        else:
            alive = self._history_job is not None and not self._history_job.done()
            checks["history_writer"] = {"ok": alive} if alive else {"ok": False, "detail": "not running"}
        health = self.accounts.health()
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
        if self.undecryptable:
            checks["credentials"] = {
                "ok": False,
                "detail": f"CREDENTIALS_KEY cannot decrypt the stored credentials of {len(self.undecryptable)} "
                "account(s): every process must share one key",
                "accounts": [f"{u}/{e}" for u, e in self.undecryptable],
            }
        if self.leases is not None:
            checks["leases"] = {
                "ok": True,
                "worker_id": self.leases.worker_id,
                "held": len(self.leases.held),
                "live_workers": len(self.leases.live),
            }
        return all(c["ok"] for c in checks.values()), checks

    async def status(self) -> dict[str, Any]:
        redis_ok = True
        try:
            await self.redis.ping()
        except Exception:  # the status page reports, it never fails
            redis_ok = False
        accounts = self.accounts.health()
        return {
            "service": self.settings.service_name,
            "version": __version__,
            "started_at": self.started_at_utc.isoformat(),
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "redis": {"ok": redis_ok, "embedded": self.embedded_redis.kind if self.embedded_redis else None},
            "simulator": self.simulator.url if self.simulator else None,
            "simulators": {name: sim.url for name, sim in self.simulators.items()},
            "connections": {
                "tracked_users": len({h["user_id"] for h in accounts}),
                "streams": len(self.accounts.actors),
                "healthy": sum(1 for h in accounts if h.get("healthy")),
            },
            "subscriptions": self.prices.subscriptions(),
            "trailing_stops": len(self.trailing.stops),
            "conditional_rules": len(self.rules.rules),
            "users": accounts,
        }


def cipher_of(settings: Settings) -> CredentialCipher:
    """CREDENTIALS_KEY's cipher (a Fernet key, a passphrase through scrypt, or DATA_DIR's key file)."""
    return credential_cipher(settings.credentials_key.get_secret_value(), settings.data_dir)


def build_graph(
    settings: Settings,
    redis: Redis,
    *,
    gateway_builder: GatewayBuilder | None = None,
    base_urls: dict[str, str] | None = None,
    track_accounts: bool = True,
    instance_id: str | None = None,
    cipher: CredentialCipher | None = None,
    adapters: bool = True,
    leases: bool = False,
) -> Services:
    """Build every part once. `gateway_builder` (tests) replaces the ccxt gateways over `base_urls`;
    `track_accounts=False` builds the command services of a bot process (no actors, no feeds started).
    `leases=True` (the service process of roles all and worker) tracks only the accounts this worker holds a
    lease of (services/leases.py) and fences its writes; the engines follow the leases."""
    s = settings
    set_connection_limits(s.connection_limits())
    urls = base_urls if base_urls is not None else {"okx": s.okx_base_url, "binance": s.binance_base_url}
    store = Store.create(
        redis,
        prefix=s.key_prefix,
        cluster_tags=is_cluster_client(redis),
        dual_write=s.dual_schema_write,
        retention=s.stream_retention,
    )
    supervisor = Supervisor("")
    bus = Bus(supervisor)
    credentials = CredentialStore(
        redis, store.keys, cipher or cipher_of(s), allow_legacy_plaintext=s.allow_legacy_plaintext_keys
    )
    markets = MarketRegistry()

    async def build(exchange: str, user_id: str, creds: Credentials | None) -> ExchangeGateway:
        from .exchanges.factory import build_gateway

        return await build_gateway(
            exchange, user_id, creds, base_url=urls.get(exchange, ""), registry=markets
        )

    gateways = GatewayPool(credentials, gateway_builder or build)
    prices = PriceHub(
        store, gateways, supervisor, max_hz=s.price_events_max_hz, silent_s=s.price_feed_silent_s
    )
    accounts = AccountRegistry(
        store,
        gateways,
        prices,
        bus,
        supervisor,
        AccountOptions(
            silent_reconcile_s=s.reconcile_silent_s,
            confirm_after_s=s.snapshot_confirm_s,
            fill_backfill_max_s=s.fill_backfill_max_s,
        ),
        mark_interval_s=s.position_mark_interval_s,
    )
    orders = OrderManager(store, gateways, accounts, visibility_lag_s=s.order_visibility_lag_s)
    positions = PositionManager(store, gateways, accounts, orders)
    trailing = TrailingStopEngine(
        store, gateways, accounts, orders, prices, bus, supervisor,
        instance_id=instance_id, flush_interval_s=s.trailing_flush_interval_s,
        resync_interval_s=s.engine_resync_interval_s, lease_s=s.trigger_lease_s,
        visibility_lag_s=s.order_visibility_lag_s,
    )  # fmt: skip
    if s.fault_kill_after_trigger:
        log.warning("FAULT_KILL_AFTER_TRIGGER is on: this process kills itself when a trailing stop fires")
        trailing.on_sent = lambda stop: os.kill(os.getpid(), signal.SIGKILL)
    rules = ConditionalRuleEngine(
        store, accounts, orders, prices, bus, supervisor, resync_interval_s=s.engine_resync_interval_s,
        cancel_deadline_s=s.rule_cancel_deadline_s, instance_id=instance_id or "",
    )  # fmt: skip
    active = ActiveUserManager(
        store,
        accounts,
        supervisor,
        user_rescan_s=s.user_rescan_interval_s,
        symbol_rescan_s=s.symbol_rescan_interval_s,
    )
    services = Services(
        settings=s, redis=redis, store=store, supervisor=supervisor, bus=bus, credentials=credentials,
        markets=markets, gateways=gateways, prices=prices, accounts=accounts, order_manager=orders,
        position_manager=positions, trailing=trailing, rules=rules, active_users=active,
        track_accounts=track_accounts, base_urls=urls, token_grants=parse_tokens(s.api_tokens.get_secret_value()),
    )  # fmt: skip
    if leases and track_accounts:
        manager = services.leases = LeaseManager(
            store, accounts, supervisor, worker_id=s.resolved_worker_id(), ttl_s=s.lease_ttl_s
        )
        active.leases = manager
        trailing.owns = rules.owns = manager.evaluates

        async def follow() -> None:  # the engines pick up (or let go of) the stops of moved accounts at once
            await trailing.resync()
            await rules.resync()

        manager.listeners.append(follow)
    if adapters:
        from .integrations.context import CommandServices
        from .integrations.grid import GRIDAdapter
        from .integrations.hyperrsi import HYPERRSIAdapter

        commands = CommandServices.of(services)
        services.hyperrsi = HYPERRSIAdapter(redis, commands, listen=track_accounts)
        services.grid = GRIDAdapter(redis, commands)
    return services


async def build_service(settings: Settings | None = None) -> Services:
    """The service process: the embedded Redis and simulators when configured, then the graph."""
    s = settings or Settings()
    embedded: EmbeddedServer | None = None
    simulators: dict[str, SimServer] = {}
    if s.uses_embedded_redis:
        from .store.embedded import start_embedded

        # started from the loop's own thread: the kernel's parent-death signal (PR_SET_PDEATHSIG) follows
        # the thread that forked redis-server, and a pool thread may end before the process does
        embedded = start_embedded(s.embedded_redis_port, s.embedded_redis, s.data_dir)
        url = embedded.url
        if embedded.persistent:
            log.info("embedded %s listening at %s, persisting to %s (append-only file, fsync every second)",
                     embedded.kind, url, s.data_dir)  # fmt: skip
        else:
            log.info("embedded %s listening at %s (keeps nothing)", embedded.kind, url)
    else:
        url = s.redis_dsn()
    redis, on_cluster = await connect_redis(
        url,
        "false" if embedded is not None else s.redis_cluster,
        health_check_interval=30,
        socket_timeout=s.redis_socket_timeout_s,
        socket_connect_timeout=s.redis_connect_timeout_s,
    )
    if on_cluster:
        from .preflight import mask_url

        log.info("Redis Cluster at %s: keys of one user carry its {user} hash tag", mask_url(url))
    base_urls = {"okx": s.okx_base_url, "binance": s.binance_base_url}
    try:
        await wait_until_loaded(redis)
        if s.runs_simulator:
            simulators = {
                "okx": await _start_sim("okx", s.sim_port),
                "binance": await _start_sim("binance", s.sim_binance_port),
            }
            base_urls.update({name: sim.url for name, sim in simulators.items()})
    except BaseException:
        for sim in simulators.values():
            await sim.stop()
        await redis.aclose()
        if embedded is not None:
            embedded.stop()
        raise
    services = build_graph(
        s, redis, base_urls=base_urls, track_accounts=s.tracks_accounts, leases=s.tracks_accounts
    )
    if not s.tracks_accounts:  # ROLE=api: stops and rules it creates are evaluated by the account's worker

        def nobody(user_id: str, exchange: str) -> bool:
            return False

        services.trailing.owns = services.rules.owns = nobody
        services.active_users.tracking = False
    services.embedded_redis = embedded
    services.simulators = simulators
    if simulators:
        from .sim.server import DEMO_API_KEY, DEMO_PASSPHRASE, DEMO_SECRET

        services.credentials.register_static(
            s.demo_user, "okx", Credentials(DEMO_API_KEY, DEMO_SECRET, DEMO_PASSPHRASE)
        )
        services.credentials.register_static(s.demo_user, "binance", Credentials(DEMO_API_KEY, DEMO_SECRET))
        log.info("embedded simulators: OKX at %s, Binance USD-M at %s (demo user %r)",
                 simulators["okx"].url, simulators["binance"].url, s.demo_user)  # fmt: skip

    async def close_infra() -> None:
        for sim in services.simulators.values():
            await sim.stop()
        services.simulators = {}
        await redis.aclose()
        if services.embedded_redis is not None:
            services.embedded_redis.stop()
            services.embedded_redis = None

    services.closers.append(close_infra)
    return services


async def _start_sim(venue: str, port: int) -> SimServer:
    from .sim.server import SimServer

    try:
        return await SimServer(venue, port=port, demo=True).start()
    except OSError as exc:
        if port == 0:
            raise
        log.warning(
            "port %d for the %s simulator is taken (%s): using a free port", port, venue, exc.strerror
        )
        return await SimServer(venue, port=0, demo=True).start()
