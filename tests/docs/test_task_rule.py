"""The project's rule on background tasks, checked on the source: every task starts through the supervisor or
aio.spawn (named, owned by something that awaits or cancels it), never a bare create_task/ensure_future."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "position_order_service"
BARE = re.compile(r"asyncio\.(create_task|ensure_future)\(|loop\(\)\.create_task\(|loop\.create_task\(")
ALLOWED = {"aio.py", "supervisor.py"}


def test_no_bare_tasks_in_src() -> None:
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name not in ALLOWED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if BARE.search(line)
    ]
    assert not found, "background tasks started outside aio.spawn / the supervisor:\n" + "\n".join(found)
