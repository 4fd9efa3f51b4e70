"""Request-scoped helpers shared by the routers: the app context, the caller, JSON responses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, Path, Request, Response

from .auth import Caller, caller_from, check_user

if TYPE_CHECKING:
    from ..bootstrap import Services as AppContext

USER_ID_PATTERN = r"^[A-Za-z0-9_.@\-]{1,64}$"
UserIdPath = Annotated[str, Path(pattern=USER_ID_PATTERN, description="the bot platform's user id")]


async def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def get_caller(request: Request) -> Caller:
    return caller_from(request, request.app.state.ctx.token_grants)


# async dependencies: a plain `def` one would run in the thread pool on every request
Ctx = Annotated["AppContext", Depends(get_ctx)]
CallerDep = Annotated[Caller, Depends(get_caller)]


async def user_in_path(user_id: UserIdPath, request: Request) -> str:
    """The path's user id, once the caller's token is known to be allowed to act for it. (One dependency,
    not a chain: FastAPI's per-request cost grows with every node of the dependency graph.)"""
    check_user(caller_from(request, request.app.state.ctx.token_grants), user_id)
    return user_id


AuthorizedUser = Annotated[str, Depends(user_in_path)]


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(
        content=orjson.dumps(data, default=str), status_code=status_code, media_type="application/json"
    )
