"""The simulator in a process of its own, driven over stdin/stdout, for benchmarks that must not share a core
with it (bench_fill_to_pubsub.py --sim-process).

Start: ``python bench/sim_driver.py okx`` -> first line ``{"url": "http://127.0.0.1:<port>"}``. Then one JSON
command per line on stdin, one JSON reply per line on stdout. Times are CLOCK_MONOTONIC, which every process of
this machine shares, so the caller subtracts them from its own receipts:
  {"op": "account", "key", "secret", "passphrase", "usdt"}                   -> {}
  {"op": "price", "symbol", "price"}                                         -> {"t0"}
  {"op": "order", "key", "symbol", "side", "size", "cid", ["type", "px"]}    -> {"t0"}
  {"op": "pace", "key", "symbol", "size", "rate", "n", "prefix"}             -> {"sent": [[cid, t0], ...], "rate"}
``pace`` places ``n`` market orders (alternating buy/sell) at ``rate`` per second from inside this process: the
exchange producing fills at that rate, at no cost to the process being measured.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from position_order_service.sim.server import SimServer


async def pace(server: SimServer, cmd: dict[str, Any]) -> dict[str, Any]:
    engine = server.ctx.engine
    interval = 1.0 / float(cmd["rate"])
    size = Decimal(cmd["size"])
    sent: list[tuple[str, float]] = []
    start = time.monotonic()
    for i in range(int(cmd["n"])):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        cid = f"{cmd['prefix']}x{i}"
        t0 = time.monotonic()
        engine.place_order(
            cmd["key"], cmd["symbol"], "buy" if i % 2 == 0 else "sell", size, client_order_id=cid
        )
        sent.append((cid, t0))
    return {"sent": sent, "rate": len(sent) / (time.monotonic() - start)}


async def handle(server: SimServer, cmd: dict[str, Any]) -> dict[str, Any]:
    engine = server.ctx.engine
    op = cmd["op"]
    if op == "account":
        engine.create_account(
            cmd["key"], cmd["secret"], cmd.get("passphrase"), balances={"USDT": cmd["usdt"]}
        )
        return {}
    if op == "price":
        t0 = time.monotonic()
        engine.set_price(cmd["symbol"], cmd["price"])
        return {"t0": t0}
    if op == "order":
        extra = {"ord_type": cmd["type"], "px": cmd["px"]} if cmd.get("type") == "limit" else {}
        t0 = time.monotonic()
        engine.place_order(
            cmd["key"], cmd["symbol"], cmd["side"], Decimal(cmd["size"]), client_order_id=cmd["cid"], **extra
        )
        return {"t0": t0}
    if op == "pace":
        return await pace(server, cmd)
    raise ValueError(f"unknown op {op!r}")


async def main(venue: str) -> None:
    server = await SimServer(venue, limits=False).start()
    out = sys.stdout
    out.write(orjson.dumps({"url": server.url}).decode() + "\n")
    out.flush()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            try:
                reply = await handle(server, orjson.loads(line))
            except Exception as exc:  # the caller sees what went wrong in its own traceback
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(orjson.dumps(reply).decode() + "\n")
            out.flush()
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "okx"))
