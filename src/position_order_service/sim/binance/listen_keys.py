"""User-data-stream listen keys: one live key per account, valid 60 minutes after its last keepalive.

POST /fapi/v1/listenKey returns the account's live key (extending it) or a new one; PUT extends it;
DELETE closes it.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LISTEN_KEY_TTL_MS", "ListenKeys"]

LISTEN_KEY_TTL_MS = 60 * 60 * 1000
_ALPHABET = string.ascii_letters + string.digits


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Entry:
    account_id: str
    expires_ms: int


class ListenKeys:
    def __init__(self, clock: Callable[[], int] = _now_ms) -> None:
        self._clock = clock
        self._by_key: dict[str, _Entry] = {}
        self._by_account: dict[str, str] = {}

    def open(self, account_id: str) -> str:
        """The account's live key, extended; a fresh one when it has none."""
        now = self._clock()
        key = self._by_account.get(account_id)
        if key is not None:
            entry = self._by_key[key]
            if entry.expires_ms > now:
                entry.expires_ms = now + LISTEN_KEY_TTL_MS
                return key
            del self._by_key[key]
        key = "".join(secrets.choice(_ALPHABET) for _ in range(64))
        self._by_key[key] = _Entry(account_id, now + LISTEN_KEY_TTL_MS)
        self._by_account[account_id] = key
        return key

    def keepalive(self, account_id: str) -> str | None:
        """Extend the account's live key; None when it has none (Binance -1125)."""
        key = self._by_account.get(account_id)
        if key is None or self.account_of(key) is None:
            return None
        self._by_key[key].expires_ms = self._clock() + LISTEN_KEY_TTL_MS
        return key

    def close(self, account_id: str) -> str | None:
        key = self._by_account.pop(account_id, None)
        if key is not None:
            self._by_key.pop(key, None)
        return key

    def account_of(self, key: str) -> str | None:
        """The account of a live key, or None (unknown or expired)."""
        entry = self._by_key.get(key)
        if entry is None:
            return None
        if entry.expires_ms <= self._clock():
            del self._by_key[key]
            if self._by_account.get(entry.account_id) == key:
                del self._by_account[entry.account_id]
            return None
        return entry.account_id
