"""Injected misbehaviour of the simulated exchange: one :class:`FaultSet` per engine (``engine.faults``).

Everything that serves an engine reads the same set: the engine itself (``clock_offset_ms`` shifts every
timestamp it makes, ``visibility_lag_ms`` hides new orders from queries), the REST middleware of the wire
fronts (``http_errors``, ``drop_responses``, ``hold_responses``, ``delay_ms``, ``drop_order_responses``), and
the push shapers of the WebSocket fronts and of the paper gateway (``ws_drop``, ``ws_duplicate``,
``ws_reorder``). Pure and deterministic: rate-based decisions come from ``random.Random`` seeded by ``seed``
(REST) or by ``seed`` and the socket's identity (pushes), so a seed replays the same faults for the same
sequence of requests and pushes.

``update`` validates a whole body before it changes anything (a bad field leaves the set as it was) and
raises :class:`InvalidRequest` naming the field (``http_errors[0].status``). A given field replaces that
field; ``count`` rules are consumed and vanish at 0, ``rate`` rules stay until cleared.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest

__all__ = [
    "CHANNEL_ALIASES",
    "FIELDS",
    "FaultSet",
    "HttpError",
    "PushRule",
    "PushVerdict",
    "RequestRule",
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


# The venue's own error body for an injected HTTP error: (code, message) per status class, and the messages
# of the codes a caller may name. ccxt maps these codes to its exception classes as it does in production.
_OKX_DEFAULT = {429: "50011", 500: "50001"}
_OKX_MESSAGES = {
    "50001": "Service temporarily unavailable. Please try again later.",
    "50011": "Too many requests. Please slow down.",
    "50013": "Systems are busy. Please try again later.",
    "50026": "System error. Try again later.",
    "50004": "Endpoint request timeout (does not mean that the request was successful or failed).",
}
_BINANCE_DEFAULT = {429: -1003, 500: -1001}
_BINANCE_MESSAGES = {
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests; current limit of IP is 2400 requests per minute.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
}
_METHODS = ("GET", "POST", "PUT", "DELETE")
_MAX_MS = 600_000
_MAX_CLOCK_OFFSET_MS = 7 * 24 * 3600 * 1000

FIELDS = (
    "drop_order_responses",
    "delay_ms",
    "http_errors",
    "drop_responses",
    "hold_responses",
    "ws_drop",
    "ws_duplicate",
    "ws_reorder",
    "clock_offset_ms",
    "visibility_lag_ms",
    "seed",
)


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
    ``channels`` empty = every push; ``window`` (reorder only): delivered after 1..window later pushes."""

    rate: float = 0.0
    count: int = 0
    channels: frozenset[str] = frozenset()
    window: int = 3

    @property
    def active(self) -> bool:
        return self.count > 0 or self.rate > 0

    def to_dict(self, reorder: bool) -> dict[str, Any]:
        d: dict[str, Any] = {"rate": self.rate, "count": self.count, "channels": sorted(self.channels)}
        if reorder:
            d["window"] = self.window
        return d


@dataclass(frozen=True, slots=True)
class PushVerdict:
    drop: bool = False
    duplicate: bool = False
    hold_for: int = 0  # > 0: deliver after this many later pushes of the same socket


_DELIVER = PushVerdict()


# ---------------------------------------------------------------- parsing (validate everything, then apply)


def _bad(field_name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field_name}: {message}", field=field_name)


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, "must be an integer")
    if not lo <= value <= hi:
        raise _bad(name, f"must be from {lo} to {hi}")
    return value


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(name, "must be a number from 0 to 1")
    if not 0 <= value <= 1:
        raise _bad(name, "must be from 0 to 1")
    return float(value)


def _object(value: Any, name: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(name, "must be an object")
    for key in value:
        if key not in allowed:
            raise _bad(f"{name}.{key}", f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _count_or_rate(d: Mapping[str, Any], name: str) -> tuple[int | None, float | None]:
    if "count" in d and "rate" in d:
        raise _bad(f"{name}.count", "give count or rate, not both")
    if "rate" in d:
        return None, _rate(d["rate"], f"{name}.rate")
    return _int(d.get("count", 1), f"{name}.count", 1, 1_000_000), None


def _code(value: Any, name: str, venue: str) -> str | int:
    if venue == "okx":
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit():
            raise _bad(name, 'must be an OKX error code such as "50013"')
        return str(value)
    try:
        code = int(value)
    except (TypeError, ValueError):
        raise _bad(name, "must be a Binance error code such as -1008") from None
    if isinstance(value, bool) or code >= 0:
        raise _bad(name, "must be a negative Binance error code such as -1008")
    return code


_RULE_FIELDS = {
    "http_errors": ("path", "method", "status", "code", "count", "rate"),
    "drop_responses": ("path", "method", "count", "rate"),
    "hold_responses": ("path", "method", "ms", "count", "rate"),
}


def _rules(value: Any, kind: str, venue: str) -> list[RequestRule]:
    if not isinstance(value, list):
        raise _bad(kind, "must be a list of objects")
    out: list[RequestRule] = []
    for i, raw in enumerate(value):
        name = f"{kind}[{i}]"
        d = _object(raw, name, _RULE_FIELDS[kind])
        path = d.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise _bad(f"{name}.path", "is required: a path prefix starting with /")
        method = d.get("method")
        if method is not None:
            if not isinstance(method, str) or method.upper() not in _METHODS:
                raise _bad(f"{name}.method", f"must be one of {', '.join(_METHODS)}")
            method = method.upper()
        count, rate = _count_or_rate(d, name)
        rule = RequestRule(path, method, count, rate)
        if kind == "http_errors":
            status = _int(d.get("status", 503), f"{name}.status", 429, 599)
            if status != 429 and status < 500:
                raise _bad(f"{name}.status", "must be 429 or a 5xx status")
            rule.status = status
            if d.get("code") is not None:
                rule.code = _code(d["code"], f"{name}.code", venue)
        elif kind == "hold_responses":
            if "ms" not in d:
                raise _bad(f"{name}.ms", "is required: how long to hold the reply back")
            rule.ms = _int(d["ms"], f"{name}.ms", 1, _MAX_MS)
        out.append(rule)
    return out


def _push_rule(value: Any, name: str, reorder: bool) -> PushRule:
    allowed = ("rate", "count", "channels", "window") if reorder else ("rate", "count", "channels")
    d = _object(value, name, allowed)
    channels = d.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise _bad(f"{name}.channels", "must be a list of channel names")
    for c in channels:
        if c not in CHANNEL_ALIASES:
            raise _bad(f"{name}.channels", f"unknown channel {c!r} (known: {', '.join(CHANNEL_ALIASES)})")
    return PushRule(
        rate=_rate(d.get("rate", 0), f"{name}.rate"),
        count=_int(d.get("count", 0), f"{name}.count", 0, 1_000_000),
        channels=frozenset(channels),
        window=_int(d.get("window", 3), f"{name}.window", 1, 1000) if reorder else 3,
    )


# ---------------------------------------------------------------- the set


@dataclass
class FaultSet:
    """The current faults of one simulated venue (``"okx"`` or ``"binance"``) and how often each applied."""

    venue: str
    drop_order_responses: int = 0
    delay_ms: int = 0
    http_errors: list[RequestRule] = field(default_factory=list)
    drop_responses: list[RequestRule] = field(default_factory=list)
    hold_responses: list[RequestRule] = field(default_factory=list)
    ws_drop: PushRule = field(default_factory=PushRule)
    ws_duplicate: PushRule = field(default_factory=PushRule)
    ws_reorder: PushRule = field(default_factory=PushRule)
    clock_offset_ms: int = 0
    visibility_lag_ms: int = 0
    seed: int = 0
    epoch: int = 0
    """Bumped when the seed is set: push shapers re-seed their generators from then on."""
    applied: Counter[str] = field(default_factory=Counter)
    """How many times each fault applied (``GET /sim/state`` -> ``faults_applied``)."""
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    # ------------------------------------------------------------------ control

    def update(self, data: Mapping[str, Any]) -> None:
        """Merge the given fields (each replaces the current value). Nothing changes if any field is bad."""
        for key in data:
            if key not in FIELDS:
                raise _bad(key, f"unknown fault (known: {', '.join(FIELDS)})")
        parsed: dict[str, Any] = {}
        for name in ("drop_order_responses", "delay_ms"):
            if name in data:
                parsed[name] = _int(data[name], name, 0, 1_000_000 if name != "delay_ms" else _MAX_MS)
        for name in ("http_errors", "drop_responses", "hold_responses"):
            if name in data:
                parsed[name] = _rules(data[name], name, self.venue)
        for name in ("ws_drop", "ws_duplicate", "ws_reorder"):
            if name in data:
                parsed[name] = _push_rule(data[name], name, name == "ws_reorder")
        if "clock_offset_ms" in data:
            limit = _MAX_CLOCK_OFFSET_MS
            parsed["clock_offset_ms"] = _int(data["clock_offset_ms"], "clock_offset_ms", -limit, limit)
        if "visibility_lag_ms" in data:
            parsed["visibility_lag_ms"] = _int(data["visibility_lag_ms"], "visibility_lag_ms", 0, _MAX_MS)
        if "seed" in data:
            parsed["seed"] = _int(data["seed"], "seed", -(2**63), 2**63 - 1)
        for name, value in parsed.items():
            setattr(self, name, value)
        if "seed" in parsed:
            self.reseed()

    def reseed(self) -> None:
        self._rng = random.Random(self.seed)
        self.epoch += 1

    def clear(self) -> None:
        """No faults at all (the seed and the counters of applied faults stay)."""
        self.drop_order_responses = self.delay_ms = 0
        self.http_errors, self.drop_responses, self.hold_responses = [], [], []
        self.ws_drop, self.ws_duplicate, self.ws_reorder = PushRule(), PushRule(), PushRule()
        self.clock_offset_ms = self.visibility_lag_ms = 0
        self.reseed()

    def to_dict(self) -> dict[str, Any]:
        return {
            "drop_order_responses": self.drop_order_responses,
            "delay_ms": self.delay_ms,
            "http_errors": [r.to_dict("http_errors") for r in self.http_errors],
            "drop_responses": [r.to_dict("drop_responses") for r in self.drop_responses],
            "hold_responses": [r.to_dict("hold_responses") for r in self.hold_responses],
            "ws_drop": self.ws_drop.to_dict(False),
            "ws_duplicate": self.ws_duplicate.to_dict(False),
            "ws_reorder": self.ws_reorder.to_dict(True),
            "clock_offset_ms": self.clock_offset_ms,
            "visibility_lag_ms": self.visibility_lag_ms,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ REST

    def _take(self, rules: list[RequestRule], method: str, path: str) -> RequestRule | None:
        """The first rule matching the request that applies to it now (a count is consumed)."""
        for i, rule in enumerate(rules):
            if not rule.matches(method, path):
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    del rules[i]
                return rule
            if rule.rate is not None and self._rng.random() < rule.rate:
                return rule
        return None

    def http_error(self, method: str, path: str) -> HttpError | None:
        rule = self._take(self.http_errors, method, path) if self.http_errors else None
        if rule is None:
            return None
        self.applied["http_errors"] += 1
        headers = {"Retry-After": "1"} if rule.status == 429 else {}
        status_class = 429 if rule.status == 429 else 500
        if self.venue == "okx":
            ocode = str(rule.code) if rule.code is not None else _OKX_DEFAULT[status_class]
            msg = _OKX_MESSAGES.get(ocode, "Simulated error.")
            return HttpError(rule.status, {"code": ocode, "msg": msg, "data": []}, headers)
        bcode = int(rule.code) if rule.code is not None else _BINANCE_DEFAULT[status_class]
        return HttpError(
            rule.status, {"code": bcode, "msg": _BINANCE_MESSAGES.get(bcode, "Simulated error.")}, headers
        )

    def drop_response(self, method: str, path: str, places_order: bool) -> bool:
        """Whether to cut the connection after carrying the request out (``places_order``: the request is one
        of the venue's order placements, which ``drop_order_responses`` counts)."""
        if places_order and method == "POST" and self.drop_order_responses > 0:
            self.drop_order_responses -= 1
            self.applied["drop_order_responses"] += 1
            return True
        if self.drop_responses and self._take(self.drop_responses, method, path) is not None:
            self.applied["drop_responses"] += 1
            return True
        return False

    def hold_ms(self, method: str, path: str) -> int:
        rule = self._take(self.hold_responses, method, path) if self.hold_responses else None
        if rule is None:
            return 0
        self.applied["hold_responses"] += 1
        return rule.ms

    # ------------------------------------------------------------------ pushes

    @property
    def pushes_faulty(self) -> bool:
        return self.ws_drop.active or self.ws_duplicate.active or self.ws_reorder.active

    def push_rng(self, identity: str) -> random.Random:
        """The generator of one socket's push decisions: a function of the seed and the socket's identity,
        not of how the pushes of several sockets interleave."""
        return random.Random(f"{self.seed}:{self.venue}:{identity}")

    def _hits(self, rule: PushRule, names: frozenset[str], rng: random.Random) -> bool:
        if not rule.active or (rule.channels and rule.channels.isdisjoint(names)):
            return False
        if rule.count > 0:
            rule.count -= 1
            return True
        return rule.rate > 0 and rng.random() < rule.rate

    def judge_push(self, names: frozenset[str], rng: random.Random) -> PushVerdict:
        """What happens to one push answering to ``names`` (see ``push_names``)."""
        if not self.pushes_faulty:
            return _DELIVER
        if self._hits(self.ws_drop, names, rng):
            self.applied["ws_drop"] += 1
            return PushVerdict(drop=True)
        duplicate = self._hits(self.ws_duplicate, names, rng)
        hold_for = 0
        if self._hits(self.ws_reorder, names, rng):
            hold_for = rng.randint(1, self.ws_reorder.window)
            self.applied["ws_reorder"] += 1
        if duplicate:
            self.applied["ws_duplicate"] += 1
        return PushVerdict(duplicate=duplicate, hold_for=hold_for) if duplicate or hold_for else _DELIVER
