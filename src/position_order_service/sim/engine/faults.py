"""Injected misbehaviour of the simulated exchange: one :class:`FaultSet` per engine (``engine.faults``).

Everything that serves an engine reads the same set: the engine itself (``clock_offset_ms`` shifts every
timestamp it makes, ``visibility_lag_ms`` hides new orders from queries), the REST middleware of the wire
fronts (``http_errors``, ``drop_responses``, ``hold_responses``, ``delay_ms``, ``drop_order_responses``), and
the push shapers of the WebSocket fronts and of the paper gateway (``ws_drop``, ``ws_duplicate``,
``ws_reorder``, ``ws_delay``). Pure and deterministic: rate-based decisions come from ``random.Random`` seeded by ``seed``
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

from .fault_rules import (
    CHANNEL_ALIASES,
    MAX_MS,
    HttpError,
    PushRule,
    PushVerdict,
    RequestRule,
    bad,
    parse_int,
    parse_push_rule,
    parse_rules,
    push_names,
)

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
_MAX_CLOCK_OFFSET_MS = 7 * 24 * 3600 * 1000
_DELIVER = PushVerdict()

FIELDS = (
    "drop_order_responses",
    "delay_ms",
    "http_errors",
    "drop_responses",
    "hold_responses",
    "ws_drop",
    "ws_duplicate",
    "ws_reorder",
    "ws_delay",
    "clock_offset_ms",
    "visibility_lag_ms",
    "seed",
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
    ws_delay: PushRule = field(default_factory=PushRule)
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
                raise bad(key, f"unknown fault (known: {', '.join(FIELDS)})")
        parsed: dict[str, Any] = {}
        for name in ("drop_order_responses", "delay_ms"):
            if name in data:
                parsed[name] = parse_int(data[name], name, 0, 1_000_000 if name != "delay_ms" else MAX_MS)
        for name in ("http_errors", "drop_responses", "hold_responses"):
            if name in data:
                parsed[name] = parse_rules(data[name], name, self.venue)
        for name in ("ws_drop", "ws_duplicate", "ws_reorder"):
            if name in data:
                parsed[name] = parse_push_rule(data[name], name, name == "ws_reorder")
        if "ws_delay" in data:
            parsed["ws_delay"] = parse_push_rule(data["ws_delay"], "ws_delay", False, delay=True)
        if "clock_offset_ms" in data:
            limit = _MAX_CLOCK_OFFSET_MS
            parsed["clock_offset_ms"] = parse_int(data["clock_offset_ms"], "clock_offset_ms", -limit, limit)
        if "visibility_lag_ms" in data:
            parsed["visibility_lag_ms"] = parse_int(data["visibility_lag_ms"], "visibility_lag_ms", 0, MAX_MS)
        if "seed" in data:
            parsed["seed"] = parse_int(data["seed"], "seed", -(2**63), 2**63 - 1)
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
        self.ws_delay = PushRule()
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
            "ws_delay": self.ws_delay.to_dict(False, delay=True),
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
        return (
            self.ws_drop.active or self.ws_duplicate.active or self.ws_reorder.active or self.ws_delay.active
        )

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
        delay_ms = 0
        if self._hits(self.ws_delay, names, rng):
            delay_ms = self.ws_delay.ms
            self.applied["ws_delay"] += 1
        if duplicate:
            self.applied["ws_duplicate"] += 1
        if duplicate or hold_for or delay_ms:
            return PushVerdict(duplicate=duplicate, hold_for=hold_for, delay_ms=delay_ms)
        return _DELIVER
