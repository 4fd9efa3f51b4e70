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
        loc = ["body", exc.field] if exc.field else ["body"]
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
