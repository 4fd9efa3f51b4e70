"""OKX request signing: REST headers (OK-ACCESS-*) and the WebSocket login op.

REST: OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD + path_with_query + body)), timestamp ISO-8601
with milliseconds (``2024-05-01T12:00:00.123Z``), at most 30 s away from the server clock.
WS login: sign = base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")), timestamp in Unix seconds.
Checks run in OKX's order (missing headers, timestamp, key, passphrase, signature) and stop at the first failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..engine import Account, SimEngine, UnknownAccount
from .codes import OkxError

__all__ = ["MAX_SKEW_MS", "sign", "verify_login", "verify_rest"]

MAX_SKEW_MS = 30_000
_WS_VERIFY_PATH = "GET/users/self/verify"


def sign(secret: str, prehash: str) -> str:
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _auth_error(code: str, msg: str) -> OkxError:
    return OkxError(code, msg, 401)


def _parse_iso_ms(ts: str) -> int | None:
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _account(engine: SimEngine, api_key: str) -> Account | None:
    try:
        return engine.account_by_key(api_key)
    except UnknownAccount:
        return None


def verify_rest(
    engine: SimEngine,
    headers: Mapping[str, str],
    method: str,
    path_with_query: str,
    body: str,
    now_ms: int | None = None,
) -> Account:
    """The account a signed REST request belongs to, or an OkxError (HTTP 401) saying what is wrong."""
    key = headers.get("OK-ACCESS-KEY", "")
    passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
    signature = headers.get("OK-ACCESS-SIGN", "")
    ts = headers.get("OK-ACCESS-TIMESTAMP", "")
    if not key:
        raise _auth_error("50103", "Request header OK-ACCESS-KEY can not be empty.")
    if not passphrase:
        raise _auth_error("50104", "Request header OK-ACCESS-PASSPHRASE can not be empty.")
    if not signature:
        raise _auth_error("50106", "Request header OK-ACCESS-SIGN can not be empty.")
    if not ts:
        raise _auth_error("50107", "Request header OK-ACCESS-TIMESTAMP can not be empty.")
    ts_ms = _parse_iso_ms(ts)
    if ts_ms is None:
        raise _auth_error("50112", "Invalid OK-ACCESS-TIMESTAMP.")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if abs(now - ts_ms) > MAX_SKEW_MS:
        raise _auth_error("50102", "Timestamp request expired.")
    account = _account(engine, key)
    if account is None:
        raise _auth_error("50111", "Invalid OK-ACCESS-KEY.")
    if not _same(passphrase, account.passphrase or ""):
        raise _auth_error("50105", "Request header OK-ACCESS-PASSPHRASE incorrect.")
    expected = sign(account.secret, ts + method.upper() + path_with_query + body)
    if not _same(signature, expected):
        raise _auth_error("50113", "Invalid Sign")
    return account


def verify_login(engine: SimEngine, arg: Any, now_s: float | None = None) -> Account:
    """The account of a WS login argument ``{apiKey, passphrase, timestamp, sign}``; OkxError with the 60xxx
    code OKX's WebSocket uses otherwise (all map to ccxt AuthenticationError except 60006, InvalidNonce)."""
    if not isinstance(arg, dict):
        raise OkxError("60012", "Illegal request: invalid login args")
    fields = {name: arg.get(name) for name in ("apiKey", "passphrase", "timestamp", "sign")}
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise OkxError("60027", f"Parameter {name} can not be empty.")
    key, passphrase, ts, signature = (str(v) for v in fields.values())
    try:
        ts_s = float(ts)
    except ValueError:
        raise OkxError("60004", "Invalid timestamp") from None
    now = time.time() if now_s is None else now_s
    if abs(now - ts_s) * 1000 > MAX_SKEW_MS:
        raise OkxError("60006", "Timestamp request expired")
    account = _account(engine, key)
    if account is None:
        raise OkxError("60005", "Invalid OK-ACCESS-KEY")
    if not _same(passphrase, account.passphrase or ""):
        raise OkxError("60024", "Wrong passphrase")
    if not _same(signature, sign(account.secret, ts + _WS_VERIFY_PATH)):
        raise OkxError("60007", "Invalid sign")
    return account
