"""The ports by which services and adapters use an account without touching its actor: what it knows
(AccountView) and how a command hands the exchange's answers back to it (AccountRecorder)."""

from __future__ import annotations

from typing import Any, Protocol

from ...domain.models import Order, Position
from ...domain.reconcile import Intent


class AccountView(Protocol):
    """What the account's actor knows, for services and adapters (read only)."""

    def tracked(self, user_id: str, exchange: str) -> bool: ...

    def reconciled(self, user_id: str, exchange: str) -> bool:
        """True once a snapshot taken after the account's (re)start or last reconnect has been folded in:
        only then are its positions and mode the exchange's, and triggers may act on them."""
        ...

    def hedged(self, user_id: str, exchange: str) -> bool | None: ...

    def position(self, user_id: str, exchange: str, symbol: str, side: str) -> Position | None: ...

    def open_orders(self, user_id: str, exchange: str, symbol: str | None = None) -> list[Order]: ...

    def order(self, user_id: str, exchange: str, order_id: str) -> Order | None: ...

    def order_by_client_id(self, user_id: str, exchange: str, client_order_id: str) -> Order | None: ...

    async def wait_reconciled(self, user_id: str, exchange: str, within_s: float) -> bool: ...


class AccountRecorder(Protocol):
    """Commands hand the exchange's answers to the account: the actor folds them in its own turn."""

    async def record_reply(self, user_id: str, exchange: str, reply: Order, intent: Intent | None) -> Order:
        """A create command's reply (ids, reported status; never a report). Returns the account's view."""
        ...

    def record_cancel(self, user_id: str, exchange: str, order: Order) -> None: ...

    async def record_reports(
        self,
        user_id: str,
        exchange: str,
        orders: list[Order] | None = None,
        positions: list[Position] | None = None,
        flat: list[tuple[str, str]] | None = None,
    ) -> None:
        """The exchange's own view of some orders or positions, read over REST by a command (`flat`: the
        (symbol, side) slots it listed no position for)."""
        ...

    async def annotate(
        self,
        user_id: str,
        exchange: str,
        symbol: str,
        side: str,
        fields: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ) -> Position | None: ...


class Accounts(AccountView, AccountRecorder, Protocol):
    """Both ports (the AccountRegistry provides them)."""
