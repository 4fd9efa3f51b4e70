"""Every Redis key and channel name the service uses (SPEC sections 2 and 3). Nothing else spells one.

Keys of one user may carry a Redis Cluster hash tag: set `Keys(cluster_tags=True)` (the service does on a
cluster: REDIS_CLUSTER=true, or detected) and every per-user key the service writes wraps the user id in
braces, so one user's state, stream, seq, indexes and legacy mirrors live in one slot and the Lua scripts that
touch several of them stay valid on a cluster. The seed's names are kept exactly when tags are off.

Not tagged: the bots' own keys the service only reads, one key per command (user:{id}:bot:status,
bot:exchanges, watchlist, api:keys), per-user keys only ever used alone (tracked_exchanges), and the global
sets (active/deactivated users, the live stop and rule indexes, prices, leases): no script touches those; the
repositories write them in commands of their own (store/machines.py GlobalIndex, store/users.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVICE_NAME = "position_order_service"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = ""
    cluster_tags: bool = False

    def _u(self, user_id: str) -> str:
        return f"{{{user_id}}}" if self.cluster_tags else user_id

    # -- live state -------------------------------------------------------------------------------------
    def position(self, user_id: str, exchange: str, symbol: str, side: str) -> str:
        return f"{self.prefix}positions:realtime:{self._u(user_id)}:{exchange}:{symbol}:{side}"

    def position_index(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}positions:index:{self._u(user_id)}:{exchange}"

    @staticmethod
    def position_index_member(symbol: str, side: str) -> str:
        return f"{symbol}:{side}"

    @staticmethod
    def split_position_index_member(member: str) -> tuple[str, str]:
        symbol, _, side = member.rpartition(":")
        return symbol, side

    def order(self, user_id: str, exchange: str, order_id: str) -> str:
        return f"{self.prefix}orders:realtime:{self._u(user_id)}:{exchange}:{order_id}"

    def open_orders(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}orders:open:{self._u(user_id)}:{exchange}"

    def closed_orders(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}orders:closed:{self._u(user_id)}:{exchange}"

    def client_order(self, user_id: str, exchange: str, client_order_id: str) -> str:
        """Intent record of a command: written before the order is sent (DESIGN invariant 4)."""
        return f"{self.prefix}orders:intent:{self._u(user_id)}:{exchange}:{client_order_id}"

    def trailing_stop(self, user_id: str, exchange: str, symbol: str, side: str) -> str:
        return f"{self.prefix}trailing_stops:{self._u(user_id)}:{exchange}:{symbol}:{side}"

    def trailing_stop_index(self) -> str:
        """Every live trailing stop (keys), for the engines to load at start."""
        return f"{self.prefix}trailing_stops:index"

    def user_trailing_stops(self, user_id: str) -> str:
        return f"{self.prefix}trailing_stops:index:{self._u(user_id)}"

    def live_rule_index(self) -> str:
        """Every live conditional rule (keys), for the engines to load at start."""
        return f"{self.prefix}conditional_rules:live"

    def conditional_rule(self, user_id: str, rule_id: str) -> str:
        return f"{self.prefix}conditional_rules:{self._u(user_id)}:{rule_id}"

    def conditional_rule_index(self, user_id: str) -> str:
        return f"{self.prefix}conditional_rules:index:{self._u(user_id)}"

    def seen_fills(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}fills:seen:{self._u(user_id)}:{exchange}"

    def fill_mark(self, user_id: str, exchange: str) -> str:
        """The exchange's time (ms) of the account's last fill applied: where a new owner reads fills from."""
        return f"{self.prefix}fills:mark:{self._u(user_id)}:{exchange}"

    def last_price(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}prices:last:{exchange}:{symbol}"

    # -- users --------------------------------------------------------------------------------------------
    def active_users(self) -> str:
        return f"{self.prefix}active_users:{SERVICE_NAME}"

    def deactivated_users(self) -> str:
        return f"{self.prefix}deactivated_users:{SERVICE_NAME}"

    def bot_status(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}:bot:status"

    def bot_status_pattern(self) -> str:
        return f"{self.prefix}user:*:bot:status"

    def bot_exchanges(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}:bot:exchanges"

    def tracked_exchanges(self, user_id: str) -> str:
        """Exchanges the activate API chose for a user (the bot's own bot:exchanges is only read)."""
        return f"{self.prefix}tracked_exchanges:{SERVICE_NAME}:{user_id}"

    def watchlist(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}user:{user_id}:watchlist:{exchange}"

    def credentials(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}credentials:{self._u(user_id)}:{exchange}"

    def legacy_api_keys(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}:api:keys"

    # -- events ---------------------------------------------------------------------------------------
    def event_stream(self, user_id: str) -> str:
        return f"{self.prefix}events:{self._u(user_id)}"

    def event_seq(self, user_id: str) -> str:
        return f"{self.prefix}events:seq:{self._u(user_id)}"

    # -- legacy keys of the bots (migration dual write) -------------------------------------------------
    def legacy_hyperrsi_position(self, user_id: str, symbol: str, side: str) -> str:
        return f"{self.prefix}user:{self._u(user_id)}:position:{symbol}:{side}"

    def legacy_grid_level(self, exchange: str, user_id: str, symbol: str, level: int) -> str:
        return f"{self.prefix}{exchange}:user:{self._u(user_id)}:symbol:{symbol}:active_grid:{level}"

    # -- coordination ----------------------------------------------------------------------------------
    def lease(self, name: str) -> str:
        return f"{self.prefix}lease:{name}"

    def account_lease(self, user_id: str, exchange: str) -> str:
        """The worker lease of an account: "<fencing token>:<worker id>" with a PX expiry (store/leases.py).
        In the user's slot, so every fenced script of the account stays in one slot on a cluster."""
        return f"{self.prefix}leases:account:{self._u(user_id)}:{exchange}"

    def account_fence(self, user_id: str, exchange: str) -> str:
        """The account's fencing-token counter (INCR at each new lease)."""
        return f"{self.prefix}leases:fence:{self._u(user_id)}:{exchange}"

    def live_workers(self) -> str:
        """Registry of live worker processes: a sorted set of worker ids scored by expiry (ms, Redis' clock).
        Global: no script touches it together with a user's key."""
        return f"{self.prefix}workers:live"

    def idempotency(self, user_id: str, key: str) -> str:
        return f"{self.prefix}idempotency:{self._u(user_id)}:{key}"

    # -- bot integrations (integrations/hyperrsi.py, integrations/grid.py) -------------------------------
    def hyperrsi_cooldown(self, user_id: str, symbol: str) -> str:
        """Running entry cooldown of a user on a symbol (a string with a TTL of the cooldown)."""
        return f"{self.prefix}hyperrsi:cooldown:{self._u(user_id)}:{symbol}"

    def hyperrsi_settings(self, user_id: str) -> str:
        """Per-user HYPERRSI settings hash (field cooldown_s)."""
        return f"{self.prefix}hyperrsi:settings:{self._u(user_id)}"

    def grid_level(self, user_id: str, exchange: str, symbol: str, level: int) -> str:
        """New-schema record of one GRID level (store/grid.py)."""
        return f"{self.prefix}grid:level:{self._u(user_id)}:{exchange}:{symbol}:{level}"

    def grid_index(self, user_id: str, exchange: str) -> str:
        """Open GRID levels of a user on an exchange: members "{symbol}:{level}"."""
        return f"{self.prefix}grid:index:{self._u(user_id)}:{exchange}"

    @staticmethod
    def grid_index_member(symbol: str, level: int) -> str:
        return f"{symbol}:{level}"

    @staticmethod
    def split_grid_index_member(member: str) -> tuple[str, int]:
        symbol, _, level = member.rpartition(":")
        return symbol, int(level)

    # -- reading key names back (scans of the consistency check) ------------------------------------------
    def _untag(self, user: str) -> str:
        return user[1:-1] if self.cluster_tags and user.startswith("{") and user.endswith("}") else user

    def parse_legacy_hyperrsi_position(self, key: str) -> tuple[str, str, str] | None:
        """user:{user_id}:position:{symbol}:{side} -> (user_id, symbol, side)."""
        head = f"{self.prefix}user:"
        if not key.startswith(head):
            return None
        user_id, sep, rest = key[len(head) :].partition(":position:")
        symbol, _, side = rest.rpartition(":")
        return (self._untag(user_id), symbol, side) if sep and user_id and symbol and side else None

    def legacy_grid_level_pattern(self, user_id: str | None) -> str:
        return f"{self.prefix}*:user:{self._u(user_id or '*')}:symbol:*:active_grid:*"

    def parse_legacy_grid_level(self, key: str) -> tuple[str, str, str, int] | None:
        """{exchange}:user:{user_id}:symbol:{symbol}:active_grid:{level} -> (user_id, exchange, symbol, level)."""
        m = _LEGACY_GRID.match(key[len(self.prefix) :]) if key.startswith(self.prefix) else None
        return (self._untag(m["uid"]), m["ex"], m["sym"], int(m["lv"])) if m else None

    def parse_position_index(self, key: str) -> tuple[str, str] | None:
        """positions:index:{user_id}:{exchange} -> (user_id, exchange)."""
        head = f"{self.prefix}positions:index:"
        if not key.startswith(head):
            return None
        user_id, _, exchange = key[len(head) :].rpartition(":")
        return (self._untag(user_id), exchange) if user_id else None

    def parse_grid_index(self, key: str) -> tuple[str, str] | None:
        """grid:index:{user_id}:{exchange} -> (user_id, exchange)."""
        head = f"{self.prefix}grid:index:"
        if not key.startswith(head):
            return None
        user_id, _, exchange = key[len(head) :].rpartition(":")
        return (self._untag(user_id), exchange) if user_id else None


_LEGACY_GRID = re.compile(r"^(?P<ex>[^:]+):user:(?P<uid>.+?):symbol:(?P<sym>.+):active_grid:(?P<lv>\d+)$")


@dataclass(frozen=True, slots=True)
class Channels:
    """Pub/Sub channel names (the seed's, exactly). Channels are not keys: no prefix unless asked."""

    prefix: str = ""

    def positions(self, user_id: str, exchange: str, symbol: str) -> str:
        return f"{self.prefix}positions:{user_id}:{exchange}:{symbol}"

    def orders(self, user_id: str, exchange: str) -> str:
        return f"{self.prefix}orders:{user_id}:{exchange}"

    def prices(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}prices:{exchange}:{symbol}"

    def trailing_stops(self, user_id: str) -> str:
        return f"{self.prefix}trailing_stops:{user_id}"

    def conditional_rules(self, user_id: str) -> str:
        return f"{self.prefix}conditional_rules:{user_id}"
