"""Engine events -> Binance USD-M WebSocket payloads (user data stream and book/mark streams).

ORDER_TRADE_UPDATE ``o:{s,c,S,o,f,q,p,ap,sp,x,X,i,l,z,L,N,n,T,t,b,a,m,R,wt,ot,ps,cp,rp,...}``,
ACCOUNT_UPDATE ``a:{m,B:[{a,wb,cw,bc}],P:[{s,pa,ep,bep,cr,up,mt,iw,ps}]}``,
ALGO_UPDATE ``o:{caid,aid,at,o,s,S,ps,f,q,X,ai,ap,aq,act,tp,p,...,R,tt,rm}``, as ccxt.pro's binance
handlers (handle_order_update, parse_ws_order, parse_ws_trade, handle_balance, parse_ws_position) read them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..engine import (
    AlgoOrder,
    AlgoType,
    BalanceEvent,
    CancelSource,
    Liquidity,
    MarginMode,
    OrderEvent,
    OrderEventKind,
    Position,
    Ticker,
)
from .numbers import POS_SIDE, SIDE, WORKING_TYPE, fmt, fmt_opt, order_status, order_type
from .rest_format import algo_order_type, algo_prices, client_id, cum_quote

__all__ = [
    "account_config_update",
    "account_update",
    "algo_update",
    "book_ticker_event",
    "mark_price_event",
    "order_trade_update",
]

_EXEC = {
    OrderEventKind.NEW: "NEW",
    OrderEventKind.TRADE: "TRADE",
    OrderEventKind.AMENDED: "AMENDMENT",
}
_HUNDRED = Decimal(100)


def order_trade_update(ev: OrderEvent) -> dict[str, Any]:
    o = ev.order
    fill = ev.fill
    user = o.cancel_source is CancelSource.USER
    status = order_status(o.state, user)
    execution = status if ev.kind is OrderEventKind.CANCELED else _EXEC[ev.kind]
    typ = order_type(o.ord_type)
    body: dict[str, Any] = {
        "s": o.inst_id,
        "c": client_id(o),
        "S": SIDE[o.side],
        "o": typ,
        "f": o.time_in_force,
        "q": fmt(o.sz),
        "p": fmt_opt(o.px),
        "ap": fmt_opt(o.avg_px),
        "sp": "0",
        "x": execution,
        "X": status,
        "i": int(o.order_id),
        "l": "0",
        "z": fmt(o.filled_sz),
        "L": "0",
        "T": ev.ts,
        "t": 0,
        "b": "0",
        "a": "0",
        "m": False,
        "R": o.reduce_only and o.pos_side.value == "net",
        "wt": "CONTRACT_PRICE",
        "ot": typ,
        "ps": POS_SIDE[o.pos_side],
        "cp": False,
        "rp": "0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_MAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    if fill is not None:
        body["l"] = fmt(fill.sz)
        body["L"] = fmt(fill.px)
        body["N"] = fill.fee_ccy
        body["n"] = fmt(fill.fee)
        body["t"] = int(fill.trade_id)
        body["m"] = fill.liquidity is Liquidity.MAKER
        body["rp"] = fmt(fill.realized_pnl)
        body["Z"] = fmt(cum_quote(o))
    return {"e": "ORDER_TRADE_UPDATE", "E": ev.ts, "T": ev.ts, "o": body}


def _position_row(p: Position) -> dict[str, Any]:
    isolated = p.margin_mode is MarginMode.ISOLATED
    return {
        "s": p.inst_id,
        "pa": fmt(p.signed_qty),
        "ep": fmt(p.avg_px),
        "bep": fmt(p.avg_px),
        "cr": fmt(p.realized_pnl),
        "up": fmt(p.upl),
        "mt": "isolated" if isolated else "cross",
        "iw": fmt(p.imr) if isolated and p.qty != 0 else "0",
        "ps": POS_SIDE[p.pos_side],
    }


_REASONS = {"trade": "ORDER", "deposit": "DEPOSIT", "set_balance": "ADJUSTMENT"}


def account_update(balance: BalanceEvent, positions: list[Position]) -> dict[str, Any]:
    """One ACCOUNT_UPDATE: the balance after the change and the positions it touched."""
    row = {"a": balance.ccy, "wb": fmt(balance.balance), "cw": fmt(balance.balance), "bc": "0"}
    if balance.reason != "trade":
        row["bc"] = fmt(balance.delta)
    return {
        "e": "ACCOUNT_UPDATE",
        "E": balance.ts,
        "T": balance.ts,
        "a": {
            "m": _REASONS.get(balance.reason, "ADJUSTMENT"),
            "B": [row],
            "P": [_position_row(p) for p in positions],
        },
    }


def algo_update(
    a: AlgoOrder, status: str, ts: int, child_avg: Decimal | None, child_filled: Decimal
) -> dict[str, Any]:
    trigger, price = algo_prices(a)
    net = a.pos_side.value == "net"
    body: dict[str, Any] = {
        "caid": a.client_algo_id or f"sim_algo_{a.algo_id}",
        "aid": int(a.algo_id),
        "at": "CONDITIONAL",
        "o": algo_order_type(a),
        "s": a.inst_id,
        "S": SIDE[a.side],
        "ps": POS_SIDE[a.pos_side],
        "f": "GTC",
        "q": fmt_opt(a.sz),
        "X": status,
        "ai": a.order_id or "",
        "ap": fmt_opt(child_avg),
        "aq": fmt(child_filled),
        "act": "0" if a.order_id is None else ("MARKET" if price is None else "LIMIT"),
        "tp": fmt_opt(trigger),
        "p": fmt_opt(price),
        "V": "EXPIRE_MAKER",
        "wt": WORKING_TYPE[a.trigger_px_type],
        "pm": "NONE",
        "cp": a.close_position,
        "pP": False,
        "R": a.reduce_only and net and not a.close_position,
        "tt": a.triggered_ms or 0,
        "gtd": 0,
    }
    if a.algo_type is AlgoType.MOVE_ORDER_STOP:
        body["AP"] = fmt_opt(a.active_px)
        body["cr"] = fmt(a.callback_ratio * _HUNDRED) if a.callback_ratio is not None else "0"
    if a.fail_reason:
        body["rm"] = a.fail_reason
    return {"e": "ALGO_UPDATE", "E": ts, "T": ts, "o": body}


def account_config_update(ts: int, symbol: str, leverage: int) -> dict[str, Any]:
    return {"e": "ACCOUNT_CONFIG_UPDATE", "E": ts, "T": ts, "ac": {"s": symbol, "l": leverage}}


def book_ticker_event(t: Ticker) -> dict[str, Any]:
    return {
        "e": "bookTicker",
        "u": t.ts,
        "s": t.inst_id,
        "b": fmt(t.bid),
        "B": "0",
        "a": fmt(t.ask),
        "A": "0",
        "T": t.ts,
        "E": t.ts,
    }


def mark_price_event(t: Ticker, event_ms: int | None = None) -> dict[str, Any]:
    """``event_ms``: when the update is pushed (default: when the price was set); T = next funding time."""
    e = t.ts if event_ms is None else event_ms
    return {
        "e": "markPriceUpdate",
        "E": e,
        "s": t.inst_id,
        "p": fmt(t.mark),
        "i": fmt(t.mark),
        "P": fmt(t.mark),
        "r": "0",
        "T": (e // (8 * 3600 * 1000) + 1) * 8 * 3600 * 1000,
    }
