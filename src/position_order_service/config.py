"""Settings from the environment and an optional .env file (pydantic-settings).

With nothing set the service runs on embedded defaults: an embedded Redis-compatible server, the local
exchange simulator, SQLite history. Real Redis, PostgreSQL and exchanges are configuration only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from .exchanges.ccxt_factory import ConnectionLimits
    from .store.retention import StreamRetention


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # -- Redis (seed names) ---------------------------------------------------------------------------
    redis_url: str = Field("", description="redis://[:password@]host:port/db; overrides REDIS_HOST/PORT")
    redis_host: str = Field("", description="Redis host; empty with REDIS_URL empty = embedded server")
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: SecretStr = Field(SecretStr(""))
    redis_db: int = Field(0, ge=0, le=15)
    embedded_redis_port: int = Field(6399, ge=0, le=65535, description="0 = any free port")
    embedded_redis: Literal["auto", "redis-server", "fakeredis"] = "auto"
    key_prefix: str = Field("", description="prefix of every Redis key and channel (tests, shared servers)")
    redis_cluster: Literal["auto", "true", "false"] = Field(
        "auto",
        description="Redis Cluster: true = REDIS_URL/REDIS_HOST is a cluster node (the client discovers the "
        "others; keys of one user gain a {user} hash tag); auto = ask the server (INFO cluster) at start",
    )
    redis_socket_timeout_s: float = Field(
        5.0, gt=0, description="a Redis command that gets no answer this long fails (and is retried)"
    )
    redis_connect_timeout_s: float = Field(
        3.0, gt=0, description="connecting to Redis gives up after this long"
    )
    data_dir: Path = Field(
        Path("./var"),
        description="where the service keeps its files: the embedded Redis' append-only file, the generated "
        "credentials key, the SQLite history",
    )
    event_stream_retention: str = Field(
        "10000",
        description="how much of each user's event stream is kept: a count (10000) or an age (6h, 2d, 30m)",
    )

    # -- exchanges --------------------------------------------------------------------------------------
    okx_base_url: str = Field("", description="empty = the real OKX; e.g. http://127.0.0.1:8090 for the sim")
    binance_base_url: str = Field("", description="empty = the real Binance USD-M")
    sim: Literal["auto", "on", "off"] = Field(
        "auto",
        description="run the OKX and Binance simulators in process (auto: when no exchange URL or Redis is set)",
    )
    sim_port: int = Field(8090, ge=0, le=65535, description="port of the in-process OKX simulator")
    sim_binance_port: int = Field(
        8091, ge=0, le=65535, description="port of the in-process Binance simulator"
    )

    # -- exchange connection limits (per egress IP; exchange-wire-notes.md, README "Running at scale") ------
    okx_ws_connects_per_s: int = Field(
        3, ge=1, le=1_000_000, description="OKX WebSocket connection attempts per second per IP (OKX's limit)"
    )
    okx_ws_requests_per_conn_per_hour: int = Field(
        480,
        ge=1,
        le=1_000_000,
        description="OKX login/subscribe/unsubscribe requests per connection per hour (OKX's limit)",
    )
    binance_ws_connects_per_5min: int = Field(
        300, ge=1, le=1_000_000, description="Binance WebSocket connection attempts per 5 minutes per IP"
    )
    ws_reconnect_jitter_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="a dropped socket reconnects after a random 0..this, then its paced turn",
    )

    # -- users and tracking ----------------------------------------------------------------------------
    credentials_key: SecretStr = Field(
        SecretStr(""), description="key that encrypts stored exchange credentials (Fernet key or passphrase)"
    )
    allow_legacy_plaintext_keys: bool = Field(
        False, description="read the seed's plaintext user:{id}:api:keys"
    )
    user_rescan_interval_s: float = Field(300.0, gt=0)
    symbol_rescan_interval_s: float = Field(60.0, gt=0)
    reconcile_silent_s: float = Field(
        30.0, gt=0, description="REST snapshot when streams are silent this long"
    )
    price_events_max_hz: float = Field(
        4.0, ge=0, description="price.updated events per symbol per second (0 = all)"
    )
    position_mark_interval_s: float = Field(
        1.0, gt=0, description="re-value open positions from ticks this often"
    )
    snapshot_confirm_s: float = Field(
        1.0, gt=0, description="a second REST snapshot this soon after one that misses an order or position"
    )
    fill_backfill_max_s: float = Field(
        86_400.0,
        gt=0,
        description="an account's new owner reads its fills back from its fill mark, at most this far back",
    )
    price_feed_silent_s: float = Field(
        60.0, gt=0, description="a price feed silent this long is reconnected (price_feed_silent_total)"
    )
    order_visibility_lag_s: float = Field(
        5.0,
        ge=0,
        description="after a lost reply, an order is declared not placed only this long after the send",
    )
    demo_user: str = Field("demo", description="user tracked against the embedded simulator")

    # -- trailing stops and rules ---------------------------------------------------------------------
    trailing_flush_interval_s: float = Field(
        1.0, gt=0, description="persist moved extremes at most this often"
    )
    engine_resync_interval_s: float = Field(
        5.0, gt=0, description="reload stops/rules (other instances, restarts)"
    )
    trigger_lease_s: float = Field(
        30.0, gt=0, description="how long a triggered stop stays with its instance"
    )
    rule_cancel_deadline_s: float = Field(
        120.0, gt=0, description="a rule's cancel failing for a transient reason is retried this long"
    )
    fault_kill_after_trigger: bool = Field(
        False, description="FAULT INJECTION for tests: kill -9 this process right after a stop triggers"
    )

    # -- migration (feature flags of the migration guide) --------------------------------------------------
    use_shared_manager: bool = Field(
        True, description="bots' adapters use the shared managers (False = legacy)"
    )
    dual_schema_write: bool = Field(False, description="also write the bots' legacy Redis keys, atomically")

    # -- history ---------------------------------------------------------------------------------------
    database_url: str = Field(
        "",
        description="SQL history: empty = SQLite file DATA_DIR/history.sqlite3; postgresql://... for PostgreSQL",
    )
    history: bool = Field(True, description="write the durable history of orders, fills and positions")
    history_linger_ms: int = Field(
        200,
        ge=0,
        le=2000,
        description="a history pass that finds under half a batch waits this long for more entries, so a "
        "trickle shares one transaction (history lags by at most this much more); 0 = write at once",
    )

    # -- API ------------------------------------------------------------------------------------------------
    api_tokens: SecretStr = Field(
        SecretStr(""), description="'token=*;token2=user1,user2'; empty = no auth, loopback only"
    )
    allowed_origins: str = Field(
        "",
        description="comma-separated origins (https://ops.example.com) whose pages may open the live feed "
        "besides the service's own; empty = same origin only",
    )

    # -- scale-out (issue 14; README "Running at scale") -----------------------------------------------------
    role: Literal["all", "api", "worker"] = Field(
        "all",
        description="all = one process does everything; api = HTTP + feed only (stateless, any number of "
        "replicas); worker = account actors, price streams, trailing stops, rules, history writer, by lease",
    )
    worker_id: str = Field("", description="this worker's name in the lease registry; empty = hostname-pid")
    lease_ttl_s: float = Field(
        10.0, ge=0.3, le=300, description="an account lease lasts this long unrenewed (renewed every third)"
    )

    # -- service ----------------------------------------------------------------------------------------
    service_name: str = "position-order-service"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"

    @field_validator("redis_url", "redis_host", "okx_base_url", "binance_base_url", "key_prefix")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @field_validator("database_url")
    @classmethod
    def _database(cls, v: str) -> str:
        v = v.strip()
        scheme = v.partition("://")[0].lower() if "://" in v else ""
        if v and not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(
                "only sqlite (sqlite+aiosqlite:///path/history.sqlite3) and postgresql "
                "(postgresql://user:password@host/db) URLs are accepted"
            )
        return v

    @field_validator("event_stream_retention")
    @classmethod
    def _retention(cls, v: str) -> str:
        from .store.retention import StreamRetention

        StreamRetention.parse(v)  # raises ValueError naming what is wrong
        return v.strip()

    @property
    def stream_retention(self) -> StreamRetention:
        from .store.retention import StreamRetention

        return StreamRetention.parse(self.event_stream_retention)

    def history_url(self) -> str:
        """DATABASE_URL, or the SQLite file in DATA_DIR."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'history.sqlite3'}"

    def connection_limits(self) -> ConnectionLimits:
        from .exchanges.ccxt_factory import ConnectionLimits

        return ConnectionLimits(
            okx_connects_per_s=self.okx_ws_connects_per_s,
            okx_requests_per_conn_per_hour=self.okx_ws_requests_per_conn_per_hour,
            binance_connects_per_5min=self.binance_ws_connects_per_5min,
            reconnect_jitter_s=self.ws_reconnect_jitter_s,
        )

    @property
    def tracks_accounts(self) -> bool:
        """Roles all and worker run the account actors and engines; api does not."""
        return self.role != "api"

    def resolved_worker_id(self) -> str:
        import os
        import socket

        return self.worker_id.strip() or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url and not self.redis_host

    def redis_dsn(self) -> str:
        """The URL of the configured server (embedded servers are resolved at start)."""
        if self.redis_url:
            return self.redis_url
        password = self.redis_password.get_secret_value()
        auth = f":{password}@" if password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def runs_simulator(self) -> bool:
        if self.sim == "on":
            return True
        if self.sim == "off":
            return False
        return not self.okx_base_url and not self.binance_base_url and self.uses_embedded_redis
