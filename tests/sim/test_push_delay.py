"""The ``ws_delay`` push fault of one socket (PushShaper): the push waits, the socket's later pushes wait behind
it in their order, other sockets are not held, and a closed socket loses what it held."""

from __future__ import annotations

import asyncio

from position_order_service.sim.engine.faults import FaultSet, push_names
from position_order_service.sim.push_faults import PushShaper


def _shaper(faults: FaultSet, out: list[tuple[float, str]]) -> PushShaper[str]:
    loop = asyncio.get_running_loop()
    return PushShaper(faults, "okx:private", lambda item: out.append((loop.time(), item)))


async def test_a_delayed_push_holds_the_later_pushes_of_its_socket_in_order() -> None:
    faults = FaultSet("okx")
    faults.update({"ws_delay": {"count": 1, "ms": 200, "channels": ["orders"]}})
    out: list[tuple[float, str]] = []
    shaper = _shaper(faults, out)
    start = asyncio.get_running_loop().time()
    shaper.send("order-1", push_names("positions"))  # not matched, nothing delayed yet: at once
    shaper.send("order-2", push_names("orders"))  # delayed
    shaper.send("position-3", push_names("positions"))  # behind it
    assert [i for _, i in out] == ["order-1"]
    await asyncio.sleep(0.1)
    assert [i for _, i in out] == ["order-1"]
    await asyncio.sleep(0.2)
    assert [i for _, i in out] == ["order-1", "order-2", "position-3"]
    assert out[1][0] - start >= 0.19
    assert faults.applied["ws_delay"] == 1
    shaper.send("order-4", push_names("orders"))  # the count is used up: at once again
    assert out[-1][1] == "order-4"


async def test_a_closed_socket_loses_its_delayed_pushes() -> None:
    faults = FaultSet("okx")
    faults.update({"ws_delay": {"rate": 1.0, "ms": 50}})
    out: list[tuple[float, str]] = []
    shaper = _shaper(faults, out)
    shaper.send("a", push_names("orders"))
    shaper.close()
    await asyncio.sleep(0.1)
    assert out == []
