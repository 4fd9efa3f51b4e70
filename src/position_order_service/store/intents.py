"""Intent records: what a command is about to send, written BEFORE it is sent (DESIGN invariant 4).

Keyed by client order id. The tracker reads them to annotate orders it sees on the exchange (grid level,
metadata), and a command whose reply was lost reads them to resolve the outcome by querying the exchange.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from ..domain.reconcile import Intent
from . import lua
from .keys import Keys
from .leases import FenceTable
from .writer import LuaScript, refused

INTENT_TTL_S = 7 * 24 * 3600


class IntentRepository:
    def __init__(self, redis: Redis, keys: Keys, fences: FenceTable | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.fences = fences or FenceTable()
        self._create = LuaScript(redis, lua.CREATE)

    def key(self, user_id: str, exchange: str, client_order_id: str) -> str:
        return self.keys.client_order(user_id, exchange, client_order_id)

    @staticmethod
    def fields(intent: Intent, request: dict[str, Any] | None = None) -> dict[str, str]:
        """The stored record of an intent (also written by the trigger script, store/machines.py)."""
        return {
            "client_order_id": intent.client_order_id,
            "order_type": intent.order_type or "",
            "grid_level": "" if intent.grid_level is None else str(intent.grid_level),
            "metadata": orjson.dumps(intent.metadata or {}).decode(),
            "request": orjson.dumps(request or {}, default=str).decode(),
            "state": "pending",
        }

    async def create(
        self, user_id: str, exchange: str, intent: Intent, request: dict[str, Any] | None = None
    ) -> bool:
        """Record an intent; False if one with this client order id exists already (a duplicate)."""
        key = self.key(user_id, exchange, intent.client_order_id)
        args: list[str | int | float] = [INTENT_TTL_S]
        for k, v in self.fields(intent, request).items():
            args += [k, v]
        keys = [key]
        fence = self.fences.of(user_id, exchange)
        if fence is not None:
            fence.extend(keys, args)
        created = await self._create(keys=keys, args=args)
        if fence is not None and refused(created):
            raise self.fences.refused(fence)
        return bool(created)

    async def set_state(self, user_id: str, exchange: str, client_order_id: str, **fields: str) -> None:
        key = self.keys.client_order(user_id, exchange, client_order_id)
        await self.redis.hset(key, mapping=fields)  # type: ignore[arg-type]

    async def get_raw(self, user_id: str, exchange: str, client_order_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
            self.keys.client_order(user_id, exchange, client_order_id)
        )
        return {k.decode(): v.decode() for k, v in raw.items()}

    @staticmethod
    def parse(raw: dict[str, str]) -> Intent | None:
        if not raw.get("client_order_id"):
            return None
        level = raw.get("grid_level") or ""
        return Intent(
            client_order_id=raw["client_order_id"],
            order_type=raw.get("order_type") or None,
            grid_level=int(level) if level else None,
            metadata=orjson.loads(raw.get("metadata") or "{}"),
        )

    async def get_many(self, user_id: str, exchange: str, client_order_ids: list[str]) -> dict[str, Intent]:
        if not client_order_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for cid in client_order_ids:
            pipe.hgetall(self.keys.client_order(user_id, exchange, cid))
        out: dict[str, Intent] = {}
        for cid, raw in zip(client_order_ids, await pipe.execute(), strict=True):
            intent = self.parse({k.decode(): v.decode() for k, v in raw.items()})
            if intent is not None:
                out[cid] = intent
        return out

    async def delete(self, user_id: str, exchange: str, client_order_id: str) -> None:
        await self.redis.delete(self.keys.client_order(user_id, exchange, client_order_id))
