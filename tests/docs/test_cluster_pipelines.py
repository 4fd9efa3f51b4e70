"""Scripts queued on a pipeline go through store.writer.evalsha_in: redis-py's cluster pipeline refuses its
`evalsha` method (RedisClusterException), so a pipelined `.evalsha(` works on a single Redis and fails only on a
cluster (it did: the lease loop of every worker on Redis Cluster)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "position_order_service"


def test_no_pipelined_evalsha_in_src() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bpipe\w*\.evalsha\(", line)
    ]
    assert offenders == [], f"pipelined evalsha (use store.writer.evalsha_in): {offenders}"
