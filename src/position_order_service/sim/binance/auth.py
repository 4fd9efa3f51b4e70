"""Binance request authentication: X-MBX-APIKEY, timestamp/recvWindow and the HMAC-SHA256 signature.

SIGNED endpoints: ``signature`` = hex HMAC-SHA256(secret, totalParams), where totalParams is the raw query
string concatenated with the raw form body, the ``signature`` parameter itself left out. Checks, in order:
API key present (-2014) and known (-2015), signature sent (-1102) and valid (-1022), parameters
well formed (-1101 duplicates), timestamp sent (-1102), recvWindow <= 60000 (-1131), timestamp inside the
window (-1021).
USER_STREAM endpoints (listenKey) need the API key only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from ..engine import SimEngine, UnknownAccount
from .errors import BinanceError, mandatory
from .params import Params, parse_params

__all__ = ["AccountKeys", "Caller", "authenticate_key", "authenticate_signed", "strip_signature"]

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
_TS_RE = re.compile(r"^[0-9]{1,20}$")
_SIG_RE = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000
FUTURE_TOLERANCE_MS = 1_000


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated account of a request."""

    api_key: str
    account_id: str


class AccountKeys:
    """API key -> (secret, account id), read from the engine once per key (accounts are never removed)."""

    def __init__(self, engine: SimEngine) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[bytes, str]] = {}

    def lookup(self, api_key: str) -> tuple[bytes, str]:
        hit = self._cache.get(api_key)
        if hit is None:
            try:
                account = self._engine.account_by_key(api_key)
            except UnknownAccount:
                raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401) from None
            hit = (account.secret.encode(), account.account_id)
            self._cache[api_key] = hit
        return hit

    def api_key_of(self, account_id: str) -> str | None:
        for key, (_, aid) in self._cache.items():
            if aid == account_id:
                return key
        for account in self._engine.accounts():
            if account.account_id == account_id:
                return account.api_key
        return None


def _api_key(header: str | None) -> str:
    if not header or not _KEY_RE.match(header):
        raise BinanceError(-2014, "API-key format invalid.", 401)
    return header


def authenticate_key(keys: AccountKeys, header: str | None) -> Caller:
    """USER_STREAM security: a known API key, no signature."""
    api_key = _api_key(header)
    _, account_id = keys.lookup(api_key)
    return Caller(api_key, account_id)


def strip_signature(raw: str) -> tuple[str, str | None]:
    """(raw without its ``signature=`` parameter, the signature or None)."""
    if "signature=" not in raw:
        return raw, None
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def authenticate_signed(
    keys: AccountKeys, header: str | None, raw_query: str, raw_body: str, now_ms: int | None = None
) -> tuple[Caller, Params]:
    """Verify a SIGNED request; returns the caller and its parameters (signature removed)."""
    api_key = _api_key(header)
    secret, account_id = keys.lookup(api_key)
    query, sig_q = strip_signature(raw_query)
    body, sig_b = strip_signature(raw_body)
    signature = sig_q if sig_q is not None else sig_b
    if (sig_q is not None and sig_b is not None) or not signature:
        raise mandatory("signature")
    expected = hmac.new(secret, (query + body).encode(), hashlib.sha256).hexdigest()
    if not _SIG_RE.match(signature) or not hmac.compare_digest(expected, signature.lower()):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    params = parse_params(query, body)
    ts_raw = params.get("timestamp")
    if not ts_raw or not _TS_RE.match(ts_raw):
        raise mandatory("timestamp")
    window_raw = params.get("recvWindow")
    window = DEFAULT_RECV_WINDOW
    if window_raw:
        if not _TS_RE.match(window_raw):
            raise mandatory("recvWindow")
        window = int(window_raw)
        if window > MAX_RECV_WINDOW:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    ts = int(ts_raw)
    if ts > now + FUTURE_TOLERANCE_MS:
        raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - ts > window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
    return Caller(api_key, account_id), Params(params)
