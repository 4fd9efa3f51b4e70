"""Engine objects -> Binance USD-M REST JSON (orders, algo orders, positions, account, balances, trades).

Field names and shapes follow Binance's /fapi replies as ccxt 4.5.90 parses them (parse_order,
parse_position_risk, parse_balance_custom, parse_trade). Numbers are strings, ids are integers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..engine import (
    AlgoOrder,
    AlgoState,
    AlgoType,
    Balance,
    CancelSource,
    Fill,
    Instrument,
    Liquidity,
    MarginMode,
    Order,
    OrderState,
    Position,
)
from .numbers import POS_SIDE, SIDE, WORKING_TYPE, fmt, fmt_opt, order_status, order_type

__all__ = [
    "account_v2",
    "account_v3",
    "algo_order",
    "algo_order_type",
    "algo_prices",
    "algo_status",
    "balance_rows",
    "client_id",
    "cum_quote",
    "order",
    "position_risk",
    "trade",
]

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_Q8 = Decimal("1e-8")


def cum_quote(o: Order) -> Decimal:
    if o.avg_px is None or o.filled_sz == 0:
        return _ZERO
    return (o.avg_px * o.filled_sz).quantize(_Q8)


def client_id(o: Order) -> str:
    if o.client_order_id is not None:
        return o.client_order_id
    if o.algo_client_id is not None:
        return o.algo_client_id
    return f"sim_{o.order_id}"


def order(o: Order, *, with_time: bool = True) -> dict[str, Any]:
    """GET/POST/DELETE /fapi/v1/order, openOrders, allOrders element."""
    typ = order_type(o.ord_type)
    net = o.pos_side.value == "net"
    d: dict[str, Any] = {
        "orderId": int(o.order_id),
        "symbol": o.inst_id,
        "status": order_status(o.state, o.cancel_source is CancelSource.USER),
        "clientOrderId": client_id(o),
        "price": fmt_opt(o.px),
        "avgPrice": fmt_opt(o.avg_px),
        "origQty": fmt(o.sz),
        "executedQty": fmt(o.filled_sz),
        "cumQty": fmt(o.filled_sz),
        "cumQuote": fmt(cum_quote(o)),
        "timeInForce": o.time_in_force,
        "type": typ,
        "reduceOnly": o.reduce_only and net,
        "closePosition": False,
        "side": SIDE[o.side],
        "positionSide": POS_SIDE[o.pos_side],
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": typ,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": o.updated_ms,
    }
    if with_time:
        d["time"] = o.created_ms
    return d


def algo_order_type(a: AlgoOrder) -> str:
    """STOP_MARKET / STOP / TAKE_PROFIT_MARKET / TAKE_PROFIT / TRAILING_STOP_MARKET."""
    if a.algo_type is AlgoType.MOVE_ORDER_STOP:
        return "TRAILING_STOP_MARKET"
    if a.algo_type is AlgoType.TRIGGER:
        return "STOP_MARKET" if a.order_px is None else "STOP"
    take_profit = a.sl_trigger_px is None or (a.triggered_leg is not None and a.triggered_leg.value == "tp")
    if take_profit:
        return "TAKE_PROFIT_MARKET" if a.tp_ord_px is None else "TAKE_PROFIT"
    return "STOP_MARKET" if a.sl_ord_px is None else "STOP"


def algo_prices(a: AlgoOrder) -> tuple[Decimal | None, Decimal | None]:
    """(trigger price, limit price) of the algo as Binance shows them."""
    if a.algo_type is AlgoType.MOVE_ORDER_STOP:
        stop = a.stop_px
        return (stop if stop is not None else a.active_px), None
    if a.algo_type is AlgoType.TRIGGER:
        return a.trigger_px, a.order_px
    if algo_order_type(a).startswith("TAKE_PROFIT"):
        return a.tp_trigger_px, a.tp_ord_px
    return a.sl_trigger_px, a.sl_ord_px


def algo_status(a: AlgoOrder, child: Order | None) -> str:
    """NEW, CANCELED, TRIGGERED (child order working), FINISHED (child order done), REJECTED."""
    if a.state is AlgoState.LIVE:
        return "NEW"
    if a.state is AlgoState.CANCELED:
        return "CANCELED"
    if a.state is AlgoState.ORDER_FAILED:
        return "REJECTED"
    if child is not None and child.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED):
        return "TRIGGERED"
    return "FINISHED"


def algo_order(a: AlgoOrder, child: Order | None = None) -> dict[str, Any]:
    """POST/GET /fapi/v1/algoOrder, openAlgoOrders, allAlgoOrders element."""
    trigger, price = algo_prices(a)
    net = a.pos_side.value == "net"
    tif = "GTC"
    d: dict[str, Any] = {
        "algoId": int(a.algo_id),
        "clientAlgoId": a.client_algo_id or f"sim_algo_{a.algo_id}",
        "algoType": "CONDITIONAL",
        "orderType": algo_order_type(a),
        "symbol": a.inst_id,
        "side": SIDE[a.side],
        "positionSide": POS_SIDE[a.pos_side],
        "timeInForce": tif,
        "quantity": fmt_opt(a.sz),
        "algoStatus": algo_status(a, child),
        "triggerPrice": fmt_opt(trigger),
        "price": fmt_opt(price),
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": WORKING_TYPE[a.trigger_px_type],
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": False,
        "reduceOnly": a.reduce_only and net and not a.close_position,
        "createTime": a.created_ms,
        "updateTime": a.updated_ms,
        "triggerTime": a.triggered_ms or 0,
        "goodTillDate": 0,
    }
    if a.algo_type is AlgoType.MOVE_ORDER_STOP:
        d["activatePrice"] = fmt_opt(a.active_px)
        d["callbackRate"] = fmt(a.callback_ratio * _HUNDRED) if a.callback_ratio is not None else "0"
    if a.order_id is not None:
        d["actualOrderId"] = a.order_id
        if child is not None:
            d["actualPrice"] = fmt_opt(child.avg_px)
    return d


def position_risk(p: Position, inst: Instrument, *, v2: bool) -> dict[str, Any]:
    """GET /fapi/v3/positionRisk element (``v2``: the v2 shape with leverage and marginType)."""
    signed = p.signed_qty
    notional = p.notional if signed >= 0 else -p.notional
    isolated = p.margin_mode is MarginMode.ISOLATED and signed != 0
    d: dict[str, Any] = {
        "symbol": p.inst_id,
        "positionSide": POS_SIDE[p.pos_side],
        "positionAmt": fmt(signed),
        "entryPrice": fmt(p.avg_px),
        "breakEvenPrice": fmt(p.avg_px),
        "markPrice": fmt(p.mark_px),
        "unRealizedProfit": fmt(p.upl),
        "liquidationPrice": fmt_opt(p.liq_px),
        "isolatedMargin": fmt(p.imr) if isolated else "0",
        "notional": fmt(notional),
        "marginAsset": inst.settle,
        "isolatedWallet": fmt(p.imr) if isolated else "0",
        "updateTime": p.updated_ms,
    }
    if v2:
        d["leverage"] = str(p.leverage)
        d["maxNotionalValue"] = "1000000000"
        d["marginType"] = "isolated" if p.margin_mode is MarginMode.ISOLATED else "cross"
        d["isAutoAddMargin"] = "false"
        d["isolated"] = p.margin_mode is MarginMode.ISOLATED
        d["adlQuantile"] = 0
    else:
        d["initialMargin"] = fmt(p.imr)
        d["maintMargin"] = fmt(p.mmr)
        d["positionInitialMargin"] = fmt(p.imr)
        d["openOrderInitialMargin"] = "0"
        d["adl"] = 0
        d["bidNotional"] = "0"
        d["askNotional"] = "0"
    return d


def _asset_row(b: Balance, positions: list[Position], ts: int) -> dict[str, Any]:
    pos_im = sum((p.imr for p in positions if p.settle_ccy == b.ccy), _ZERO)
    maint = sum((p.mmr for p in positions if p.settle_ccy == b.ccy), _ZERO)
    order_im = b.frozen - pos_im if b.frozen > pos_im else _ZERO
    return {
        "asset": b.ccy,
        "walletBalance": fmt(b.balance),
        "unrealizedProfit": fmt(b.upl),
        "marginBalance": fmt(b.equity),
        "maintMargin": fmt(maint),
        "initialMargin": fmt(b.frozen),
        "positionInitialMargin": fmt(pos_im),
        "openOrderInitialMargin": fmt(order_im),
        "crossWalletBalance": fmt(b.balance),
        "crossUnPnl": fmt(b.upl),
        "availableBalance": fmt(b.available),
        "maxWithdrawAmount": fmt(min(b.available, b.balance)),
        "updateTime": ts,
    }


def _totals(balances: list[Balance], positions: list[Position]) -> dict[str, Any]:
    def total(attr: str) -> Decimal:
        return sum((getattr(b, attr) for b in balances), _ZERO)

    pos_im = sum((p.imr for p in positions), _ZERO)
    frozen = total("frozen")
    return {
        "totalInitialMargin": fmt(frozen),
        "totalMaintMargin": fmt(sum((p.mmr for p in positions), _ZERO)),
        "totalWalletBalance": fmt(total("balance")),
        "totalUnrealizedProfit": fmt(total("upl")),
        "totalMarginBalance": fmt(total("equity")),
        "totalPositionInitialMargin": fmt(pos_im),
        "totalOpenOrderInitialMargin": fmt(frozen - pos_im if frozen > pos_im else _ZERO),
        "totalCrossWalletBalance": fmt(total("balance")),
        "totalCrossUnPnl": fmt(total("upl")),
        "availableBalance": fmt(total("available")),
        "maxWithdrawAmount": fmt(total("available")),
    }


def _account_position(p: Position) -> dict[str, Any]:
    signed = p.signed_qty
    return {
        "symbol": p.inst_id,
        "positionSide": POS_SIDE[p.pos_side],
        "positionAmt": fmt(signed),
        "unrealizedProfit": fmt(p.upl),
        "isolatedMargin": fmt(p.imr) if p.margin_mode is MarginMode.ISOLATED else "0",
        "notional": fmt(p.notional if signed >= 0 else -p.notional),
        "isolatedWallet": "0",
        "initialMargin": fmt(p.imr),
        "maintMargin": fmt(p.mmr),
        "updateTime": p.updated_ms,
    }


def account_v3(balances: list[Balance], positions: list[Position], ts: int) -> dict[str, Any]:
    """GET /fapi/v3/account (only open positions are listed)."""
    d = _totals(balances, positions)
    d["assets"] = [_asset_row(b, positions, ts) for b in balances]
    d["positions"] = [_account_position(p) for p in positions if p.qty != 0]
    return d


def account_v2(
    balances: list[Balance], positions: list[Position], ts: int, dual_side: bool
) -> dict[str, Any]:
    """GET /fapi/v2/account: v3 plus account flags and per-position leverage/entry price."""
    d: dict[str, Any] = {
        "feeTier": 0,
        "feeBurn": False,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
        "dualSidePosition": dual_side,
    }
    d.update(_totals(balances, positions))
    d["assets"] = [{**_asset_row(b, positions, ts), "marginAvailable": True} for b in balances]
    rows = []
    for p in positions:
        if p.qty == 0:
            continue
        row = _account_position(p)
        row.update(
            leverage=str(p.leverage),
            entryPrice=fmt(p.avg_px),
            breakEvenPrice=fmt(p.avg_px),
            maxNotional="1000000000",
            isolated=p.margin_mode is MarginMode.ISOLATED,
            positionInitialMargin=fmt(p.imr),
            openOrderInitialMargin="0",
            bidNotional="0",
            askNotional="0",
        )
        rows.append(row)
    d["positions"] = rows
    return d


def balance_rows(balances: list[Balance], ts: int) -> list[dict[str, Any]]:
    """GET /fapi/v2/balance and /fapi/v3/balance."""
    return [
        {
            "accountAlias": "SgsR",
            "asset": b.ccy,
            "balance": fmt(b.balance),
            "crossWalletBalance": fmt(b.balance),
            "crossUnPnl": fmt(b.upl),
            "availableBalance": fmt(b.available),
            "maxWithdrawAmount": fmt(min(b.available, b.balance)),
            "marginAvailable": True,
            "updateTime": ts,
        }
        for b in balances
    ]


def trade(f: Fill) -> dict[str, Any]:
    """GET /fapi/v1/userTrades element (commission positive = paid)."""
    return {
        "buyer": f.side.value == "buy",
        "commission": fmt(f.fee),
        "commissionAsset": f.fee_ccy,
        "id": int(f.trade_id),
        "maker": f.liquidity is Liquidity.MAKER,
        "orderId": int(f.order_id),
        "price": fmt(f.px),
        "qty": fmt(f.sz),
        "quoteQty": fmt(f.px * f.sz),
        "realizedPnl": fmt(f.realized_pnl),
        "side": SIDE[f.side],
        "positionSide": POS_SIDE[f.pos_side],
        "symbol": f.inst_id,
        "time": f.ts,
        "marginAsset": f.fee_ccy,
    }
