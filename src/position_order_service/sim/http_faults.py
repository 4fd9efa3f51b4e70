"""REST faults of the wire fronts (aiohttp middleware over every non-/sim/, non-WebSocket request).

In order: ``delay_ms`` (extra latency), ``http_errors`` (answered with the venue's error body, the request
is not carried out), then the handler runs and its reply is cut (``drop_order_responses``, ``drop_responses``:
the connection is aborted, the client sees a network error and cannot know the outcome) or held back
(``hold_responses``: sent after ``ms``, typically past the client's timeout). See ``engine.faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import hdrs, web

from .context import CTX_KEY

__all__ = ["ORDER_PATHS", "faults_middleware"]

log = logging.getLogger(__name__)

# Requests that place orders: the ones POST /sim/faults {"drop_order_responses": n} cuts off.
ORDER_PATHS = {
    "okx": ("/api/v5/trade/order", "/api/v5/trade/batch-orders", "/api/v5/trade/order-algo"),
    "binance": ("/fapi/v1/order", "/fapi/v1/batchOrders", "/fapi/v1/algoOrder"),
}


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


@web.middleware
async def faults_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/sim/") or _is_upgrade(request):
        return await handler(request)  # type: ignore[no-any-return]
    ctx = request.app[CTX_KEY]
    faults = ctx.faults
    method, path = request.method, request.path
    if faults.delay_ms:
        await asyncio.sleep(faults.delay_ms / 1000)
    error = faults.http_error(method, path)
    if error is not None:
        log.info("fault injection: answering %s %s with HTTP %d", method, path, error.status)
        return web.Response(
            body=orjson.dumps(error.body),
            status=error.status,
            headers=error.headers,
            content_type="application/json",
        )
    response: web.StreamResponse = await handler(request)
    if faults.drop_response(method, path, path in ORDER_PATHS.get(ctx.venue, ())):
        log.info("fault injection: dropping the reply to %s %s", method, path)
        if request.transport is not None:
            request.transport.abort()
        return response
    hold_ms = faults.hold_ms(method, path)
    if hold_ms:
        log.info("fault injection: holding the reply to %s %s for %d ms", method, path, hold_ms)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold_ms / 1000):
                await ctx.stopping.wait()  # a shutting-down server stops holding
    return response
