"""The OKX swap gateway: the shared ccxt gateway with OKX's parsers, order params, streams and quirks.

OKX specifics: sizes are contracts on the wire (``ctVal``); a reply that succeeds overall can still refuse the
one order sent (``sCode``); pending algo orders are listed one ``ordType`` at a time; algo orders stream on
``orders-algo`` (/business); a trailing stop's own channel (``algo-advance``) is not subscribed, so its firing
is seen only through the child order that names it, and the algo is then read once over REST.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from ...domain.enums import Exchange, PositionSide
from ...domain.market import FillReport, MarketInfo, OrderRequest, PriceTick
from ...domain.models import Order, Position
from ..base import GatewayError
from ..ccxt_base import CcxtGateway
from ..ccxt_venue import FeedKind
from ..push_streams import PushHandler, Watch
from . import client as okx_client
from . import parse, push
from .params import CLIENT_IDS, OPEN_ALGO_TYPES, order_params

log = logging.getLogger(__name__)

_ALGO_MEMORY = 2000  # algos whose final state this gateway has seen (bounded)


class OkxGateway(CcxtGateway):
    exchange = Exchange.OKX
    client_ids = CLIENT_IDS
    open_order_queries: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {},
        *({"ordType": t} for t in OPEN_ALGO_TYPES),
    )
    leverage_params: ClassVar[Mapping[str, Any]] = {"marginMode": "cross"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._algo_done: OrderedDict[str, None] = OrderedDict()

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
        return okx_client.make_client(
            base_url, api_key, secret, passphrase, timeout_ms=timeout_ms, hedged=hedged, extra=extra
        )

    @classmethod
    def market_info(cls, ccxt_market: Mapping[str, Any]) -> MarketInfo | None:
        return okx_client.market_info(ccxt_market)

    # ---------------------------------------------------------------- payloads

    def payload_symbol(self, info: dict[str, Any]) -> str | None:
        value = info.get("instId")
        return None if value is None else str(value)

    def parse_order(self, info: dict[str, Any], market: MarketInfo) -> Order:
        return parse.parse_order(info, market, self.user_id)

    def parse_fill(self, info: dict[str, Any], market: MarketInfo) -> FillReport | None:
        return parse.parse_fill(info, market)

    def parse_position(
        self,
        info: dict[str, Any],
        market: MarketInfo,
        side: str | None,
        leverage: Decimal | None,
        event_time: datetime | None,
    ) -> Position | None:
        return parse.parse_position(info, market, self.user_id, side)  # lever and uTime are in the payload

    def is_net_position(self, info: dict[str, Any]) -> bool:
        return info.get("posSide") == "net"

    def parse_ticker(self, info: dict[str, Any], market: MarketInfo) -> PriceTick:
        return parse.parse_ticker(info, market)

    def parse_mark_price(self, info: dict[str, Any], market: MarketInfo) -> PriceTick:
        return parse.parse_mark_price(info, market)

    def parse_balance(self, info: Any) -> dict[str, Decimal]:
        return parse.parse_balance(info)

    def refused_item(self, info: dict[str, Any]) -> tuple[str, str] | None:
        code = info.get("sCode")
        if code in (None, "", "0"):
            return None
        return str(code), str(info.get("sMsg") or "")

    # ---------------------------------------------------------------- orders

    def order_params(
        self,
        req: OrderRequest,
        market: MarketInfo,
        quantity: Decimal,
        client_order_id: str,
        side: PositionSide | None,
    ) -> tuple[str, str, str | None, dict[str, Any]]:
        return order_params(req, market.to_contracts(quantity), client_order_id, side)

    # ---------------------------------------------------------------- streams

    def push_routes(self) -> dict[str, PushHandler]:
        return push.routes(self)

    def push_subscriptions(self, kind: FeedKind, market: MarketInfo | None) -> list[tuple[str, Watch]]:
        return push.subscriptions(self, kind, market)

    def ccxt_sources(self, kind: FeedKind, market: MarketInfo | None) -> list[Watch]:
        if kind == "orders":  # algo orders come on their own channel
            client = self.client
            return [
                client.watch_orders,
                functools.partial(client.watch_orders, None, None, None, {"trigger": True}),
            ]
        return super().ccxt_sources(kind, market)

    async def after_orders(self, orders: list[Order]) -> list[Order]:
        """The shared step first (a fired close-all algo's size), then: OKX pushes trailing stops
        (move_order_stop) on ``algo-advance``, a channel ccxt does not subscribe: their triggering is only
        visible as the child order (which names its algoId). For a child of an algo whose final state this
        stream has not shown, read the algo once over REST."""
        orders = await super().after_orders(orders)
        if not self._algos_to_read(orders):
            return orders
        out: list[Order] = list(orders)
        for o in orders:
            algo_id = o.metadata.get("algo_id")
            if not algo_id or algo_id in self._algo_done:
                continue
            self._remember(algo_id)
            try:
                parent = await self.fetch_order(o.symbol, order_id=str(algo_id))
            except GatewayError as exc:  # reconciliation will catch up
                log.info("could not read algo %s of order %s: %s", algo_id, o.exchange_order_id, exc.reason)
                continue
            if parent is not None and parent.metadata.get("algo"):
                out.append(parent)
        return out

    def orders_need_reads(self, orders: list[Order]) -> bool:
        sized = super().orders_need_reads(orders)
        return self._algos_to_read(orders) or sized

    def _algos_to_read(self, orders: list[Order]) -> bool:
        """Notes the algos the batch shows final (their children need no read), then whether a child names an
        algo not noted yet."""
        for o in orders:
            if o.metadata.get("algo") and not o.status.is_active and o.exchange_order_id:
                self._remember(o.exchange_order_id)
        return any((a := o.metadata.get("algo_id")) and a not in self._algo_done for o in orders)

    def _remember(self, algo_id: str) -> None:
        self._algo_done[algo_id] = None
        self._algo_done.move_to_end(algo_id)
        while len(self._algo_done) > _ALGO_MEMORY:
            self._algo_done.popitem(last=False)
