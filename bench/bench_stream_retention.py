"""Redis time of one event append under each EVENT_STREAM_RETENTION mode (store/lua.py `xadd_kept`).

Run: ``.venv/bin/python bench/bench_stream_retention.py [--events 20000] [--body 400]``

Every state-writing script appends its event through `xadd_kept`: a count ("10000": XADD MAXLEN ~) or an age
("6h": the entry carries its time and the oldest entries past the age are trimmed). A private redis-server
(bench/own_redis.py) runs `xadd_kept` alone, pipelined 500 per round trip, on a stream that starts empty and
grows past the count; INFO commandstats gives the Redis time per call. The count mode is the yardstick (no issue
sets a target; before the oldest-entry check, the age mode read 64 entries per append: ~28x the count mode).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from own_redis import start_own_redis, stop  # noqa: E402

from position_order_service.store import lua  # noqa: E402

SCRIPT = lua.XADD_KEPT + "\nxadd_kept(KEYS[1], ARGV[1], ARGV[2], ARGV[3])\nreturn 1\n"


def us_per_append(r: Redis, sha: str, events: int, body: str, keep: str | None, age_ms: int) -> float:
    r.delete("bench:retention")
    r.config_resetstat()
    now = int(time.time() * 1000)
    pipe = r.pipeline(transaction=False)
    for i in range(1, events + 1):
        arg = keep if keep is not None else f"age:{now + i}:{age_ms}"
        pipe.evalsha(sha, 1, "bench:retention", str(i), body, arg)
        if i % 500 == 0:
            pipe.execute()
            pipe = r.pipeline(transaction=False)
    pipe.execute()
    return float(r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--body", type=int, default=400, help="bytes of each event's body")
    args = ap.parse_args()
    proc, url = start_own_redis()
    try:
        r = Redis.from_url(url)
        sha = r.script_load(SCRIPT)
        body = '{"b":"' + "x" * args.body + '"}'
        count = us_per_append(r, sha, args.events, body, "10000", 0)
        age_kept = us_per_append(r, sha, args.events, body, None, 3_600_000)  # nothing old: only the check
        # every append finds old entries: 1 ms of age while 500 appends take longer than that
        age_trim = us_per_append(r, sha, args.events, body, None, 1)
    finally:
        stop(proc)
    print(f"event append (xadd_kept), {args.events:,} appends of {args.body}-byte bodies, private redis-server, "
          f"pipelined 500 per round trip; Redis time per call (INFO commandstats)")  # fmt: skip
    print(f"count retention (10000; the yardstick): {count:.1f} us")
    print(f"age retention (1 h: nothing to trim): {age_kept:.1f} us (ratio {age_kept / count:.2f})")
    print(f"age retention (1 ms: old entries trimmed on each append): {age_trim:.1f} us")


if __name__ == "__main__":
    main()
