"""The Binance USD-M gateway: the shared ccxt gateway with Binance's parsers, order params, streams and quirks.

Binance specifics: order objects carry no fee (the commissions of an order's trades are added up from the user
stream, once per trade id); an algo order's updates may omit the trailing callback rate (the one it was placed
with is remembered); positions carry no leverage (read per symbol from /fapi/v1/symbolConfig); order and cancel
replies carry the order's state; and the user stream opens with an unsigned listen key, so a wrong secret is
caught by one signed call before streaming.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ...domain.enums import Exchange, OrderStatus, OrderType, PositionSide
from ...domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ...domain.models import Order, Position
from ..base import GatewayError
from ..ccxt_base import CcxtGateway
from ..ccxt_venue import FeedKind
from ..common import dec
from ..push_streams import PushHandler, Watch
from . import client as bn_client
from . import parse, push
from .params import CLIENT_IDS, order_params

log = logging.getLogger(__name__)

_MEMORY = 2000  # orders whose commissions (and trailing rates) are remembered (bounded)


class BinanceGateway(CcxtGateway):
    exchange = Exchange.BINANCE
    client_ids = CLIENT_IDS
    check_credentials_before_streams = True
    fills_need_symbol = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fees: OrderedDict[str, tuple[Decimal, str | None, set[str]]] = OrderedDict()
        self._trailing_rates: OrderedDict[str, Decimal] = OrderedDict()
        self._leverage: dict[str, int] = {}
        self._leverage_loaded = False

    # ---------------------------------------------------------------- client and markets

    @classmethod
    def make_client(
        cls,
        base_url: str,
        api_key: str = "",
        secret: str = "",
        passphrase: str = "",
        *,
        timeout_ms: int = 10_000,
        hedged: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        return bn_client.make_client(
            base_url, api_key, secret, passphrase, timeout_ms=timeout_ms, hedged=hedged, extra=extra
        )

    @classmethod
    def market_info(cls, ccxt_market: Mapping[str, Any]) -> MarketInfo | None:
        return bn_client.market_info(ccxt_market)

    def configure_client(self, client: Any) -> None:
        # listing open orders without a symbol is what reconciliation does: ccxt refuses it unless told
        client.options["fetchOpenOrders"] = {
            **(client.options.get("fetchOpenOrders") or {}),
            "warnWithoutSymbol": False,
        }
        client.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        if self.pushes == "ours":  # ccxt's position cache is not used: no REST snapshot behind each watch
            client.options["watchPositions"] = {
                **(client.options.get("watchPositions") or {}),
                "fetchPositionsSnapshot": False,
            }
        super().configure_client(client)

    # ---------------------------------------------------------------- payloads

    def payload_symbol(self, info: dict[str, Any]) -> str | None:
        value = info.get("s") or info.get("symbol")
        return None if value is None else str(value)

    def parse_order(self, info: dict[str, Any], market: MarketInfo) -> Order:
        if parse.is_algo_payload(info):
            return self._algo(parse.parse_algo(info, market, self.user_id))
        oid = str(info.get("i") or info.get("orderId") or "")
        self.note_commission(info)
        fee = self._fees.get(oid)
        return parse.parse_order(info, market, self.user_id, None if fee is None else (fee[0], fee[1]))

    def _algo(self, order: Order) -> Order:
        """A trailing stop's update without its callback rate gets the one it was placed with."""
        if order.order_type is not OrderType.TRAILING_STOP:
            return order
        oid = order.exchange_order_id or ""
        if order.metadata.get("callback_rate_unknown"):
            known = self._trailing_rates.get(oid)
            if known is not None:
                meta = {k: v for k, v in order.metadata.items() if k != "callback_rate_unknown"}
                order = order.model_copy(update={"callback_rate": known, "metadata": meta})
        elif order.callback_rate is not None:
            self._remember_rate(oid, order.callback_rate)
        return order

    def _remember_rate(self, algo_id: str, rate: Decimal) -> None:
        if algo_id:
            self._trailing_rates[algo_id] = rate
            while len(self._trailing_rates) > _MEMORY:
                self._trailing_rates.popitem(last=False)

    def note_commission(self, raw: dict[str, Any]) -> None:
        """Add a TRADE update's commission to its order's fee (once per trade id)."""
        order_id = str(raw.get("i") or "")
        if raw.get("x") != "TRADE" or not order_id:
            return
        trade_id = str(raw.get("t") or "")
        amount = dec(raw.get("n"))
        if not trade_id or amount is None:
            return
        total, ccy, seen = self._fees.get(order_id, (Decimal(0), None, set()))
        if trade_id in seen:
            return
        seen.add(trade_id)
        self._fees[order_id] = (total + amount, raw.get("N") or ccy, seen)
        self._fees.move_to_end(order_id)
        while len(self._fees) > _MEMORY:
            self._fees.popitem(last=False)

    def parse_fill(self, info: dict[str, Any], market: MarketInfo) -> FillReport | None:
        self.note_commission(info)
        return parse.parse_fill(info, market)

    def parse_rest_fill(self, info: dict[str, Any], market: MarketInfo) -> FillReport | None:
        return parse.parse_trade(info, market)

    def parse_position(
        self,
        info: dict[str, Any],
        market: MarketInfo,
        side: str | None,
        leverage: Decimal | None,
        event_time: datetime | None,
    ) -> Position | None:
        known = int(leverage) if leverage else self._leverage.get(market.symbol)
        return parse.parse_position(info, market, self.user_id, side, known, event_time)

    def is_net_position(self, info: dict[str, Any]) -> bool:
        return (info.get("ps") or info.get("positionSide")) == "BOTH"

    def parse_ticker(self, info: dict[str, Any], market: MarketInfo) -> PriceTick:
        return parse.parse_ticker(info, market)

    def parse_mark_price(self, info: dict[str, Any], market: MarketInfo) -> PriceTick:
        return parse.parse_mark_price(info, market)

    def parse_balance(self, info: Any) -> dict[str, Decimal]:
        return parse.parse_balance(info)

    def order_from_reply(self, info: dict[str, Any], market: MarketInfo) -> Order | None:
        if not (info.get("orderId") or info.get("algoId")):
            return None
        order = self.order_of(info, market.symbol)
        return order if order is not None and order.status is not OrderStatus.PENDING else None

    # ---------------------------------------------------------------- orders and account

    def order_params(
        self,
        req: OrderRequest,
        market: MarketInfo,
        quantity: Decimal,
        client_order_id: str,
        side: PositionSide | None,
    ) -> tuple[str, str, str | None, dict[str, Any]]:
        return order_params(req, quantity, client_order_id, side)

    def on_order_accepted(self, exchange_order_id: str, request: OrderRequest) -> None:
        if request.order_type is OrderType.TRAILING_STOP and request.callback_rate is not None:
            self._remember_rate(exchange_order_id, request.callback_rate)

    async def set_leverage(
        self, symbol: str, leverage: int, position_side: PositionSide | None = None
    ) -> None:
        await super().set_leverage(symbol, leverage, position_side)
        self._leverage[self.market(symbol).symbol] = leverage

    async def prepare_positions(self, unified: list[str] | None, *, snapshot: bool) -> None:
        """Leverage per symbol from /fapi/v1/symbolConfig (position rows and ACCOUNT_UPDATE lack it): before
        every snapshot, and once before streaming."""
        if self._leverage_loaded and not snapshot:
            return
        try:
            raw = await self._rest(self.client.fetch_leverages, unified)
        except GatewayError as exc:
            log.info("could not read leverages on %s: %s", self.exchange.value, exc.reason)
            return
        for entry in (raw or {}).values():
            info = entry.get("info") if isinstance(entry, dict) else None
            if isinstance(info, dict):
                lev = dec(info.get("leverage"))
                if lev and info.get("symbol"):
                    self._leverage[str(info["symbol"])] = int(lev)
        self._leverage_loaded = True

    def positions_prepared(self) -> bool:
        return self._leverage_loaded

    # ---------------------------------------------------------------- streams

    def push_routes(self) -> dict[str, PushHandler]:
        return push.routes(self)

    def push_subscriptions(self, kind: FeedKind, market: MarketInfo | None) -> list[tuple[str, Watch]]:
        return push.subscriptions(self, kind, market)
