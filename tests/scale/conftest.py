"""Backends of the scale-out process tests: the same scenarios on each (issue 14 item 6).

`BACKENDS` lists the Redis deployments the scenarios run on; `redis_url_for(backend)` gives a URL of each.
The single Redis is the shared test server (the scenarios use their own key prefix and clean it up); the cluster
is a real 3-master Redis Cluster on loopback (tests/redis_backends.py), the processes given one master's URL
and finding the rest themselves (REDIS_CLUSTER=auto).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

BACKENDS = ["single", "cluster"]


@pytest.fixture(scope="module")
def redis_url_for(request: pytest.FixtureRequest, real_redis_url: str) -> Callable[[str], str]:
    def url(backend: str) -> str:
        if backend == "single":
            return real_redis_url
        return str(request.getfixturevalue("redis_cluster_url"))

    return url
