"""Active User Manager: who is tracked (SPEC section 10).

A user is tracked on an exchange when they are in `active_users:position_order_service` or their
`user:{id}:bot:status` is "enabled", and the exchange is in `user:{id}:bot:exchanges`; the activate/deactivate
API writes the same keys. A deactivation sticks: the user is remembered as deactivated so a later scan of
bot statuses does not bring them back until they are activated again. Rescans run as supervised periodic jobs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..domain.enums import Exchange
from ..store import Store
from ..supervisor import Supervisor
from .account.registry import AccountRegistry

if TYPE_CHECKING:
    from .leases import LeaseManager

log = logging.getLogger(__name__)

SUPPORTED_EXCHANGES = (Exchange.OKX.value, Exchange.BINANCE.value)


class ActiveUserManager:
    def __init__(
        self,
        store: Store,
        accounts: AccountRegistry,
        supervisor: Supervisor,
        *,
        user_rescan_s: float = 300.0,
        symbol_rescan_s: float = 60.0,
        default_exchanges: tuple[str, ...] = ("okx",),
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.supervisor = supervisor.scope("users")
        self.user_rescan_s = user_rescan_s
        self.symbol_rescan_s = symbol_rescan_s
        self.default_exchanges = default_exchanges
        self._lock = asyncio.Lock()
        self.leases: LeaseManager | None = None  # scale-out: the leases decide what this worker tracks
        self.tracking = True  # False in an api replica (ROLE=api): it records activations, the workers track

    async def start(self) -> None:
        await self.rescan_users()
        self.supervisor.every("user-rescan", self.user_rescan_s, self.rescan_users)
        self.supervisor.every("symbol-rescan", self.symbol_rescan_s, self.rescan_symbols)

    async def stop(self) -> None:
        await self.supervisor.stop()

    # -- the desired set -------------------------------------------------------------------------------
    async def active_user_ids(self) -> set[str]:
        return await self.store.users.active_user_ids()

    async def exchanges_of(self, user_id: str) -> set[str]:
        names = await self.store.users.exchanges_of(user_id) or set(self.default_exchanges)
        return {n for n in names if n in SUPPORTED_EXCHANGES}

    async def desired(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for user_id in await self.active_user_ids():
            out |= {(user_id, ex) for ex in await self.exchanges_of(user_id)}
        return out

    async def rescan_users(self) -> None:
        if not self.tracking:
            return
        if self.leases is not None:
            await self.leases.set_wanted(await self.desired())
            return
        async with self._lock:
            want = await self.desired()
            have = self.accounts.tracked_accounts() | set(self.accounts.failures)
            for user_id, exchange in await self.start_order(want - have):
                await self.accounts.start(user_id, exchange)
            for user_id, exchange in sorted(have - want):
                await self.accounts.stop(user_id, exchange)
            # retry users that failed (e.g. credentials added since)
            for user_id, exchange in sorted(set(self.accounts.failures) & want):
                self.accounts.failures.pop((user_id, exchange), None)
                await self.accounts.start(user_id, exchange)

    async def start_order(self, accounts: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Accounts with money at stake first: open positions or live trailing stops or rules. Their sockets
        then take the first places at the exchange's connection pacer (a cold start of many accounts on one
        IP takes minutes at OKX's 3 attempts per second), the others follow; each group sorted by id."""
        if not accounts:
            return []
        ordered = sorted(accounts)
        at_stake = {a for a, n in (await self.store.positions.open_counts(ordered)).items() if n > 0}
        at_stake |= {(s.user_id, s.exchange.value) for s in await self.store.trailing_stops.list_live()}
        at_stake |= {(r.user_id, r.exchange.value) for r in await self.store.rules.list_live()}
        return sorted(ordered, key=lambda a: a not in at_stake)

    async def rescan_symbols(self) -> None:
        for user_id, exchange in sorted(self.accounts.tracked_accounts()):
            self.accounts.set_watchlist(
                user_id, exchange, await self.store.users.watchlist(user_id, exchange)
            )

    # -- the API ---------------------------------------------------------------------------------------
    async def activate(self, user_id: str, exchanges: list[str]) -> None:
        await self.store.users.activate(user_id, exchanges)
        await self.rescan_users()

    async def deactivate(self, user_id: str) -> bool:
        removed = await self.store.users.deactivate(user_id)
        await self.rescan_users()
        return removed

    async def list_active(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for user_id in sorted(await self.active_user_ids()):
            exchanges = sorted(await self.exchanges_of(user_id))
            out.append(
                {
                    "user_id": user_id,
                    "exchanges": exchanges,
                    "tracked": sorted(ex for ex in exchanges if self.accounts.get(user_id, ex)),
                }
            )
        return out
