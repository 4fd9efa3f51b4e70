"""ccxt exceptions -> the gateway's error classes, with the exchange's own reason and code and no secrets.

| ccxt                                              | gateway                                     |
|---------------------------------------------------|---------------------------------------------|
| AuthenticationError (PermissionDenied, ...)       | AuthenticationFailed                        |
| InsufficientFunds                                 | InsufficientFunds                           |
| OrderNotFound, OrderNotCached                     | OrderNotFound                               |
| InvalidOrder, BadRequest (BadSymbol), Arguments.. | InvalidOrder                                |
| NetworkError (timeouts, ExchangeNotAvailable,..), | ExchangeUnavailable (outcome unknown);      |
| OperationFailed, BadResponse, a venue's "busy" or | StreamDisconnected when raised by a watch   |
| "timeout" code, and non-ccxt I/O errors           |                                             |
| any other ExchangeError                           | GatewayError                                |
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import ccxt

from .base import (
    AuthenticationFailed,
    ExchangeUnavailable,
    GatewayError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    StreamDisconnected,
)

log = logging.getLogger(__name__)

_SECRET_FIELDS = re.compile(
    r"""(?P<k>signature|sign|apiKey|api_key|passphrase|password|secret|listenKey)"""
    r"""(?P<sep>["']?\s*[:=]\s*["']?)(?P<v>[^"'&,\s}]+)""",
    re.IGNORECASE,
)
_MAX_REASON = 500
# Venue codes that mean "the exchange could not answer now", whatever class ccxt gives them: the request may or
# may not have been carried out. Binance: -1001 disconnected, -1003 too many requests, -1007 timeout waiting
# for the back end (the order may exist), -1008 overloaded; OKX: 50001 service unavailable, 50004 endpoint
# timeout, 50011 too many requests, 50013 systems busy, 50026 system error.
TRANSIENT_CODES = frozenset({"-1001", "-1003", "-1007", "-1008", "50001", "50004", "50011", "50013", "50026"})


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials and signatures from an error text (ccxt may echo URLs and request bodies)."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return _SECRET_FIELDS.sub(lambda m: f"{m['k']}{m['sep']}***", text)


def _exchange_words(message: str) -> tuple[str, str | None]:
    """(reason, code) from a ccxt message such as ``okx {"code":"1","data":[{"sCode":"51008","sMsg":".."}]}``
    or ``binanceusdm {"code":-2019,"msg":"Margin is insufficient."}``; the raw text when it is not JSON."""
    start = message.find("{")
    if start >= 0:
        try:
            body: Any = json.loads(message[start:])
        except ValueError:
            body = None
        if isinstance(body, dict):
            data = body.get("data")
            if isinstance(data, list):
                for item in data:
                    if isinstance(item, dict) and str(item.get("sCode", "0")) not in ("", "0"):
                        return str(item.get("sMsg") or body.get("msg") or message), str(item["sCode"])
            msg = body.get("msg") or body.get("message")
            code = body.get("code")
            if msg:
                return str(msg), None if code is None else str(code)
    return message, None


def map_ccxt_error(exc: BaseException, *, stream: bool = False, secrets: Iterable[str] = ()) -> GatewayError:
    """The gateway error for ``exc``; ``stream=True`` turns connection failures into StreamDisconnected."""
    if isinstance(exc, GatewayError):
        return exc
    text = str(exc) or type(exc).__name__
    reason, code = _exchange_words(text)
    reason = scrub(reason, secrets)[:_MAX_REASON]
    unavailable: type[ExchangeUnavailable] = StreamDisconnected if stream else ExchangeUnavailable
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthenticationFailed(reason, code)
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(reason, code)
    if isinstance(exc, (ccxt.OrderNotFound, ccxt.OrderNotCached)):
        return OrderNotFound(reason, code)
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.ArgumentsRequired)):
        return InvalidOrder(reason, code)
    # ccxt 4.5.90 raises a bare OperationFailed for Binance's -1001/-1008 (HTTP 5xx): not a refusal
    if (
        isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse, ccxt.OperationFailed))
        or code in TRANSIENT_CODES
    ):
        return unavailable(reason, code)
    if isinstance(exc, ccxt.BaseError):
        return GatewayError(reason, code)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, OSError, ConnectionError)):
        return unavailable(f"{type(exc).__name__}: {reason}", code)
    # anything else (a parsing failure inside ccxt, an aiohttp error): the outcome is not known
    log.warning("unexpected %s from ccxt mapped to %s", type(exc).__name__, unavailable.__name__)
    return unavailable(f"{type(exc).__name__}: {reason}", code)


def ccxt_error_for_code(client: Any, code: str, message: str) -> BaseException:
    """The ccxt exception a client's error table gives for a per-item venue code (OKX sCode), used when a
    batch endpoint answers "0" overall but refuses the one item we sent."""
    exact = (getattr(client, "exceptions", None) or {}).get("exact") or {}
    cls = exact.get(code)
    text = f"{getattr(client, 'id', 'exchange')} {json.dumps({'code': '1', 'data': [{'sCode': code, 'sMsg': message}]})}"
    if isinstance(cls, type) and issubclass(cls, BaseException):
        error: BaseException = cls(text)
        return error
    fallback: BaseException = ccxt.ExchangeError(text)
    return fallback
