"""The port by which services obtain exchange gateways (one per user and exchange, plus public ones)."""

from __future__ import annotations

from typing import Protocol

from ..exchanges.base import ExchangeGateway


class GatewayProvider(Protocol):
    async def for_user(self, user_id: str, exchange: str) -> ExchangeGateway:
        """The user's gateway (built on first use from the user's stored credentials)."""
        ...

    async def public(self, exchange: str) -> ExchangeGateway:
        """A gateway for public market data (no credentials)."""
        ...

    def detach(self, user_id: str, exchange: str) -> ExchangeGateway | None:
        """Take the user's gateway out (the next `for_user` builds a new one); the caller closes it."""
        ...

    async def release(self, user_id: str, exchange: str) -> None:
        """Close and forget the user's gateway."""
        ...

    async def reset_public(self, exchange: str) -> None:
        """Close the exchange's public gateway; the next `public` builds a new connection."""
        ...

    async def close(self) -> None: ...
