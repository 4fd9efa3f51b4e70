"""The shared market registry: markets are loaded once per venue (exchange + base URL) and shared by every
per-user client, so a thousand users cost one ``load_markets`` and one market table in memory.

A :class:`MarketTable` holds the domain view (:class:`MarketInfo`, sizes in base currency, looked up by native
id or ccxt unified symbol) and the ccxt client it was loaded with, whose parsed tables are handed to each new
client by reference (``set_markets_from_exchange``): no network call and no copy per user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..aio import spawn
from ..domain.enums import Exchange
from ..domain.market import MarketInfo
from .base import InvalidOrder

log = logging.getLogger(__name__)

ClientFactory = Callable[..., Any]


class UnknownSymbol(InvalidOrder, KeyError):
    """No such instrument on this venue (also a KeyError, for plain lookups)."""

    def __str__(self) -> str:
        return self.reason


def market_info_from_ccxt(exchange: Exchange | str, market: Mapping[str, Any]) -> MarketInfo | None:
    """Domain MarketInfo from one ccxt market, read by the venue's own rules (sizes in base currency); None for
    a market the service does not trade (spot, inverse, options)."""
    from .factory import gateway_class

    return gateway_class(exchange).market_info(market)


class MarketTable:
    """The markets of one venue, by native id and by ccxt unified symbol (read-only, shared)."""

    def __init__(
        self,
        exchange: Exchange | str,
        base_url: str,
        markets: Iterable[MarketInfo],
        source: Any | None = None,
    ) -> None:
        self.exchange = Exchange(exchange)
        self.base_url = base_url
        by_id = {m.symbol: m for m in markets}
        self.markets: Mapping[str, MarketInfo] = MappingProxyType(by_id)
        self._by_unified = {m.unified: m for m in by_id.values()}
        self._source = source  # the ccxt client whose parsed tables every user client shares

    def get(self, symbol: str) -> MarketInfo | None:
        """By native id (BTC-USDT-SWAP, BTCUSDT) or unified symbol (BTC/USDT:USDT); None if unknown."""
        found = self.markets.get(symbol) or self._by_unified.get(symbol)
        if found is None and symbol.upper() != symbol:
            return self.get(symbol.upper())
        return found

    def __getitem__(self, symbol: str) -> MarketInfo:
        found = self.get(symbol)
        if found is None:
            raise UnknownSymbol(f"unknown symbol {symbol!r} on {self.exchange.value}")
        return found

    def __len__(self) -> int:
        return len(self.markets)

    @property
    def ccxt_markets(self) -> Any:
        """The ccxt market dict every attached client uses (the same object for all of them)."""
        return None if self._source is None else self._source.markets

    def attach(self, client: Any) -> None:
        """Give a ccxt client this table's markets by reference: no network call, no copy."""
        if self._source is None:
            raise RuntimeError("this market table was not loaded through ccxt")
        if client.markets is not self._source.markets:
            client.set_markets_from_exchange(self._source)

    @classmethod
    def from_ccxt(cls, exchange: Exchange | str, base_url: str, client: Any) -> MarketTable:
        infos = []
        for m in (client.markets or {}).values():
            info = market_info_from_ccxt(exchange, m)
            if info is not None:
                infos.append(info)
        return cls(exchange, base_url, infos, source=client)


class MarketRegistry:
    """Loads markets once per (exchange, base URL) and hands the same table to every gateway.

    ``load_count`` counts the network loads (tests assert that a hundred users cost one).
    """

    def __init__(self, client_factory: ClientFactory | None = None) -> None:
        self._factory = client_factory
        self._tables: dict[tuple[Exchange, str], MarketTable] = {}
        self._loading: dict[tuple[Exchange, str], asyncio.Future[MarketTable]] = {}
        self.load_count = 0

    @staticmethod
    def _key(exchange: Exchange | str, base_url: str) -> tuple[Exchange, str]:
        return Exchange(exchange), base_url.rstrip("/")

    def get(self, exchange: Exchange | str, base_url: str = "") -> MarketTable | None:
        """The loaded table, or None before the first :meth:`load`."""
        return self._tables.get(self._key(exchange, base_url))

    def register(self, table: MarketTable) -> None:
        """Install a table built elsewhere (the paper gateway builds one from the simulator's instruments)."""
        self._tables[self._key(table.exchange, table.base_url)] = table

    async def load(
        self, exchange: Exchange | str, base_url: str = "", *, reload: bool = False
    ) -> MarketTable:
        """The venue's table, loading it over the network on first use (concurrent callers share one load)."""
        key = self._key(exchange, base_url)
        if not reload and key in self._tables:
            return self._tables[key]
        pending = self._loading.get(key)
        if pending is None or pending.done():
            pending = spawn(self._load(*key), name=f"markets-{key[0].value}")
            self._loading[key] = pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self._loading.get(key) is pending:
                del self._loading[key]

    async def _load(self, exchange: Exchange, base_url: str) -> MarketTable:
        from .errors import map_ccxt_error

        if self._factory is None:
            from .ccxt_factory import make_client

            self._factory = make_client
        client = self._factory(exchange, base_url)
        try:
            self.load_count += 1
            await client.load_markets()
        except Exception as exc:
            raise map_ccxt_error(exc) from exc
        finally:
            # the parsed tables stay on the object; its HTTP session is not needed any more
            await client.close()
        table = MarketTable.from_ccxt(exchange, base_url, client)
        self._tables[(exchange, base_url)] = table
        log.info(
            "loaded %d %s markets%s", len(table), exchange.value, f" from {base_url}" if base_url else ""
        )
        return table

    async def close(self) -> None:
        """Nothing stays open after a load; kept for symmetry with the gateways."""
        pending = list(self._loading.values())
        self._loading.clear()
        for fut in pending:
            fut.cancel()
