"""Logging: JSON lines when not on a terminal (or LOG_FORMAT=json), readable text on a terminal.

Every record leaves through one handler whose formatter scrubs secrets from the finished line, whoever logged
it (uvicorn's access and WebSocket lines included) and whatever it carries (messages, context, tracebacks):
query parameters such as `token=`, `api_key=`, `secret=`, `passphrase=`, `signature=`, `listenKey=`,
Authorization / Bearer values, passwords in URLs, and the literal values of the configured secrets
(API_TOKENS, CREDENTIALS_KEY, REDIS_PASSWORD, passwords in REDIS_URL and DATABASE_URL).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

_CONTEXT_FIELDS = ("user_id", "exchange", "symbol", "order_id", "client_order_id", "rule_id", "event_type")
MASK = "***"

_SECRET_PARAMS = (
    r"token|access_token|refresh_token|api[_-]?key|apikey|api[_-]?secret|secret|secret[_-]?key|passphrase|"
    r"password|passwd|signature|sign|listen[_-]?key|credentials?|auth"
)
_QUERY = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_SECRET_PARAMS})=([^&\s\"'#;,]+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[A-Za-z0-9._~+/=:-]+")
_AUTH_HEADER = re.compile(
    r"(?i)((?:authorization|x-api-key|ok-access-key|ok-access-sign|ok-access-passphrase|x-mbx-apikey)[\"']?\s*[:=]\s*[\"']?)([^\"',}\s]+)"
)
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@/\s]+)(@)")
_JSON_SECRET = re.compile(rf"(?i)(\"(?:{_SECRET_PARAMS})\"\s*:\s*\")([^\"]+)(\")")

_literals: set[str] = set()


def register_secret(value: str | None) -> None:
    """A value that must never appear in a log line (tokens, keys, passwords). Short ones are ignored: they
    would mask ordinary words."""
    if value and len(value) >= 6:
        _literals.add(value)


def _register_url_password(url: str) -> None:
    with contextlib.suppress(ValueError):
        register_secret(urlsplit(url).password)


def scrub(text: str) -> str:
    """The text with every secret it carries masked."""
    for literal in sorted(_literals, key=len, reverse=True):
        if literal in text:
            text = text.replace(literal, MASK)
    text = _URL_PASSWORD.sub(rf"\1{MASK}\3", text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
    text = _JSON_SECRET.sub(rf"\1{MASK}\3", text)
    return _QUERY.sub(rf"\1={MASK}", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for f in _CONTEXT_FIELDS:
            v = getattr(record, f, None)
            if v is not None:
                out[f] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(out, default=str).decode())


class TextFormatter(logging.Formatter):
    """`time level logger: message [user_id=.. exchange=.. symbol=..]`: the context the JSON format carries."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{f}={getattr(record, f)}" for f in _CONTEXT_FIELDS if getattr(record, f, None) is not None
        )
        if context:
            head, sep, tail = line.partition("\n")  # a traceback stays below the line
            line = f"{head} [{context}]{sep}{tail}"
        return scrub(line)


class _QuietPerConnection(logging.Filter):
    """uvicorn's WebSocket protocol logs "connection open"/"connection closed" at INFO for every socket:
    DEBUG detail for an operator."""

    QUIET = frozenset({"connection open", "connection closed"})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.getMessage() in self.QUIET:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def register_configured_secrets() -> None:
    from .config import Settings

    s = Settings()
    for grant in s.api_tokens.get_secret_value().split(";"):
        register_secret(grant.partition("=")[0].strip())
    register_secret(s.credentials_key.get_secret_value())
    register_secret(s.redis_password.get_secret_value())
    _register_url_password(s.redis_url)
    _register_url_password(s.database_url)


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    from .config import Settings

    s = Settings()
    level = (level or s.log_level).upper()
    fmt = fmt or s.log_format
    register_configured_secrets()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    debug = level == "DEBUG"
    # access lines (request paths with their query strings, scrubbed) only when debugging
    logging.getLogger("uvicorn.access").setLevel(logging.DEBUG if debug else logging.WARNING)
    # alembic announces its plugins and DDL mode at INFO on every start: detail
    logging.getLogger("alembic").setLevel(logging.DEBUG if debug else logging.WARNING)
    quiet = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietPerConnection) for f in quiet.filters):
        quiet.addFilter(_QuietPerConnection())
