"""Domain events on the in-process bus (bus.py): what an account actor committed, as typed values.

Published after the state and its Redis event are written (DESIGN: events after commit), so a subscriber
(trailing-stop engine, rule engine, HYPERRSI adapter, metrics) only ever sees state that is in Redis.
The Redis/Pub/Sub payloads are built elsewhere (domain/events.py); these carry the models themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .market import FillReport
from .models import Order, Position

PositionCause = Literal["exchange", "mark", "annotation", "snapshot"]


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """An order's state as the exchange reported it (first sight: previous is None)."""

    order: Order
    previous: Order | None

    @property
    def user_id(self) -> str:
        return self.order.user_id

    @property
    def exchange(self) -> str:
        return self.order.exchange.value

    @property
    def status_changed(self) -> bool:
        return self.previous is None or self.previous.status is not self.order.status


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """An open position opened or changed (size, entry, ...; `cause` says by what)."""

    position: Position
    previous: Position | None
    cause: PositionCause = "exchange"

    @property
    def user_id(self) -> str:
        return self.position.user_id

    @property
    def exchange(self) -> str:
        return self.position.exchange.value


@dataclass(frozen=True, slots=True)
class PositionClosed:
    """A position went flat (reported by the exchange, or found gone by two snapshots)."""

    position: Position
    previous: Position | None

    @property
    def user_id(self) -> str:
        return self.position.user_id

    @property
    def exchange(self) -> str:
        return self.position.exchange.value


@dataclass(frozen=True, slots=True)
class FillRecorded:
    user_id: str
    fill: FillReport

    @property
    def exchange(self) -> str:
        return self.fill.exchange


@dataclass(frozen=True, slots=True)
class AccountReconciled:
    """The account's state matches a REST snapshot taken after its (re)start or reconnect: triggers may act."""

    user_id: str
    exchange: str
    at: datetime
    first: bool  # the first reconciliation since the account's actor started


DomainEvent = OrderChanged | PositionChanged | PositionClosed | FillRecorded | AccountReconciled
