"""OKX v5 REST front under /api/v5: routing, signature checks, the {code, msg, data} envelope.

Public endpoints need no signature. Private ones are verified first (see ``auth``): an unsigned, wrongly
signed or stale request gets OKX's 501xx code with HTTP 401 and never reaches the engine; a body that is not
JSON gets 50002. Business outcomes come back with HTTP 200, per item ``sCode``/``sMsg`` for order operations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from ..engine import Account, EngineError
from . import queries, settings
from .auth import verify_rest
from .codes import OkxError, from_engine
from .market import MarketStats
from .trade import Reply, Trader, now_ms

__all__ = ["add_routes"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PublicFn = Callable[[Mapping[str, str]], list[dict[str, Any]]]
PrivateFn = Callable[[Account, Any], "list[dict[str, Any]] | Reply"]

PREFIX = "/api/v5/"


def _reply(
    code: str, msg: str, data: list[Any], status: int = 200, timed: int | None = None, offset_us: int = 0
) -> web.Response:
    body: dict[str, Any] = {"code": code, "msg": msg, "data": data}
    if timed is not None:  # the exchange's clock: shifted by the clock_offset_ms fault
        body["inTime"] = str(timed + offset_us)
        body["outTime"] = str(time.time_ns() // 1000 + offset_us)
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(exc: OkxError) -> web.Response:
    return _reply(exc.code, exc.msg, [], exc.status)


def _system_error(request: web.Request) -> web.Response:
    log.exception("okx wire: unexpected error on %s %s", request.method, request.path)
    return _reply("50026", "System error, please try again later.", [], 500)


def _public(fn: PublicFn) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return _reply("0", "", fn(request.query))
        except OkxError as exc:
            return _error(exc)
        except Exception:
            return _system_error(request)

    return handler


class _Private:
    """Wraps a private endpoint: signature check, JSON body, envelope."""

    def __init__(self, front_engine: Any) -> None:
        self.engine = front_engine

    def __call__(self, fn: PrivateFn, *, body: bool) -> Handler:
        engine = self.engine

        async def handler(request: web.Request) -> web.StreamResponse:
            in_time = time.time_ns() // 1000
            raw = await request.read()
            text = raw.decode("utf-8", errors="replace")
            try:
                account = verify_rest(engine, request.headers, request.method, request.raw_path, text)
                if body:
                    if not raw.strip():
                        raise OkxError("50000", "Body can not be empty.", 400)
                    try:
                        payload: Any = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise OkxError("50002", "Json data format error.", 400) from None
                else:
                    payload = request.query
                out = fn(account, payload)
            except OkxError as exc:
                return _error(exc)
            except EngineError as exc:
                return _error(from_engine(exc, "account"))
            except Exception:
                return _system_error(request)
            if isinstance(out, Reply):
                offset_us = engine.faults.clock_offset_ms * 1000
                return _reply(out.code, out.msg, out.data, timed=in_time, offset_us=offset_us)
            return _reply("0", "", out)

        return handler


def add_routes(app: web.Application, trader: Trader, stats: MarketStats) -> None:
    engine = trader.engine
    list_time = now_ms()
    private = _Private(engine)

    def get(path: str, handler: Handler) -> None:
        app.router.add_get(PREFIX + path, handler, allow_head=False)

    def post(path: str, handler: Handler) -> None:
        app.router.add_post(PREFIX + path, handler)

    # public
    get("public/time", _public(lambda q: [{"ts": str(engine.now_ms())}]))
    get("public/instruments", _public(lambda q: queries.instruments(engine, q, list_time)))
    get("market/ticker", _public(lambda q: queries.ticker(engine, stats, q)))
    get("market/tickers", _public(lambda q: queries.tickers(engine, stats, q)))
    get("public/mark-price", _public(lambda q: queries.mark_prices(engine, q)))
    get("market/books", _public(lambda q: queries.book(engine, q)))

    # private reads
    reads: dict[str, Callable[[Any, Account, Any], list[dict[str, Any]]]] = {
        "trade/order": queries.get_order,
        "trade/orders-pending": queries.pending_orders,
        "trade/orders-history": queries.order_history,
        "trade/orders-history-archive": queries.order_history,
        "trade/fills": queries.fills,
        "trade/fills-history": queries.fills,
        "trade/order-algo": queries.get_algo,
        "trade/orders-algo-pending": queries.pending_algos,
        "trade/orders-algo-history": queries.algo_history,
        "account/positions": queries.positions,
        "account/balance": queries.balance,
        "account/leverage-info": queries.leverage_info,
    }
    for path, fn in reads.items():
        get(path, private(lambda account, q, fn=fn: fn(engine, account, q), body=False))  # type: ignore[misc]
    get("account/config", private(lambda account, q: queries.account_config(engine, account), body=False))

    # private writes
    post("trade/order", private(lambda a, b: trader.place_orders(a, b, max_items=1), body=True))
    post("trade/batch-orders", private(trader.place_orders, body=True))
    post("trade/cancel-order", private(lambda a, b: trader.cancel_orders(a, b, max_items=1), body=True))
    post("trade/cancel-batch-orders", private(trader.cancel_orders, body=True))
    post("trade/amend-order", private(lambda a, b: trader.amend_orders(a, b, max_items=1), body=True))
    post("trade/amend-batch-orders", private(trader.amend_orders, body=True))
    post("trade/order-algo", private(trader.place_algo, body=True))
    post("trade/cancel-algos", private(trader.cancel_algos, body=True))
    post("trade/close-position", private(trader.close_position, body=True))
    post("account/set-leverage", private(lambda a, b: settings.set_leverage(engine, a, b), body=True))
    post(
        "account/set-position-mode", private(lambda a, b: settings.set_position_mode(engine, a, b), body=True)
    )
