"""Error mapping: the caller's mistakes are 4xx naming what is wrong; exchange refusals 502 with the
exchange's reason; Redis or the exchange out of reach 503. Secrets never reach a message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..domain.symbols import InvalidSymbol
from ..exchanges.base import GatewayError
from ..services.commands import CommandError, OutcomeUnknown
from ..services.credentials import CredentialsUnavailable

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unreachable during %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "Redis is unreachable; try again shortly"}, status_code=503)

    @app.exception_handler(GatewayError)
    async def exchange_refused(request: Request, exc: GatewayError) -> JSONResponse:
        status = exc.status_hint if exc.status_hint in (404, 503) else 502
        return JSONResponse({"detail": f"exchange: {exc.reason}", "code": exc.code}, status_code=status)

    @app.exception_handler(CommandError)
    async def command_refused(request: Request, exc: CommandError) -> JSONResponse:
        loc = _location(request, exc.field)
        if loc is None:
            # a request without a body (GET an unknown order) is never told its body is at fault: the message
            # alone, as the other 404s say it
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        return JSONResponse({"detail": [{"loc": loc, "msg": exc.message}]}, status_code=exc.status)

    @app.exception_handler(InvalidSymbol)
    async def bad_symbol(request: Request, exc: InvalidSymbol) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": ["body", "symbol"], "msg": str(exc)}]}, status_code=422)

    @app.exception_handler(OutcomeUnknown)
    async def outcome_unknown(request: Request, exc: OutcomeUnknown) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(CredentialsUnavailable)
    async def no_credentials(request: Request, exc: CredentialsUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)


def _location(request: Request, field: str | None) -> list[str] | None:
    """Where the faulty field is: the path, the query, or the body (only a request that has one)."""
    if field and field in request.path_params:
        return ["path", field]
    if field and field in request.query_params:
        return ["query", field]
    if request.method in ("POST", "PUT", "PATCH"):
        return ["body", field] if field else ["body"]
    return None
