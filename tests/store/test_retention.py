"""EVENT_STREAM_RETENTION: a count or an age, applied by every XADD (issue 12 item 14)."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from position_order_service.store import Store
from position_order_service.store.retention import StreamRetention
from position_order_service.store.writer import EventWriter


def test_parse_counts_and_ages() -> None:
    assert StreamRetention.parse("10000") == StreamRetention(max_len=10_000, max_age_ms=None)
    assert StreamRetention.parse("6h") == StreamRetention(max_len=None, max_age_ms=6 * 3600 * 1000)
    assert StreamRetention.parse(" 2d ").max_age_ms == 2 * 86_400_000
    assert StreamRetention.parse("90s").max_age_ms == 90_000
    for bad in ("0", "-5", "6 hours", "1w", "", "0h"):
        with pytest.raises(ValueError, match="EVENT_STREAM_RETENTION"):
            StreamRetention.parse(bad)


def test_the_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from position_order_service.config import Settings

    monkeypatch.setenv("EVENT_STREAM_RETENTION", "2d")
    assert Settings(_env_file=None).stream_retention.max_age_ms == 2 * 86_400_000  # type: ignore[call-arg]
    monkeypatch.setenv("EVENT_STREAM_RETENTION", "forever")
    with pytest.raises(ValueError, match="EVENT_STREAM_RETENTION"):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def _emit(writer: EventWriter, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await writer.emit("u1", "", "fill.created", {"user_id": "u1", "i": i})


async def test_count_retention_trims_every_xadd(any_store: Store) -> None:
    store = Store.create(
        any_store.redis,
        prefix=any_store.keys.prefix,
        cluster_tags=any_store.keys.cluster_tags,
        retention=StreamRetention.parse("50"),
    )
    await _emit(store.writer, 400)
    kept = await store.redis.xlen(store.keys.event_stream("u1"))
    # MAXLEN ~ trims whole macro nodes: about 50 kept, never the 400 written
    assert 50 <= kept < 400


async def test_age_retention_drops_entries_older_than_the_age(any_store: Store) -> None:
    store = Store.create(
        any_store.redis,
        prefix=any_store.keys.prefix,
        cluster_tags=any_store.keys.cluster_tags,
        retention=StreamRetention.parse("1s"),
    )
    stream = store.keys.event_stream("u1")
    await _emit(store.writer, 5)
    first_batch_at = time.monotonic()
    assert await store.redis.xlen(stream) == 5
    while time.monotonic() - first_batch_at < 1.05:  # let the first five age past one second
        await _emit(store.writer, 1, start=100)
        await store.redis.delete(stream + ":none")  # keep the loop cheap; nothing else to wait on
        time.sleep(0.05)
    await _emit(store.writer, 1, start=200)
    entries = await store.redis.xrange(stream)
    seqs = [int(e[0].decode().split("-")[0]) for e in entries]
    assert 1 not in seqs and 5 not in seqs, seqs  # the old ones are gone
    assert seqs[-1] == max(seqs) and seqs == sorted(seqs)
    # the ids stay {seq}-1 and every kept entry is younger than the age
    now_ms = int(time.time() * 1000)
    assert all(now_ms - int(e[1][b"t"]) < 1500 for e in entries)


async def test_from_seq_zero_reads_from_the_start_of_what_is_kept(
    redis_client: Redis, key_prefix: str
) -> None:
    from position_order_service.client import PubSubManager

    store = Store.create(redis_client, prefix=key_prefix, retention=StreamRetention.parse("5"))
    await _emit(store.writer, 300)
    pubsub = PubSubManager(redis_client, prefix=key_prefix)
    events = await pubsub.replay("u1", from_seq=0)
    first_kept = int((await redis_client.xrange(store.keys.event_stream("u1"), count=1))[0][0].split(b"-")[0])
    assert events[0].seq == first_kept and events[-1].seq == 300
