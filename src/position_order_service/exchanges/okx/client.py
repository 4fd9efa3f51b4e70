"""The ccxt.pro client for OKX swaps, with the push tap, and OKX markets read from ccxt.

:class:`OkxClient` is ccxt.pro's ``okx`` plus one override: a data push ``{"arg": {"channel": ..}, "data": [..]}``
whose channel has a handler in ``push_handlers`` goes to that handler instead of ccxt's parser and caches.
Login, subscribe replies, errors and ``pong`` still go to ccxt, so it keeps the sockets, the login, the
keepalive and, after a drop, the re-login and re-subscribe. With no handler it is plain ccxt.pro.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxtpro

from ...domain.market import MarketInfo
from ..ccxt_factory import client_config, finish_client, ws_url
from ..common import ONE, clean, dec
from ..push_streams import PushHandler, deliver


class OkxClient(ccxtpro.okx):  # type: ignore[misc]  # ccxt is untyped
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        self.push_handlers: dict[str, PushHandler] = {}

    def handle_message(self, client: Any, message: Any) -> Any:
        if self.push_handlers and type(message) is dict and "data" in message and "event" not in message:
            arg = message.get("arg")
            handler = self.push_handlers.get(str(arg.get("channel"))) if type(arg) is dict else None
            if handler is not None:
                deliver(handler, message)
                return None
        return super().handle_message(client, message)


def make_client(
    base_url: str,
    api_key: str = "",
    secret: str = "",
    passphrase: str = "",
    *,
    timeout_ms: int = 10_000,
    hedged: bool = False,
    extra: dict[str, Any] | None = None,
) -> OkxClient:
    config = client_config(api_key, secret, base_url=base_url, timeout_ms=timeout_ms)
    config["password"] = passphrase
    config["options"] = {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}
    client = OkxClient(config)
    client.has["fetchCurrencies"] = False  # else load_markets calls a private endpoint when keys are set
    if base_url:
        urls = {"rest": base_url, "ws": ws_url(base_url) + "/ws/v5"}
        client.urls["api"] = dict(urls)
        client.urls["test"] = dict(urls)  # sandbox mode cannot reach anywhere else either
    finish_client(client, hedged=hedged, extra=extra)
    return client


def _positive(value: Any) -> Decimal | None:
    d = dec(value)
    return clean(d) if d is not None and d > 0 else None


def market_info(market: Mapping[str, Any]) -> MarketInfo | None:
    """MarketInfo from one ccxt OKX market (read from the raw ``info``: exact strings). Sizes are contracts
    on the wire: lot and minimum sizes are converted to base currency here (``lotSz x ctVal``), so the rest of
    the service never sees contracts. None for a market the service does not trade (spot, inverse, options)."""
    if not market.get("contract") or market.get("inverse") or market.get("option"):
        return None
    info: Mapping[str, Any] = market.get("info") or {}
    precision: Mapping[str, Any] = market.get("precision") or {}
    limits: Mapping[str, Any] = market.get("limits") or {}
    ct = _positive(info.get("ctVal")) or _positive(market.get("contractSize")) or ONE
    tick = _positive(info.get("tickSz")) or _positive(precision.get("price"))
    lot_c = _positive(info.get("lotSz")) or _positive(precision.get("amount")) or ONE
    min_c = _positive(info.get("minSz")) or lot_c
    lever = dec(info.get("lever")) or dec((limits.get("leverage") or {}).get("max"))
    if tick is None:
        return None
    return MarketInfo(
        symbol=str(info.get("instId") or market.get("id")),
        unified=str(market["symbol"]),
        base=str(market.get("base")),
        quote=str(market.get("quote")),
        settle=str(market.get("settle") or market.get("quote")),
        tick_size=tick,
        lot_size=clean(lot_c * ct),
        min_size=clean(min_c * ct),
        contract_value=ct,
        min_notional=Decimal(0),
        max_leverage=int(lever) if lever else 125,
    )
