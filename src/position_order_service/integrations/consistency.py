"""Migration check (migration guide phase 1 step 3 / phase 4): legacy keys against the new schema.

- HYPERRSI: every `user:{user_id}:position:{symbol}:{side}` hash against the OKX position hash
  `positions:realtime:{user_id}:okx:{symbol}:{side}` (size, entry_price, side, leverage, sl_price vs
  stop_loss_price, tp_prices, is_DCA, is_hedge, order_id vs metadata.entry_order_id, position_id vs id).
- GRID: every `{exchange}:user:{user_id}:symbol:{symbol}:active_grid:{level}` hash against the level record
  `grid:level:{user_id}:{exchange}:{symbol}:{level}` (entry_price, position_size, grid_count, side, ...).
Keys present on one side only are differences too (an open new-schema position or level with no legacy key,
a legacy key whose new record is closed or absent). Decimal values compare as numbers ("0.10" == "0.1"):
the legacy bots wrote json floats. Volatile fields (last_price, updated_at) are not compared.

`position-order-service check-consistency [--user ID]` prints every difference and exits 1 when there is one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TextIO

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..config import Settings
from ..store.codec import CorruptRecord
from ..store.connection import connect_redis
from ..store.grid import GRID_CODEC
from ..store.keys import Keys
from ..store.legacy import GRID_FIELDS, HYPERRSI_EXCHANGE, grid_fields, hyperrsi_fields
from ..store.reader import KeyReader
from ..store.repositories import POSITION_CODEC

KEY = "(key)"  # the field of a difference about a whole key (present on one side only)
HYPERRSI_FIELDS = (
    "position_id",
    "symbol",
    "side",
    "size",
    "entry_price",
    "leverage",
    "sl_price",
    "tp_prices",
    "is_DCA",
    "is_hedge",
    "order_id",
)
HYPERRSI_NEW_NAMES = {
    "position_id": "id",
    "sl_price": "stop_loss_price",
    "tp_prices": "metadata.tp_prices",
    "is_DCA": "metadata.is_DCA",
    "is_hedge": "metadata.is_hedge",
    "order_id": "metadata.entry_order_id",
}
_SIDES = ("long", "short")


@dataclass(frozen=True, slots=True)
class Difference:
    key: str  # the legacy key
    field: str  # legacy field name, or KEY
    legacy: str | None
    new: str | None
    new_key: str = ""
    new_field: str = ""

    def __str__(self) -> str:
        if self.field == KEY:
            return (
                f"{self.key}: legacy {self.legacy or 'absent'}, new schema {self.new or 'absent'} "
                f"({self.new_key})"
            )
        named = f" (new: {self.new_field})" if self.new_field and self.new_field != self.field else ""
        return f"{self.key} field {self.field}{named}: legacy={self.legacy!r} new={self.new!r}"


@dataclass
class ConsistencyReport:
    differences: list[Difference] = field(default_factory=list)
    hyperrsi_positions: int = 0
    grid_levels: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        n = len(self.differences)
        checked = f"{self.hyperrsi_positions} HYPERRSI position(s) and {self.grid_levels} GRID level(s)"
        if n == 0:
            return f"consistent: {checked} checked, legacy and new keys agree"
        return f"INCONSISTENT: {n} difference(s) in {checked}"


# -- value comparison -------------------------------------------------------------------------------------
def _decimal(text: str) -> Decimal | None:
    try:
        d = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    return d if d.is_finite() else None


def same(legacy: str | None, new: str | None) -> bool:
    """Equal as text, as numbers, or as JSON lists of such values."""
    if legacy is None or new is None:
        return legacy is new
    if legacy == new:
        return True
    a, b = _decimal(legacy), _decimal(new)
    if a is not None and b is not None:
        return a == b
    try:
        la, lb = orjson.loads(legacy), orjson.loads(new)
    except orjson.JSONDecodeError:
        return False
    if isinstance(la, list) and isinstance(lb, list):
        return len(la) == len(lb) and all(same(str(x), str(y)) for x, y in zip(la, lb, strict=True))
    return False


def _compare(
    legacy_key: str,
    legacy: Mapping[str, str],
    new_key: str,
    expected: Mapping[str, str],
    fields: Iterable[str],
    names: Mapping[str, str],
) -> list[Difference]:
    return [
        Difference(legacy_key, f, legacy.get(f), expected.get(f), new_key, names.get(f, f))
        for f in fields
        if not same(legacy.get(f), expected.get(f))
    ]


# -- HYPERRSI -----------------------------------------------------------------------------------------------
async def _hyperrsi(redis: KeyReader, keys: Keys, user_id: str | None, report: ConsistencyReport) -> None:
    ex = HYPERRSI_EXCHANGE
    legacy: dict[tuple[str, str, str], str] = {}
    for k in await redis.scan(keys.legacy_hyperrsi_position(user_id or "*", "*", "*")):
        parsed = keys.parse_legacy_hyperrsi_position(k)
        if parsed is not None and parsed[2] in _SIDES and (user_id is None or parsed[0] == user_id):
            legacy[parsed] = k
    users = {user_id} if user_id is not None else set()
    if user_id is None:
        for k in await redis.scan(keys.position_index("*", ex)):
            index = keys.parse_position_index(k)
            if index is not None and index[1] == ex:
                users.add(index[0])
        users |= {uid for uid, _, _ in legacy}
    open_new: set[tuple[str, str, str]] = set()
    for uid in sorted(users):
        for m in await redis.members(keys.position_index(uid, ex)):
            symbol, side = keys.split_position_index_member(m)
            open_new.add((uid, symbol, side))
    pairs = sorted(set(legacy) | open_new)
    report.hyperrsi_positions += len(pairs)
    legacy_keys = [legacy.get(p) or keys.legacy_hyperrsi_position(*p) for p in pairs]
    new_keys = [keys.position(uid, ex, symbol, side) for uid, symbol, side in pairs]
    legacy_raw = await redis.hashes(legacy_keys)
    new_raw = await redis.hashes(new_keys)
    for lk, nk, lr, nr in zip(legacy_keys, new_keys, legacy_raw, new_raw, strict=True):
        if not nr:
            report.differences.append(Difference(lk, KEY, "present", None, nk))
            continue
        try:
            position = POSITION_CODEC.decode(nk, nr)
        except CorruptRecord as exc:
            report.differences.append(Difference(lk, exc.field, None, f"corrupt: {exc}", nk, exc.field))
            continue
        if not position.is_open:
            if lr:
                report.differences.append(Difference(lk, KEY, "present", f"{position.status.value}", nk))
            continue
        if not lr:
            report.differences.append(Difference(lk, KEY, None, "open position", nk))
            continue
        expected = hyperrsi_fields(position)
        report.differences += _compare(lk, lr, nk, expected, HYPERRSI_FIELDS, HYPERRSI_NEW_NAMES)


# -- GRID ---------------------------------------------------------------------------------------------------


async def _grid(redis: KeyReader, keys: Keys, user_id: str | None, report: ConsistencyReport) -> None:
    legacy: dict[tuple[str, str, str, int], str] = {}
    for k in await redis.scan(keys.legacy_grid_level_pattern(user_id)):
        parsed = keys.parse_legacy_grid_level(k)
        if parsed is not None and (user_id is None or parsed[0] == user_id):
            legacy[parsed] = k
    open_new: set[tuple[str, str, str, int]] = set()
    for k in await redis.scan(keys.grid_index(user_id or "*", "*")):
        index = keys.parse_grid_index(k)
        if index is None or (user_id is not None and index[0] != user_id):
            continue
        uid, ex = index
        for member in await redis.members(k):
            symbol, level = keys.split_grid_index_member(member)
            open_new.add((uid, ex, symbol, level))
    items = sorted(set(legacy) | open_new)
    report.grid_levels += len(items)
    legacy_keys = [legacy.get(i) or keys.legacy_grid_level(i[1], i[0], i[2], i[3]) for i in items]
    new_keys = [keys.grid_level(*i) for i in items]
    legacy_raw = await redis.hashes(legacy_keys)
    new_raw = await redis.hashes(new_keys)
    for lk, nk, lr, nr in zip(legacy_keys, new_keys, legacy_raw, new_raw, strict=True):
        if not nr:
            report.differences.append(Difference(lk, KEY, "present", None, nk))
            continue
        try:
            record = GRID_CODEC.decode(nk, nr)
        except CorruptRecord as exc:
            report.differences.append(Difference(lk, exc.field, None, f"corrupt: {exc}", nk, exc.field))
            continue
        if not record.is_open:
            if lr:
                report.differences.append(Difference(lk, KEY, "present", record.status.value, nk))
            continue
        if not lr:
            report.differences.append(Difference(lk, KEY, None, "open level", nk))
            continue
        report.differences += _compare(lk, lr, nk, grid_fields(record), GRID_FIELDS, {})


async def check_consistency(redis: Redis, keys: Keys, user_id: str | None = None) -> ConsistencyReport:
    """Every difference between the legacy keys and the new schema (of one user, or of everyone)."""
    report = ConsistencyReport()
    reader = KeyReader(redis)
    await _hyperrsi(reader, keys, user_id, report)
    await _grid(reader, keys, user_id, report)
    return report


# -- command line -----------------------------------------------------------------------------------------
NO_REDIS = (
    "check-consistency needs the Redis the bots and the service share: set REDIS_URL (or REDIS_HOST, "
    "REDIS_PORT, REDIS_PASSWORD). With nothing configured the service runs an embedded server that lives "
    "only inside its own process, so there is nothing to check here."
)


def run_check(user_id: str | None = None, settings: Settings | None = None, out: TextIO | None = None) -> int:
    """The `check-consistency` command: 0 consistent, 1 differences found, 2 cannot check."""
    s = settings or Settings()
    stream = out or sys.stdout
    if s.uses_embedded_redis:
        print(NO_REDIS, file=sys.stderr)
        return 2

    async def run() -> ConsistencyReport:
        redis, on_cluster = await connect_redis(s.redis_dsn(), s.redis_cluster)
        try:
            await KeyReader(redis).ping()
            return await check_consistency(redis, Keys(prefix=s.key_prefix, cluster_tags=on_cluster), user_id)
        finally:
            await redis.aclose()

    try:
        report = asyncio.run(run())
    except (RedisError, OSError) as exc:
        print(f"cannot read the configured Redis: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for d in report.differences:
        print(d, file=stream)
    print(report.summary(), file=stream)
    return 0 if report.ok else 1
