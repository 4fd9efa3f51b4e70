"""Bearer tokens from settings, each allowed a set of user ids or all of them (admin).

API_TOKENS="token-a=*;token-b=user1,user2". With no tokens configured the server serves only on loopback
(see cli.serve), and every caller counts as admin.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status


@dataclass(frozen=True, slots=True)
class TokenGrant:
    token: str
    users: frozenset[str] | None  # None = every user (admin)

    def __repr__(self) -> str:
        return f"TokenGrant(token=***, users={'*' if self.users is None else sorted(self.users)})"


def parse_tokens(spec: str) -> list[TokenGrant]:
    grants: list[TokenGrant] = []
    for entry in (p.strip() for p in spec.split(";")):
        if not entry:
            continue
        token, sep, users = entry.partition("=")
        token, users = token.strip(), users.strip()
        if not sep or not token or not users:
            raise ValueError("API_TOKENS entries must look like 'token=*' or 'token=user1,user2'")
        if len(token) < 16:
            raise ValueError("every API token must be at least 16 characters long")
        allowed = None if users == "*" else frozenset(u.strip() for u in users.split(",") if u.strip())
        grants.append(TokenGrant(token, allowed))
    return grants


@dataclass(frozen=True, slots=True)
class Caller:
    users: frozenset[str] | None  # None = admin

    def may_act_for(self, user_id: str) -> bool:
        return self.users is None or user_id in self.users


ADMIN = Caller(None)


def caller_for_token(token: str, grants: list[TokenGrant]) -> Caller | None:
    """The caller a token stands for, or None when it is no configured token (compared in constant time)."""
    presented = token.strip().encode()
    found: Caller | None = None
    for g in grants:
        if hmac.compare_digest(g.token.encode(), presented) and found is None:
            found = Caller(g.users)
    return found


def caller_from(request: Request, grants: list[TokenGrant]) -> Caller:
    if not grants:
        return ADMIN
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = caller_for_token(token, grants)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


def check_user(caller: Caller, user_id: str) -> None:
    if not caller.may_act_for(user_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token may not act for user {user_id!r}")
