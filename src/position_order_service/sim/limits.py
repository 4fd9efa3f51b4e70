"""The venues' WebSocket connection limits, enforced per client address (exchange-wire-notes.md).

- OKX: ``okx_ws_connects_per_s`` (3) connection attempts per second per IP; ``okx_ws_requests_per_conn_per_hour``
  (480) login/subscribe/unsubscribe requests per connection per hour.
- Binance USD-M: ``binance_ws_connects_per_5min`` (300) connection attempts per 5 minutes per IP.

An attempt over the limit is refused before the upgrade with HTTP 429 (the caller answers as the venue does)
and counted in ``refused_connections``; a refused attempt does not use up the allowance, so a client that
paces itself gets in as soon as the window allows. On by default; ``POST /sim/limits {"enabled": false}`` or
``position-order-service sim --no-limits`` turns them off.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .engine import InvalidRequest

__all__ = ["ConnectionLimits", "LimitSettings", "RequestBudget"]

_HOUR_S = 3600.0


@dataclass
class LimitSettings:
    enabled: bool = True
    okx_ws_connects_per_s: int = 3
    okx_ws_requests_per_conn_per_hour: int = 480
    binance_ws_connects_per_5min: int = 300

    def update(self, data: Mapping[str, Any]) -> None:
        """Merge the given fields; nothing changes if one is bad (InvalidRequest naming it)."""
        parsed: dict[str, Any] = {}
        for key, value in data.items():
            if key == "enabled":
                if not isinstance(value, bool):
                    raise InvalidRequest("enabled must be true or false", field="enabled")
            elif key in _NUMBERS:
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
                    raise InvalidRequest(f"{key} must be an integer from 1 to 1000000", field=key)
            else:
                raise InvalidRequest(
                    f"unknown limit {key!r} (known: enabled, {', '.join(_NUMBERS)})", field=key
                )
            parsed[key] = value
        for key, value in parsed.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "okx_ws_connects_per_s": self.okx_ws_connects_per_s,
            "okx_ws_requests_per_conn_per_hour": self.okx_ws_requests_per_conn_per_hour,
            "binance_ws_connects_per_5min": self.binance_ws_connects_per_5min,
        }


_NUMBERS = ("okx_ws_connects_per_s", "okx_ws_requests_per_conn_per_hour", "binance_ws_connects_per_5min")


def _admit(times: deque[float], now: float, window_s: float, limit: int) -> bool:
    """Sliding window: True (and recorded) when fewer than ``limit`` events happened in the last ``window_s``."""
    while times and now - times[0] >= window_s:
        times.popleft()
    if len(times) >= limit:
        return False
    times.append(now)
    return True


class RequestBudget:
    """One OKX connection's login/subscribe/unsubscribe requests in the last hour."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits
        self._times: deque[float] = deque()

    def take(self) -> bool:
        """False when this request is over the limit (the caller sends 60014 and closes the socket)."""
        s = self._limits.settings
        if not s.enabled:
            return True
        ok = _admit(self._times, self._limits.clock(), _HOUR_S, s.okx_ws_requests_per_conn_per_hour)
        if not ok:
            self._limits.closed_for_requests += 1
        return ok


@dataclass
class ConnectionLimits:
    """The limits of one simulated venue and what they refused."""

    venue: str
    settings: LimitSettings = field(default_factory=LimitSettings)
    clock: Callable[[], float] = time.monotonic
    refused_connections: int = 0
    closed_for_requests: int = 0
    _attempts: dict[str, deque[float]] = field(default_factory=dict)

    def _window(self) -> tuple[float, int]:
        if self.venue == "okx":
            return 1.0, self.settings.okx_ws_connects_per_s
        return 300.0, self.settings.binance_ws_connects_per_5min

    def admit(self, peer: str | None) -> bool:
        """Whether a WebSocket connection attempt from ``peer`` (the client's IP) may be upgraded."""
        if not self.settings.enabled:
            return True
        window_s, limit = self._window()
        now = self.clock()
        key = peer or "?"
        times = self._attempts.get(key)
        if times is None:
            if len(self._attempts) > 10_000:  # bound: forget addresses whose window has passed
                for k in [k for k, t in self._attempts.items() if not t or now - t[-1] >= window_s]:
                    del self._attempts[k]
            times = self._attempts[key] = deque()
        if _admit(times, now, window_s, limit):
            return True
        self.refused_connections += 1
        return False

    def budget(self) -> RequestBudget:
        return RequestBudget(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.settings.to_dict(),
            "refused_connections": {self.venue: self.refused_connections},
            "closed_for_requests": {self.venue: self.closed_for_requests},
        }
