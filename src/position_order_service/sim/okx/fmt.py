"""Engine objects -> OKX v5 dicts, exactly as OKX sends them: numbers as plain decimal strings, timestamps as
ms strings, absent values as "" and booleans as "true"/"false" where OKX does so.

Sign conventions (OKX): ``fee``/``fillFee`` are negative when the trader pays (the engine keeps fees
positive); ``pos`` is signed in net mode; ``realizedPnl`` = pnl + fee.
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
    Order,
    Position,
    Ticker,
    TpSlLeg,
)
from .codes import engine_code
from .market import InstStats

__all__ = [
    "algo_dict",
    "balance_dict",
    "book_dict",
    "dstr",
    "fill_dict",
    "instrument_dict",
    "mark_price_dict",
    "order_dict",
    "position_dict",
    "ticker_dict",
]

_ZERO = Decimal(0)
BOOK_DEPTH = "1000"  # the simulator has no depth: every quote shows this size (contracts)

_CANCEL_SOURCE = {
    CancelSource.USER: "1",
    CancelSource.FOK: "13",
    CancelSource.IOC: "14",
    CancelSource.REDUCE_ONLY: "17",
    CancelSource.POSITION_MODE: "0",
}
_CANCEL_REASON = {
    CancelSource.USER: "Order canceled by user",
    CancelSource.FOK: "FOK order canceled as it could not be filled completely",
    CancelSource.IOC: "IOC order partially canceled as it could not be filled completely",
    CancelSource.REDUCE_ONLY: "Reduce-only order canceled as the position was closed",
    CancelSource.POSITION_MODE: "Order canceled by system",
}


def dstr(d: Decimal | None) -> str:
    """A Decimal as OKX writes it: plain notation, no trailing zeros ("" for None)."""
    if d is None:
        return ""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def neg(d: Decimal) -> str:
    return dstr(-d) if d else "0"


def _family(inst: Instrument) -> str:
    return f"{inst.base}-{inst.quote}"


def instrument_dict(inst: Instrument, list_time: int, code: int) -> dict[str, Any]:
    """``code``: OKX's numeric instIdCode (ccxt's WebSocket order ops send it instead of instId)."""
    fam = _family(inst)
    max_lmt = dstr(inst.max_limit_size)
    max_mkt = dstr(inst.max_market_size)
    return {
        "alias": "",
        "baseCcy": "",
        "category": "1",
        "ctMult": "1",
        "ctType": "linear",
        "ctVal": dstr(inst.contract_value),
        "ctValCcy": inst.base,
        "expTime": "",
        "instFamily": fam,
        "instId": inst.inst_id,
        "instIdCode": code,
        "instType": "SWAP",
        "lever": str(inst.max_leverage),
        "listTime": str(list_time),
        "contTdSwTime": str(list_time),
        "lotSz": dstr(inst.lot_size),
        "maxIcebergSz": max_lmt,
        "maxLmtAmt": "20000000",
        "maxLmtSz": max_lmt,
        "maxMktAmt": "",
        "maxMktSz": max_mkt,
        "maxStopSz": max_mkt,
        "maxTriggerSz": max_lmt,
        "maxTwapSz": max_lmt,
        "minSz": dstr(inst.min_size),
        "optType": "",
        "quoteCcy": "",
        "ruleType": "normal",
        "settleCcy": inst.settle,
        "state": "live",
        "stk": "",
        "tickSz": dstr(inst.tick_size),
        "uly": fam,
    }


def ticker_dict(inst: Instrument, t: Ticker, stats: InstStats | None) -> dict[str, Any]:
    last = dstr(t.last)
    open_ = dstr(stats.open) if stats else last
    vol = stats.vol if stats else _ZERO
    return {
        "instType": "SWAP",
        "instId": t.inst_id,
        "last": last,
        "lastSz": dstr(stats.last_sz) if stats else "0",
        "askPx": dstr(t.ask),
        "askSz": BOOK_DEPTH,
        "bidPx": dstr(t.bid),
        "bidSz": BOOK_DEPTH,
        "open24h": open_,
        "high24h": dstr(stats.high) if stats else last,
        "low24h": dstr(stats.low) if stats else last,
        "volCcy24h": dstr(vol * inst.contract_value),
        "vol24h": dstr(vol),
        "ts": str(t.ts),
        "sodUtc0": open_,
        "sodUtc8": open_,
    }


def mark_price_dict(t: Ticker, ts: int | None = None) -> dict[str, Any]:
    """A mark-price push; ``ts``: when it is pushed (default: when the price was set)."""
    return {
        "instType": "SWAP",
        "instId": t.inst_id,
        "markPx": dstr(t.mark),
        "ts": str(t.ts if ts is None else ts),
    }


def book_dict(t: Ticker) -> dict[str, Any]:
    return {
        "asks": [[dstr(t.ask), BOOK_DEPTH, "0", "1"]],
        "bids": [[dstr(t.bid), BOOK_DEPTH, "0", "1"]],
        "ts": str(t.ts),
    }


def _attach_list(order: Order) -> list[dict[str, Any]]:
    att = order.attach_tp_sl
    if att is None:
        return []
    tpt = att.trigger_px_type.value

    def ord_px(trigger: Decimal | None, px: Decimal | None) -> str:
        if trigger is None:
            return ""
        return "-1" if px is None or px == -1 else dstr(px)

    return [
        {
            "attachAlgoId": "",
            "attachAlgoClOrdId": "",
            "tpOrdKind": "condition",
            "tpTriggerPx": dstr(att.tp_trigger_px),
            "tpTriggerPxType": tpt if att.tp_trigger_px is not None else "",
            "tpOrdPx": ord_px(att.tp_trigger_px, att.tp_ord_px),
            "slTriggerPx": dstr(att.sl_trigger_px),
            "slTriggerPxType": tpt if att.sl_trigger_px is not None else "",
            "slOrdPx": ord_px(att.sl_trigger_px, att.sl_ord_px),
            "sz": "",
            "amendPxOnTriggerType": "0",
            "failCode": "",
            "failReason": "",
        }
    ]


def order_dict(
    order: Order, fill: Fill | None = None, *, push: bool = False, amended: bool = False
) -> dict[str, Any]:
    """An order as GET trade/order returns it; ``push`` adds the `orders` channel's fields.

    ``fill``: the order's latest fill (the one that caused a push), for fillPx/fillSz/tradeId/fillTime.
    ``amended``: the push reports a successful amend (amendResult "0").
    """
    cs = order.cancel_source
    d: dict[str, Any] = {
        "instType": "SWAP",
        "instId": order.inst_id,
        "tgtCcy": "",
        "ccy": "",
        "ordId": order.order_id,
        "clOrdId": order.client_order_id or "",
        "tag": order.tag or "",
        "px": dstr(order.px),
        "pxUsd": "",
        "pxVol": "",
        "pxType": "",
        "sz": dstr(order.sz),
        "pnl": dstr(order.pnl),
        "ordType": order.ord_type.value,
        "side": order.side.value,
        "posSide": order.pos_side.value,
        "tdMode": order.margin_mode.value,
        "accFillSz": dstr(order.filled_sz),
        "fillPx": dstr(fill.px) if fill else "",
        "tradeId": fill.trade_id if fill else "",
        "fillSz": dstr(fill.sz) if fill else "0",
        "fillTime": str(fill.ts) if fill else "",
        "avgPx": dstr(order.avg_px),
        "state": order.state.value,
        "stpId": "",
        "stpMode": "cancel_maker",
        "lever": str(order.leverage),
        "attachAlgoClOrdId": "",
        "tpTriggerPx": "",
        "tpTriggerPxType": "",
        "tpOrdPx": "",
        "slTriggerPx": "",
        "slTriggerPxType": "",
        "slOrdPx": "",
        "attachAlgoOrds": _attach_list(order),
        "linkedAlgoOrd": {"algoId": ""},
        "feeCcy": order.fee_ccy,
        "fee": neg(order.fee),
        "rebateCcy": order.fee_ccy,
        "rebate": "0",
        "source": "",
        "category": "normal",
        "reduceOnly": "true" if order.reduce_only else "false",
        "isTpLimit": "false",
        "cancelSource": _CANCEL_SOURCE[cs] if cs is not None else "",
        "cancelSourceReason": _CANCEL_REASON[cs] if cs is not None else "",
        "quickMgnType": "",
        "algoClOrdId": order.algo_client_id or "",
        "algoId": order.algo_id or "",
        "uTime": str(order.updated_ms),
        "cTime": str(order.created_ms),
        "tradeQuoteCcy": "",
    }
    if push:
        d["fillFee"] = neg(fill.fee) if fill else "0"
        d["fillFeeCcy"] = fill.fee_ccy if fill else ""
        d["fillPnl"] = dstr(fill.realized_pnl) if fill else "0"
        d["execType"] = ("T" if fill.liquidity is Liquidity.TAKER else "M") if fill else ""
        d["fillNotionalUsd"] = ""
        d["fillMarkPx"] = ""
        d["fillIdxPx"] = ""
        d["fillMarkVol"] = ""
        d["fillFwdPx"] = ""
        d["fillPxVol"] = ""
        d["fillPxUsd"] = ""
        d["notionalUsd"] = ""
        d["lastPx"] = ""
        d["amendResult"] = "0" if amended else ""
        d["amendSource"] = ""
        d["reqId"] = ""
        d["code"] = "0"
        d["msg"] = ""
    return d


def fill_dict(fill: Fill) -> dict[str, Any]:
    """A row of GET trade/fills (and fills-history)."""
    return {
        "instType": "SWAP",
        "instId": fill.inst_id,
        "tradeId": fill.trade_id,
        "ordId": fill.order_id,
        "clOrdId": fill.client_order_id or "",
        "billId": fill.trade_id,
        "subType": "1" if fill.side.value == "buy" else "2",
        "tag": "",
        "fillPx": dstr(fill.px),
        "fillSz": dstr(fill.sz),
        "fillIdxPx": "",
        "fillPnl": dstr(fill.realized_pnl),
        "fillPxVol": "",
        "fillPxUsd": "",
        "fillMarkVol": "",
        "fillFwdPx": "",
        "fillMarkPx": "",
        "side": fill.side.value,
        "posSide": fill.pos_side.value,
        "execType": "T" if fill.liquidity is Liquidity.TAKER else "M",
        "feeCcy": fill.fee_ccy,
        "fee": neg(fill.fee),
        "ts": str(fill.ts),
        "fillTime": str(fill.ts),
        "feeRate": "",
        "tradeQuoteCcy": "",
    }


def _ord_px(trigger: Decimal | None, px: Decimal | None) -> str:
    if trigger is None:
        return ""
    return "-1" if px is None else dstr(px)


def algo_dict(
    algo: AlgoOrder, *, td_mode: str = "cross", lever: int | None = None, last: Decimal | None = None
) -> dict[str, Any]:
    """An algo order as GET trade/orders-algo-pending and the `orders-algo` channel return it."""
    t = algo.algo_type
    tpt = algo.trigger_px_type.value
    conditional = t is AlgoType.CONDITIONAL or t is AlgoType.OCO
    trigger = t is AlgoType.TRIGGER
    trailing = t is AlgoType.MOVE_ORDER_STOP
    fired = algo.state is AlgoState.EFFECTIVE
    leg = algo.triggered_leg
    if leg is TpSlLeg.SL:
        actual_px: Decimal | None = algo.sl_ord_px
    elif leg is TpSlLeg.TP:
        actual_px = algo.tp_ord_px
    elif trigger:
        actual_px = algo.order_px
    else:
        actual_px = None
    clid = algo.client_algo_id or ""
    return {
        "instType": "SWAP",
        "instId": algo.inst_id,
        "ccy": "",
        "ordId": algo.order_id or "",
        "ordIdList": [algo.order_id] if algo.order_id else [],
        "algoId": algo.algo_id,
        "clOrdId": clid,
        "algoClOrdId": clid,
        "sz": dstr(algo.sz),
        "closeFraction": "1" if algo.close_position else "",
        "ordType": t.value,
        "side": algo.side.value,
        "posSide": algo.pos_side.value,
        "tdMode": td_mode,
        "tgtCcy": "",
        "state": algo.state.value,
        "lever": "" if lever is None else str(lever),
        "tpTriggerPx": dstr(algo.tp_trigger_px) if conditional else "",
        "tpTriggerPxType": tpt if conditional and algo.tp_trigger_px is not None else "",
        "tpOrdPx": _ord_px(algo.tp_trigger_px, algo.tp_ord_px) if conditional else "",
        "slTriggerPx": dstr(algo.sl_trigger_px) if conditional else "",
        "slTriggerPxType": tpt if conditional and algo.sl_trigger_px is not None else "",
        "slOrdPx": _ord_px(algo.sl_trigger_px, algo.sl_ord_px) if conditional else "",
        "triggerPx": dstr(algo.trigger_px) if trigger else "",
        "triggerPxType": tpt if trigger else "",
        "ordPx": ("-1" if algo.order_px is None else dstr(algo.order_px)) if trigger else "",
        "actualSz": dstr(algo.sz) if fired and algo.sz is not None else ("" if not fired else "0"),
        "actualPx": ("-1" if actual_px is None else dstr(actual_px)) if fired else "",
        "actualSide": (leg.value if leg is not None else algo.side.value) if fired else "",
        "triggerTime": str(algo.triggered_ms) if algo.triggered_ms is not None else "",
        "pxVar": "",
        "pxSpread": "",
        "szLimit": "",
        "pxLimit": "",
        "timeInterval": "",
        "tag": algo.tag or "",
        "callbackRatio": dstr(algo.callback_ratio) if trailing else "",
        "callbackSpread": dstr(algo.callback_spread) if trailing else "",
        "activePx": dstr(algo.active_px) if trailing else "",
        "moveTriggerPx": dstr(algo.stop_px) if trailing else "",
        "reduceOnly": "true" if algo.reduce_only else "false",
        "quickMgnType": "",
        "last": dstr(last),
        "failCode": engine_code(algo.fail_code),
        "amendPxOnTriggerType": "0",
        "attachAlgoOrds": [],
        "linkedOrd": {"ordId": ""},
        "isTradeBorrowMode": "",
        "tradeQuoteCcy": "",
        "cTime": str(algo.created_ms),
        "uTime": str(algo.updated_ms),
    }


def position_dict(pos: Position, t: Ticker | None, ts: int, trade_id: str = "") -> dict[str, Any]:
    """A row of GET account/positions and the `positions` channel (``ts`` = pTime)."""
    flat = pos.qty == 0
    last = dstr(t.last) if t is not None else ""
    imr = pos.imr
    upl = pos.upl
    ratio = upl / imr if imr else _ZERO
    upl_last = upl
    if t is not None and not flat:
        upl_last = (t.last - pos.avg_px) * pos.signed_qty * pos.contract_value
    ratio_last = upl_last / imr if imr else _ZERO
    isolated = pos.margin_mode.value == "isolated"
    return {
        "adl": "1",
        "availPos": dstr(abs(pos.qty)),
        "avgPx": "" if flat else dstr(pos.avg_px),
        "baseBal": "",
        "baseBorrowed": "",
        "baseInterest": "",
        "bePx": "",
        "bizRefId": "",
        "bizRefType": "",
        "cTime": str(pos.created_ms),
        "ccy": pos.settle_ccy,
        "clSpotInUseAmt": "",
        "closeOrderAlgo": [],
        "deltaBS": "",
        "deltaPA": "",
        "fee": neg(pos.fee),
        "fundingFee": "0",
        "gammaBS": "",
        "gammaPA": "",
        "idxPx": dstr(pos.mark_px),
        "imr": "" if isolated else dstr(imr),
        "instId": pos.inst_id,
        "instType": "SWAP",
        "interest": "",
        "last": last,
        "lever": str(pos.leverage),
        "liab": "",
        "liabCcy": "",
        "liqPenalty": "0",
        "liqPx": dstr(pos.liq_px),
        "margin": dstr(imr) if isolated else "",
        "markPx": dstr(pos.mark_px),
        "maxSpotInUseAmt": "",
        "mgnMode": pos.margin_mode.value,
        "mgnRatio": "",
        "mmr": dstr(pos.mmr),
        "nonSettleAvgPx": "",
        "notionalUsd": dstr(pos.notional),
        "optVal": "",
        "pTime": str(ts),
        "pendingCloseOrdLiabVal": "",
        "pnl": dstr(pos.realized_pnl),
        "pos": dstr(pos.qty),
        "posCcy": "",
        "posId": pos.pos_id,
        "posSide": pos.pos_side.value,
        "quoteBal": "",
        "quoteBorrowed": "",
        "quoteInterest": "",
        "realizedPnl": dstr(pos.realized_pnl - pos.fee),
        "settledPnl": "",
        "spotInUseAmt": "",
        "spotInUseCcy": "",
        "thetaBS": "",
        "thetaPA": "",
        "tradeId": trade_id,
        "uTime": str(pos.updated_ms),
        "upl": dstr(upl),
        "uplLastPx": dstr(upl_last),
        "uplRatio": dstr(ratio),
        "uplRatioLastPx": dstr(ratio_last),
        "usdPx": "",
        "vegaBS": "",
        "vegaPA": "",
    }


def balance_dict(balances: dict[str, Balance], ts: int) -> dict[str, Any]:
    """data[0] of GET account/balance and the `account` channel (USD-pegged currencies count 1:1)."""
    details = []
    total_eq = _ZERO
    total_upl = _ZERO
    total_frozen = _ZERO
    for b in balances.values():
        avail_eq = b.equity - b.frozen
        details.append(
            {
                "availBal": dstr(b.available),
                "availEq": dstr(avail_eq),
                "borrowFroz": "",
                "cashBal": dstr(b.balance),
                "ccy": b.ccy,
                "crossLiab": "",
                "disEq": dstr(b.equity),
                "eq": dstr(b.equity),
                "eqUsd": dstr(b.equity),
                "fixedBal": "0",
                "frozenBal": dstr(b.frozen),
                "imr": dstr(b.frozen),
                "interest": "",
                "isoEq": "0",
                "isoLiab": "",
                "isoUpl": "0",
                "liab": "",
                "maxLoan": "",
                "mgnRatio": "",
                "mmr": "",
                "notionalLever": "",
                "ordFrozen": "0",
                "spotInUseAmt": "",
                "stgyEq": "0",
                "twap": "0",
                "uTime": str(ts),
                "upl": dstr(b.upl),
                "uplLiab": "",
            }
        )
        total_eq += b.equity
        total_upl += b.upl
        total_frozen += b.frozen
    return {
        "adjEq": dstr(total_eq),
        "availEq": dstr(total_eq - total_frozen),
        "borrowFroz": "",
        "details": details,
        "imr": dstr(total_frozen),
        "isoEq": "0",
        "mgnRatio": "",
        "mmr": "",
        "notionalUsd": "",
        "ordFroz": "",
        "totalEq": dstr(total_eq),
        "uTime": str(ts),
        "upl": dstr(total_upl),
    }
