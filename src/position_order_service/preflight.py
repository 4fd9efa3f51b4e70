"""Configuration checked before the service starts: each problem is ONE line naming the variable, its value
(password masked) and the reason, and the process exits with code 2 (no traceback).

Checked: the settings parse (types, ranges, API_TOKENS' rules); DATABASE_URL is a sqlite or postgresql URL;
Redis (REDIS_URL / REDIS_HOST) answers a PING, or the embedded Redis' port is free; PostgreSQL accepts a
connection (reachable, credentials, database).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from .config import Settings

CHECK_TIMEOUT_S = 5.0


class ConfigError(Exception):
    def __init__(self, variable: str, value: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.value = value
        self.reason = reason

    def line(self) -> str:
        return f"configuration error: {self.variable}={self.value!r}: {self.reason}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, at, host = rest.rpartition("@")
    user, colon, _ = auth.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}{at}{host}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a ConfigError naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        variable = str(err["loc"][0]).upper() if err["loc"] else "settings"
        value: Any = err.get("input")
        shown = "***" if any(w in variable for w in ("PASSWORD", "TOKEN", "KEY")) else value
        if isinstance(shown, str) and "://" in shown:
            shown = mask_url(shown)
        reason = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(variable, str(shown), reason) from None


def check_static(settings: Settings) -> None:
    from .api.auth import parse_tokens

    try:
        parse_tokens(settings.api_tokens.get_secret_value())
    except ValueError as exc:
        raise ConfigError("API_TOKENS", "***", str(exc)) from None


def _check_embedded_port(settings: Settings) -> None:
    from .store.embedded import port_is_free, wait_for_predecessor

    port = settings.embedded_redis_port
    if not settings.uses_embedded_redis or port == 0 or port_is_free(port):
        return
    wait_for_predecessor(
        settings.data_dir, port
    )  # our own redis-server, still writing its AOF after a kill -9
    if not port_is_free(port):
        raise ConfigError(
            "EMBEDDED_REDIS_PORT",
            str(port),
            "the port is taken by another process: choose another port, or set REDIS_URL to use that server",
        )


async def _check_redis(settings: Settings) -> None:
    if settings.uses_embedded_redis:
        return
    from .store.connection import connect_redis

    variable = "REDIS_URL" if settings.redis_url else "REDIS_HOST"
    shown = mask_url(settings.redis_dsn()) if settings.redis_url else settings.redis_host
    client = None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S + 1):
            client, _ = await connect_redis(
                settings.redis_dsn(), settings.redis_cluster, socket_connect_timeout=CHECK_TIMEOUT_S
            )
            await client.ping()
    except Exception as exc:
        raise ConfigError(variable, shown, f"Redis unreachable: {_one_line(exc)}") from None
    finally:
        if client is not None:
            await client.aclose()


async def _check_database(settings: Settings) -> None:
    url = settings.database_url
    if not settings.history or not url.startswith("postgresql"):
        return
    from sqlalchemy import text

    from .history.db import make_engine

    engine = make_engine(url, connect_args={"timeout": CHECK_TIMEOUT_S})
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S + 1), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            "DATABASE_URL", mask_url(url), f"PostgreSQL unreachable: {_one_line(exc)}"
        ) from None
    except Exception as exc:
        reason = _one_line(getattr(exc, "orig", None) or exc)
        if isinstance(exc.__cause__, OSError) or "connect" in type(exc).__name__.lower():
            reason = f"PostgreSQL unreachable: {reason}"
        raise ConfigError("DATABASE_URL", mask_url(url), f"PostgreSQL refused: {reason}") from None
    finally:
        await engine.dispose()


async def check_services(settings: Settings) -> None:
    await _check_redis(settings)
    await _check_database(settings)


def preflight() -> Settings:
    """The settings, checked; raises ConfigError."""
    settings = load_settings()
    check_static(settings)
    _check_embedded_port(settings)
    asyncio.run(check_services(settings))
    return settings
