"""The pieces of a fault set: REST rules, push rules, channel names, and the parsing of a control-API body.

Parsing raises :class:`InvalidRequest` naming the field (``http_errors[0].status``); see ``faults``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest

__all__ = [
    "CHANNEL_ALIASES",
    "MAX_MS",
    "HttpError",
    "PushRule",
    "PushVerdict",
    "RequestRule",
    "bad",
    "parse_int",
    "parse_push_rule",
    "parse_rules",
    "push_names",
]

# A push answers to its own channel name and to the other venue's name for the same kind of update, so one
# fault body (say, ``"channels": ["orders"]``) means the same thing on both fronts and the paper gateway.
CHANNEL_ALIASES: dict[str, frozenset[str]] = {
    "orders": frozenset({"orders", "ORDER_TRADE_UPDATE"}),
    "positions": frozenset({"positions", "ACCOUNT_UPDATE"}),
    "account": frozenset({"account", "ACCOUNT_UPDATE"}),
    "orders-algo": frozenset({"orders-algo", "ALGO_UPDATE"}),
    "algo-advance": frozenset({"algo-advance", "ALGO_UPDATE"}),
    "tickers": frozenset({"tickers", "24hrMiniTicker", "24hrTicker", "bookTicker"}),
    "mark-price": frozenset({"mark-price", "markPriceUpdate"}),
    "ORDER_TRADE_UPDATE": frozenset({"ORDER_TRADE_UPDATE", "orders"}),
    "ACCOUNT_UPDATE": frozenset({"ACCOUNT_UPDATE", "positions", "account"}),
    "ALGO_UPDATE": frozenset({"ALGO_UPDATE", "orders-algo", "algo-advance"}),
    "ACCOUNT_CONFIG_UPDATE": frozenset({"ACCOUNT_CONFIG_UPDATE"}),
    "24hrMiniTicker": frozenset({"24hrMiniTicker", "tickers"}),
    "24hrTicker": frozenset({"24hrTicker", "tickers"}),
    "bookTicker": frozenset({"bookTicker", "tickers"}),
    "markPriceUpdate": frozenset({"markPriceUpdate", "mark-price"}),
}


def push_names(channel: str) -> frozenset[str]:
    """The names a push on ``channel`` (an OKX channel or a Binance event type) answers to."""
    return CHANNEL_ALIASES.get(channel) or frozenset({channel})


_METHODS = ("GET", "POST", "PUT", "DELETE")
MAX_MS = 600_000
DEFAULT_DELAY_MS = 300
MAX_PUSH_DELAY_MS = 60_000


@dataclass(frozen=True, slots=True)
class HttpError:
    """What to answer instead of carrying a request out."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(slots=True)
class RequestRule:
    """A REST fault for requests whose path starts with ``path`` (and whose method is ``method``, if set).

    Exactly one of ``count`` (the next N matching requests; the rule vanishes at 0) and ``rate`` (probability
    per matching request). ``status``/``code`` are used by http_errors, ``ms`` by hold_responses."""

    path: str
    method: str | None = None
    count: int | None = None
    rate: float | None = None
    status: int = 503
    code: str | int | None = None
    ms: int = 0

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path) and (self.method is None or self.method == method)

    def to_dict(self, kind: str) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path}
        if self.method is not None:
            d["method"] = self.method
        if kind == "http_errors":
            d["status"] = self.status
            if self.code is not None:
                d["code"] = self.code
        elif kind == "hold_responses":
            d["ms"] = self.ms
        if self.rate is not None:
            d["rate"] = self.rate
        else:
            d["count"] = self.count
        return d


@dataclass(slots=True)
class PushRule:
    """A push fault: the next ``count`` matching pushes, then each matching push with probability ``rate``.
    ``channels`` empty = every push; ``window`` (reorder only): delivered after 1..window later pushes;
    ``ms`` (delay only): how long the push waits (the socket's later pushes wait behind it)."""

    rate: float = 0.0
    count: int = 0
    channels: frozenset[str] = frozenset()
    window: int = 3
    ms: int = DEFAULT_DELAY_MS

    @property
    def active(self) -> bool:
        return self.count > 0 or self.rate > 0

    def to_dict(self, reorder: bool, delay: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"rate": self.rate, "count": self.count, "channels": sorted(self.channels)}
        if reorder:
            d["window"] = self.window
        if delay:
            d["ms"] = self.ms
        return d


@dataclass(frozen=True, slots=True)
class PushVerdict:
    drop: bool = False
    duplicate: bool = False
    hold_for: int = 0  # > 0: deliver after this many later pushes of the same socket
    delay_ms: int = 0  # > 0: deliver this much later (the socket's later pushes wait behind it)


def bad(field_name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field_name}: {message}", field=field_name)


def parse_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(name, "must be an integer")
    if not lo <= value <= hi:
        raise bad(name, f"must be from {lo} to {hi}")
    return value


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(name, "must be a number from 0 to 1")
    if not 0 <= value <= 1:
        raise bad(name, "must be from 0 to 1")
    return float(value)


def _object(value: Any, name: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad(name, "must be an object")
    for key in value:
        if key not in allowed:
            raise bad(f"{name}.{key}", f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _count_or_rate(d: Mapping[str, Any], name: str) -> tuple[int | None, float | None]:
    if "count" in d and "rate" in d:
        raise bad(f"{name}.count", "give count or rate, not both")
    if "rate" in d:
        return None, _rate(d["rate"], f"{name}.rate")
    return parse_int(d.get("count", 1), f"{name}.count", 1, 1_000_000), None


def _code(value: Any, name: str, venue: str) -> str | int:
    if venue == "okx":
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit():
            raise bad(name, 'must be an OKX error code such as "50013"')
        return str(value)
    try:
        code = int(value)
    except (TypeError, ValueError):
        raise bad(name, "must be a Binance error code such as -1008") from None
    if isinstance(value, bool) or code >= 0:
        raise bad(name, "must be a negative Binance error code such as -1008")
    return code


_RULE_FIELDS = {
    "http_errors": ("path", "method", "status", "code", "count", "rate"),
    "drop_responses": ("path", "method", "count", "rate"),
    "hold_responses": ("path", "method", "ms", "count", "rate"),
}


def parse_rules(value: Any, kind: str, venue: str) -> list[RequestRule]:
    if not isinstance(value, list):
        raise bad(kind, "must be a list of objects")
    out: list[RequestRule] = []
    for i, raw in enumerate(value):
        name = f"{kind}[{i}]"
        d = _object(raw, name, _RULE_FIELDS[kind])
        path = d.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad(f"{name}.path", "is required: a path prefix starting with /")
        method = d.get("method")
        if method is not None:
            if not isinstance(method, str) or method.upper() not in _METHODS:
                raise bad(f"{name}.method", f"must be one of {', '.join(_METHODS)}")
            method = method.upper()
        count, rate = _count_or_rate(d, name)
        rule = RequestRule(path, method, count, rate)
        if kind == "http_errors":
            status = parse_int(d.get("status", 503), f"{name}.status", 429, 599)
            if status != 429 and status < 500:
                raise bad(f"{name}.status", "must be 429 or a 5xx status")
            rule.status = status
            if d.get("code") is not None:
                rule.code = _code(d["code"], f"{name}.code", venue)
        elif kind == "hold_responses":
            if "ms" not in d:
                raise bad(f"{name}.ms", "is required: how long to hold the reply back")
            rule.ms = parse_int(d["ms"], f"{name}.ms", 1, MAX_MS)
        out.append(rule)
    return out


def parse_push_rule(value: Any, name: str, reorder: bool, delay: bool = False) -> PushRule:
    allowed: tuple[str, ...] = ("rate", "count", "channels")
    if reorder:
        allowed += ("window",)
    if delay:
        allowed += ("ms",)
    d = _object(value, name, allowed)
    channels = d.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise bad(f"{name}.channels", "must be a list of channel names")
    for c in channels:
        if c not in CHANNEL_ALIASES:
            raise bad(f"{name}.channels", f"unknown channel {c!r} (known: {', '.join(CHANNEL_ALIASES)})")
    return PushRule(
        rate=_rate(d.get("rate", 0), f"{name}.rate"),
        count=parse_int(d.get("count", 0), f"{name}.count", 0, 1_000_000),
        channels=frozenset(channels),
        window=parse_int(d.get("window", 3), f"{name}.window", 1, 1000) if reorder else 3,
        ms=parse_int(d.get("ms", DEFAULT_DELAY_MS), f"{name}.ms", 1, MAX_PUSH_DELAY_MS)
        if delay
        else DEFAULT_DELAY_MS,
    )
