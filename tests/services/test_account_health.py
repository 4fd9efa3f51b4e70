"""What an account says about itself (/status, /ready) across a Redis outage."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from .harness import Harness


async def test_an_account_says_what_it_said_before_a_redis_outage_once_redis_answers(h: Harness) -> None:
    h.account("u1")
    h.price("60000")
    actor = await h.track("u1")
    actor.health.state = "starting"  # its paced private sockets are not open yet: not `healthy`
    calls = 0

    async def write() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RedisConnectionError("Connection refused")
        return 1

    assert await actor._retrying(write) == 1
    assert calls == 2 and actor.health.state == "starting"
