"""The ccxt.pro client for Binance USD-M, with the push tap, and Binance markets read from ccxt.

:class:`BinanceUsdmClient` is ccxt.pro's ``binanceusdm`` plus one override: an event whose type ``e`` has a
handler in ``push_handlers`` (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE, 24hrMiniTicker,
markPriceUpdate) goes to that handler instead of ccxt's parser and caches. Subscribe replies, errors and
every other event still go to ccxt, which keeps the sockets, the listen key (and its keepalive) and the
reconnects. With no handler it is plain ccxt.pro.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro as ccxtpro

from ...domain.market import MarketInfo
from ..ccxt_factory import client_config, finish_client, ws_url
from ..common import clean, dec
from ..push_streams import PushHandler, deliver

_URL_KEYS = (
    ("fapiPublic", "/fapi/v1"),
    ("fapiPublicV2", "/fapi/v2"),
    ("fapiPublicV3", "/fapi/v3"),
    ("fapiPrivate", "/fapi/v1"),
    ("fapiPrivateV2", "/fapi/v2"),
    ("fapiPrivateV3", "/fapi/v3"),
    ("fapiData", "/futures/data"),
)


class BinanceUsdmClient(ccxtpro.binanceusdm):  # type: ignore[misc]  # ccxt is untyped
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        self.push_handlers: dict[str, PushHandler] = {}

    def handle_message(self, client: Any, message: Any) -> Any:
        if self.push_handlers and type(message) is dict:
            event = message
            if "stream" in message and type(message.get("data")) is dict:  # a combined-stream wrapper
                event = message["data"]
            handler = self.push_handlers.get(event.get("e"))  # type: ignore[arg-type]
            if handler is not None:
                deliver(handler, event)
                return None
        return super().handle_message(client, message)


def _urls(base: str, template: dict[str, Any]) -> dict[str, Any]:
    urls = dict(template)
    for key, path in _URL_KEYS:
        urls[key] = base + path
    ws = dict(urls.get("ws", {}))
    ws["linear"] = ws_url(base) + "/ws"  # ccxt rewrites it to /market/ws/<n>, /private/ws?listenKey=..
    urls["ws"] = ws
    return urls


@functools.cache
def _linear_exceptions() -> dict[str, Any]:
    """Binance's common error table overlaid with its USD-M one. ccxt picks the USD-M table by URL prefix,
    which a loopback URL never matches; replacing ``exact`` by the USD-M table alone loses the common codes
    (-1022 bad signature, -2013 no such order, -2015 bad key), so both are merged."""
    template = ccxt.binanceusdm()
    linear = template.exceptions.get("linear") or {}
    return {
        "exact": {**template.exceptions.get("exact", {}), **linear.get("exact", {})},
        "broad": {**template.exceptions.get("broad", {}), **linear.get("broad", {})},
    }


def make_client(
    base_url: str,
    api_key: str = "",
    secret: str = "",
    passphrase: str = "",
    *,
    timeout_ms: int = 10_000,
    hedged: bool = False,
    extra: dict[str, Any] | None = None,
) -> BinanceUsdmClient:
    del passphrase  # Binance keys have none
    config = client_config(api_key, secret, base_url=base_url, timeout_ms=timeout_ms)
    config["options"] = {"fetchCurrencies": False, "defaultType": "future"}
    client = BinanceUsdmClient(config)
    if base_url:
        client.urls["api"] = _urls(base_url, client.urls["api"])
        client.urls["test"] = _urls(base_url, client.urls.get("test", {}))
        client.exceptions = {**client.exceptions, **_linear_exceptions()}
    finish_client(client, hedged=hedged, extra=extra)
    return client


def _positive(value: Any) -> Decimal | None:
    d = dec(value)
    return clean(d) if d is not None and d > 0 else None


def market_info(market: Mapping[str, Any]) -> MarketInfo | None:
    """MarketInfo from one ccxt Binance USD-M market (filters read from the raw ``info``: exact strings).
    None for a market the service does not trade (spot, inverse, options)."""
    if not market.get("contract") or market.get("inverse") or market.get("option"):
        return None
    info: Mapping[str, Any] = market.get("info") or {}
    precision: Mapping[str, Any] = market.get("precision") or {}
    limits: Mapping[str, Any] = market.get("limits") or {}
    filters = {f.get("filterType"): f for f in info.get("filters") or [] if isinstance(f, Mapping)}
    price_f = filters.get("PRICE_FILTER") or {}
    lot_f = filters.get("LOT_SIZE") or {}
    notional_f = filters.get("MIN_NOTIONAL") or {}
    tick = _positive(price_f.get("tickSize")) or _positive(precision.get("price"))
    lot = _positive(lot_f.get("stepSize")) or _positive(precision.get("amount"))
    if tick is None or lot is None:
        return None
    lever = dec((limits.get("leverage") or {}).get("max"))
    return MarketInfo(
        symbol=str(info.get("symbol") or market.get("id")),
        unified=str(market["symbol"]),
        base=str(market.get("base")),
        quote=str(market.get("quote")),
        settle=str(market.get("settle") or market.get("quote")),
        tick_size=tick,
        lot_size=lot,
        min_size=_positive(lot_f.get("minQty")) or lot,
        contract_value=Decimal(1),
        min_notional=_positive(notional_f.get("notional"))
        or _positive(notional_f.get("minNotional"))
        or Decimal(0),
        max_leverage=int(lever) if lever else 125,
    )
