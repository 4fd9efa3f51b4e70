"""How much of a user's event stream is kept: a count of entries or an age (EVENT_STREAM_RETENTION).

By count, every XADD trims with `MAXLEN ~ n` (Redis trims whole macro nodes, so a few more may stay). By age,
each entry carries the time it was written (field `t`, ms) and every XADD drops, oldest first, up to 64
entries older than the age (XTRIM MINID): trimming keeps pace with writing without a background job. Stream
ids stay `{seq}-1`. An entry without `t` (written under a count retention) counts as old once the age
retention is switched on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

DEFAULT_COUNT = 10_000
_AGE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class StreamRetention:
    max_len: int | None = DEFAULT_COUNT
    max_age_ms: int | None = None

    @classmethod
    def parse(cls, text: str | int) -> StreamRetention:
        """`10000` (entries) or `90s` / `30m` / `6h` / `2d` (age)."""
        raw = str(text).strip().lower()
        if raw.isdigit():
            n = int(raw)
            if n < 1:
                raise ValueError("EVENT_STREAM_RETENTION: a count must be at least 1")
            return cls(max_len=n, max_age_ms=None)
        m = _AGE.match(raw)
        if m is None or int(m.group(1)) == 0:
            raise ValueError(
                f"EVENT_STREAM_RETENTION={text!r}: use a count of events (10000) or an age such as 90s, 30m, 6h, 2d"
            )
        return cls(max_len=None, max_age_ms=int(m.group(1)) * _UNIT_MS[m.group(2)])

    def script_arg(self, now_ms: int | None = None) -> str:
        """The argument the Lua scripts' `xadd_kept` reads: "<count>" or "age:<now ms>:<age ms>"."""
        if self.max_age_ms is None:
            return str(self.max_len or DEFAULT_COUNT)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return f"age:{now}:{self.max_age_ms}"

    def describe(self) -> str:
        if self.max_age_ms is None:
            return f"the last {self.max_len} events"
        return f"events of the last {self.max_age_ms // 1000} s"
