"""Backends of the scale-out process tests: the same scenarios on each (issue 14 item 6).

`BACKENDS` lists the Redis deployments the scenarios run on; `redis_url_for(backend)` gives a URL of each.
The single Redis is the shared test server (the scenarios use their own key prefix and clean it up). A Redis
Cluster backend is added next to it once its fixture exists, without changing the scenarios.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

BACKENDS = ["single"]


@pytest.fixture(scope="module")
def redis_url_for(real_redis_url: str) -> Callable[[str], str]:
    def url(backend: str) -> str:
        if backend == "single":
            return real_redis_url
        pytest.skip(f"no {backend} Redis fixture here")

    return url
