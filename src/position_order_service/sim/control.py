"""The simulator's control API (/sim/...): fund accounts, move prices, run feeds, drop sockets, inspect."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from ..aio import spawn
from .context import CTX_KEY, SimContext
from .engine import EngineError, RandomWalkFeed, ReplayFeed

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status, content_type="application/json")


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return _json(body, status)


class BadRequest(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _req_str(data: dict[str, Any], name: str) -> str:
    v = data.get(name)
    if not isinstance(v, str) or not v:
        raise BadRequest(f"{name} is required (a non-empty string)", name)
    return v


def _decimal(data: dict[str, Any], name: str, required: bool = True) -> Decimal | None:
    v = data.get(name)
    if v is None:
        if required:
            raise BadRequest(f"{name} is required", name)
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise BadRequest(f"{name} must be a decimal number", name)
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise BadRequest(f"{name} must be a decimal number, got {v!r}", name) from None
    if not d.is_finite() or d <= 0:
        raise BadRequest(f"{name} must be a positive number", name)
    return d


@web.middleware
async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/sim/"):
        return await handler(request)  # type: ignore[no-any-return]
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except BadRequest as exc:
        return _error(400, str(exc), exc.field)
    except EngineError as exc:
        return _error(400, str(exc), exc.details.get("field"))


@routes.post("/sim/accounts")
async def create_account(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    data = await _body(request)
    api_key = _req_str(data, "api_key")
    secret = _req_str(data, "secret")
    passphrase = data.get("passphrase")
    if ctx.venue == "okx" and not passphrase:
        raise BadRequest("passphrase is required for an OKX account", "passphrase")
    balances = data.get("balances", {"USDT": "100000"})
    if not isinstance(balances, dict):
        raise BadRequest("balances must be an object of currency -> amount", "balances")
    mode = data.get("position_mode", "net")
    if mode not in ("net", "long_short"):
        raise BadRequest("position_mode must be 'net' or 'long_short'", "position_mode")
    account = ctx.engine.create_account(
        api_key,
        secret,
        passphrase if isinstance(passphrase, str) else None,
        balances={str(k): str(v) for k, v in balances.items()},
        position_mode=mode,
    )
    return _json(
        {"account_id": account.account_id, "api_key": api_key, "position_mode": mode, "balances": balances},
        201,
    )


@routes.post("/sim/prices")
async def set_price(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    data = await _body(request)
    symbol = _req_str(data, "symbol")
    price = _decimal(data, "price")
    ctx.engine.set_price(
        symbol,
        price,  # type: ignore[arg-type]
        bid=_decimal(data, "bid", required=False),
        ask=_decimal(data, "ask", required=False),
        mark=_decimal(data, "mark", required=False),
    )
    ticker = ctx.engine.ticker(symbol)
    return _json(ticker.to_dict() if ticker else {})


async def _run_feed(ctx: SimContext, symbol: str, prices: Any, interval: float) -> None:
    try:
        for price in prices:
            try:
                ctx.engine.set_price(symbol, price)
            except Exception:  # a listener error must not stop the feed
                log.exception("price feed step failed for %s", symbol)
            await asyncio.sleep(interval)
    finally:
        if ctx.feeds.get(symbol) is asyncio.current_task():
            del ctx.feeds[symbol]


def start_feed(
    ctx: SimContext,
    symbol: str,
    kind: str,
    *,
    interval_ms: int = 500,
    start: Decimal | None = None,
    volatility: Decimal = Decimal("0.0005"),
    seed: int = 0,
    prices: list[Decimal] | None = None,
) -> None:
    inst = ctx.engine.instrument(symbol)
    if kind == "random_walk":
        ticker = ctx.engine.ticker(symbol)
        first = start or (ticker.last if ticker else None)
        if first is None:
            raise BadRequest("start is required: the symbol has no price yet", "start")
        source: Any = RandomWalkFeed(first, tick_size=inst.tick_size, volatility=volatility, seed=seed)
    elif kind == "replay":
        if not prices:
            raise BadRequest("prices is required for a replay feed", "prices")
        source = ReplayFeed(prices)
    else:
        raise BadRequest("kind must be 'random_walk', 'replay' or 'stop'", "kind")
    old = ctx.feeds.pop(symbol, None)
    if old is not None:
        old.cancel()
    ctx.feeds[symbol] = spawn(_run_feed(ctx, symbol, source, interval_ms / 1000), name=f"sim-feed-{symbol}")


@routes.post("/sim/feed")
async def feed(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    data = await _body(request)
    symbol = _req_str(data, "symbol")
    kind = _req_str(data, "kind")
    if kind == "stop":
        task = ctx.feeds.pop(symbol, None)
        if task:
            task.cancel()
        return _json({"symbol": symbol, "running": False})
    interval = data.get("interval_ms", 500)
    if not isinstance(interval, int) or not 10 <= interval <= 60_000:
        raise BadRequest("interval_ms must be an integer from 10 to 60000", "interval_ms")
    seed = data.get("seed", 0)
    if not isinstance(seed, int):
        raise BadRequest("seed must be an integer", "seed")
    raw_prices = data.get("prices")
    prices = None
    if raw_prices is not None:
        if not isinstance(raw_prices, list):
            raise BadRequest("prices must be a list of numbers", "prices")
        prices = [_decimal({"prices": p}, "prices") for p in raw_prices]
    start_feed(
        ctx,
        symbol,
        kind,
        interval_ms=interval,
        start=_decimal(data, "start", required=False),
        volatility=_decimal(data, "volatility", required=False) or Decimal("0.0005"),
        seed=seed,
        prices=prices,  # type: ignore[arg-type]
    )
    return _json({"symbol": symbol, "kind": kind, "running": True, "interval_ms": interval})


@routes.post("/sim/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    dropped = await request.app[CTX_KEY].drop_all_sockets()
    return _json({"dropped": dropped})


@routes.get("/sim/faults")
async def get_faults(request: web.Request) -> web.Response:
    return _json(request.app[CTX_KEY].faults.to_dict())


@routes.post("/sim/faults")
async def set_faults(request: web.Request) -> web.Response:
    """Merge the given faults into the current set (a bad field: 400 naming it, nothing changed)."""
    faults = request.app[CTX_KEY].faults
    faults.update(await _body(request))
    log.info("faults set: %s", faults.to_dict())
    return _json(faults.to_dict())


@routes.delete("/sim/faults")
async def clear_faults(request: web.Request) -> web.Response:
    faults = request.app[CTX_KEY].faults
    faults.clear()
    return _json(faults.to_dict())


@routes.get("/sim/limits")
async def get_limits(request: web.Request) -> web.Response:
    return _json(request.app[CTX_KEY].limits.to_dict())


@routes.post("/sim/limits")
async def set_limits(request: web.Request) -> web.Response:
    limits = request.app[CTX_KEY].limits
    limits.settings.update(await _body(request))
    return _json(limits.to_dict())


@routes.post("/sim/fill-config")
async def fill_config(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    data = await _body(request)
    symbol = _req_str(data, "symbol")
    ctx.engine.set_max_fill_per_step(symbol, _decimal(data, "max_fill_per_step", required=False))
    return _json({"symbol": symbol, "max_fill_per_step": data.get("max_fill_per_step")})


@routes.get("/sim/state")
async def state(request: web.Request) -> web.Response:
    """The engine's state plus what the limits refused and how often each fault applied."""
    ctx = request.app[CTX_KEY]
    body = ctx.engine.snapshot()
    body["refused_connections"] = {ctx.venue: ctx.limits.refused_connections}
    body["closed_for_requests"] = {ctx.venue: ctx.limits.closed_for_requests}
    body["faults_applied"] = dict(ctx.faults.applied)
    return _json(body)
