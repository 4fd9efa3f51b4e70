"""Read-only endpoints: market data, orders, algo orders, fills, positions, balances, account settings.

Each function takes the engine (plus the account for private data) and the request's query fields and
returns the ``data`` list of the OKX reply, or raises OkxError. Lists come newest first, as OKX sends them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..engine import (
    Account,
    AlgoOrder,
    AlgoType,
    EngineError,
    Fill,
    Instrument,
    Order,
    SimEngine,
    UnknownInstrument,
)
from .codes import OkxError, from_engine, param_error, required
from .fmt import (
    algo_dict,
    balance_dict,
    book_dict,
    fill_dict,
    instrument_dict,
    mark_price_dict,
    order_dict,
    position_dict,
    ticker_dict,
)
from .market import MarketStats
from .params import choice, limit_of, opt_str, req_str, split_ids
from .trade import inst_id_code

__all__ = [
    "account_config",
    "algo_history",
    "balance",
    "book",
    "fills",
    "get_algo",
    "get_order",
    "instruments",
    "leverage_info",
    "mark_prices",
    "order_history",
    "pending_algos",
    "pending_orders",
    "positions",
    "ticker",
    "tickers",
]

Query = Mapping[str, str]
_SWAP_TYPES = ("SWAP", "ANY")
_ALGO_TYPES = {t.value for t in AlgoType}
_POS_MODES = {"net": "net_mode", "long_short": "long_short_mode"}


def _inst(engine: SimEngine, inst_id: str) -> Instrument:
    try:
        return engine.instrument(inst_id)
    except UnknownInstrument:
        raise OkxError("51001", "Instrument ID does not exist.") from None


def _swap_only(q: Query, *, needed: bool) -> bool:
    """False when the request asks for an instType the simulator does not have (empty result)."""
    inst_type = opt_str(q, "instType")
    if inst_type is None:
        if needed:
            raise required("instType")
        return True
    return inst_type.upper() in _SWAP_TYPES


# ------------------------------------------------------------------ public


def instruments(engine: SimEngine, q: Query, list_time: int) -> list[dict[str, Any]]:
    inst_type = req_str(q, "instType")
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise param_error("instType")
    if inst_type != "SWAP":
        return []
    wanted = opt_str(q, "instId")
    return [
        instrument_dict(inst, list_time, inst_id_code(engine, inst.inst_id))
        for inst in engine.instruments()
        if wanted is None or inst.inst_id == wanted
    ]


def ticker(engine: SimEngine, stats: MarketStats, q: Query) -> list[dict[str, Any]]:
    inst = _inst(engine, req_str(q, "instId"))
    t = engine.ticker(inst.inst_id)
    return [] if t is None else [ticker_dict(inst, t, stats.get(inst.inst_id))]


def tickers(engine: SimEngine, stats: MarketStats, q: Query) -> list[dict[str, Any]]:
    if req_str(q, "instType") != "SWAP":
        return []
    out = []
    for inst in engine.instruments():
        t = engine.ticker(inst.inst_id)
        if t is not None:
            out.append(ticker_dict(inst, t, stats.get(inst.inst_id)))
    return out


def mark_prices(engine: SimEngine, q: Query) -> list[dict[str, Any]]:
    """instType is documented as required, but OKX answers ccxt's fetch_mark_price, which sends instId only."""
    if opt_str(q, "instType") not in (None, "SWAP"):
        return []
    wanted = split_ids(opt_str(q, "instId"))
    out = []
    for inst in engine.instruments():
        if wanted is not None and inst.inst_id not in wanted:
            continue
        t = engine.ticker(inst.inst_id)
        if t is not None:
            out.append(mark_price_dict(t))
    return out


def book(engine: SimEngine, q: Query) -> list[dict[str, Any]]:
    inst = _inst(engine, req_str(q, "instId"))
    t = engine.ticker(inst.inst_id)
    return [] if t is None else [book_dict(t)]


# ------------------------------------------------------------------ orders


def _last_fill(engine: SimEngine, api_key: str, order: Order) -> Fill | None:
    if order.filled_sz == 0:
        return None
    for f in engine.fills(api_key, order.inst_id):
        if f.order_id == order.order_id:
            return f
    return None


def get_order(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    inst = _inst(engine, req_str(q, "instId"))
    oid, clid = opt_str(q, "ordId"), opt_str(q, "clOrdId")
    if oid is None and clid is None:
        raise OkxError("51003", "Either clOrdId or ordId is required.")
    try:
        order = engine.get_order(account.api_key, order_id=oid, client_order_id=None if oid else clid)
    except EngineError as exc:
        raise from_engine(exc, "get") from None
    if order.inst_id != inst.inst_id:
        raise OkxError("51603", "Order does not exist")
    return [order_dict(order, _last_fill(engine, account.api_key, order))]


def _order_filter(q: Query) -> tuple[str | None, set[str] | None, str | None]:
    ord_types = split_ids(opt_str(q, "ordType"))
    return opt_str(q, "instId"), ord_types, opt_str(q, "state")


def _page(rows: Iterable[Order], q: Query, id_of: str = "order_id") -> list[Order]:
    """OKX paging by id: ``after`` = older than that id, ``before`` = newer (ids grow with time)."""
    after, before = opt_str(q, "after"), opt_str(q, "before")
    out = []
    for o in rows:
        oid = int(getattr(o, id_of))
        if after is not None and after.isdigit() and oid >= int(after):
            continue
        if before is not None and before.isdigit() and oid <= int(before):
            continue
        out.append(o)
    return out


def pending_orders(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    if not _swap_only(q, needed=False):
        return []
    inst_id, ord_types, state = _order_filter(q)
    limit = limit_of(q)
    rows = [
        o
        for o in reversed(engine.open_orders(account.api_key, inst_id))
        if (ord_types is None or o.ord_type.value in ord_types) and (state is None or o.state.value == state)
    ]
    return [order_dict(o) for o in _page(rows, q)[:limit]]


def order_history(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    if not _swap_only(q, needed=True):
        return []
    inst_id, ord_types, state = _order_filter(q)
    if state is not None and state not in ("filled", "canceled"):
        raise param_error("state")
    begin, end = opt_str(q, "begin"), opt_str(q, "end")
    limit = limit_of(q)
    rows = []
    for o in engine.order_history(account.api_key, inst_id):
        if ord_types is not None and o.ord_type.value not in ord_types:
            continue
        if state is not None and o.state.value != state:
            continue
        if begin is not None and begin.isdigit() and o.updated_ms < int(begin):
            continue
        if end is not None and end.isdigit() and o.updated_ms > int(end):
            continue
        rows.append(o)
    return [order_dict(o) for o in _page(rows, q)[:limit]]


def fills(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    if not _swap_only(q, needed=False):
        return []
    inst_id, oid = opt_str(q, "instId"), opt_str(q, "ordId")
    begin, end = opt_str(q, "begin"), opt_str(q, "end")
    after, before = opt_str(q, "after"), opt_str(q, "before")
    limit = limit_of(q)
    out = []
    for f in engine.fills(account.api_key, inst_id):
        if oid is not None and f.order_id != oid:
            continue
        if begin is not None and begin.isdigit() and f.ts < int(begin):
            continue
        if end is not None and end.isdigit() and f.ts > int(end):
            continue
        if after is not None and after.isdigit() and int(f.trade_id) >= int(after):
            continue
        if before is not None and before.isdigit() and int(f.trade_id) <= int(before):
            continue
        out.append(fill_dict(f))
        if len(out) >= limit:
            break
    return out


# ------------------------------------------------------------------ algo orders


def _algo_out(engine: SimEngine, account: Account, algo: AlgoOrder) -> dict[str, Any]:
    t = engine.ticker(algo.inst_id)
    return algo_dict(
        algo,
        td_mode=account.get_margin_mode(algo.inst_id).value,
        lever=account.get_leverage(algo.inst_id, algo.pos_side),
        last=None if t is None else t.last,
    )


def _algo_types(q: Query) -> set[str]:
    types = split_ids(req_str(q, "ordType"))
    assert types is not None
    if not types <= _ALGO_TYPES | {"iceberg", "twap", "chase"}:
        raise param_error("ordType")
    return types


def _algo_match(algo: AlgoOrder, types: set[str]) -> bool:
    t = algo.algo_type.value
    # ordType=conditional also lists oco orders (SL+TP), as the engine does
    return t in types or (t == "oco" and "conditional" in types)


def get_algo(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    aid, clid = opt_str(q, "algoId"), opt_str(q, "algoClOrdId")
    if aid is None and clid is None:
        raise OkxError("51003", "Either algoClOrdId or algoId is required.")
    try:
        algo = engine.get_algo(account.api_key, algo_id=aid, client_algo_id=None if aid else clid)
    except EngineError as exc:
        raise from_engine(exc, "get_algo") from None
    return [_algo_out(engine, account, algo)]


def pending_algos(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    types = _algo_types(q)
    if not _swap_only(q, needed=False):
        return []
    inst_id, aid = opt_str(q, "instId"), opt_str(q, "algoId")
    limit = limit_of(q)
    rows = [
        a
        for a in reversed(engine.open_algos(account.api_key, inst_id))
        if _algo_match(a, types) and (aid is None or a.algo_id == aid)
    ]
    return [_algo_out(engine, account, a) for a in rows[:limit]]


def algo_history(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    types = _algo_types(q)
    state, aid = opt_str(q, "state"), opt_str(q, "algoId")
    if state is None and aid is None:
        raise OkxError("51602", "Either state or algoId is required.")
    if state is not None and aid is not None:
        raise OkxError("51601", "state and algoId cannot exist at the same time.")
    if state is not None and state not in ("effective", "canceled", "order_failed"):
        raise param_error("state")
    if not _swap_only(q, needed=False):
        return []
    inst_id = opt_str(q, "instId")
    limit = limit_of(q)
    rows = [
        a
        for a in engine.algo_history(account.api_key, inst_id)
        if _algo_match(a, types)
        and (state is None or a.state.value == state)
        and (aid is None or a.algo_id == aid)
    ]
    return [_algo_out(engine, account, a) for a in rows[:limit]]


# ------------------------------------------------------------------ account


def positions(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    if not _swap_only(q, needed=False):
        return []
    wanted = split_ids(opt_str(q, "instId"))
    pos_ids = split_ids(opt_str(q, "posId"))
    ts = engine.now_ms()
    out = []
    for p in engine.positions(account.api_key):
        if wanted is not None and p.inst_id not in wanted:
            continue
        if pos_ids is not None and p.pos_id not in pos_ids:
            continue
        out.append(position_dict(p, engine.ticker(p.inst_id), ts))
    return out


def balance(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    ccys = split_ids(opt_str(q, "ccy"))
    bals = engine.balances(account.api_key)
    if ccys is not None:
        bals = {c: b for c, b in bals.items() if c in ccys}
    return [balance_dict(bals, engine.now_ms())]


def account_config(engine: SimEngine, account: Account) -> list[dict[str, Any]]:
    current = engine.account_by_key(account.api_key)
    return [
        {
            "acctLv": "2",
            "acctStpMode": "cancel_maker",
            "autoLoan": False,
            "ctIsoMode": "automatic",
            "enableSpotBorrow": False,
            "greeksType": "PA",
            "ip": "",
            "kycLv": "2",
            "label": current.label,
            "level": "Lv1",
            "levelTmp": "",
            "liquidationGear": "-1",
            "mainUid": current.account_id,
            "mgnIsoMode": "automatic",
            "opAuth": "0",
            "perm": "read_only,trade",
            "posMode": _POS_MODES[current.position_mode.value],
            "roleType": "0",
            "settleCcy": "USDT",
            "settleCcyList": ["USDT"],
            "spotBorrowAutoRepay": False,
            "spotOffsetType": "",
            "spotRoleType": "0",
            "spotTraderInsts": [],
            "traderInsts": [],
            "type": "0",
            "uid": current.account_id,
        }
    ]


def leverage_info(engine: SimEngine, account: Account, q: Query) -> list[dict[str, Any]]:
    inst_ids = split_ids(req_str(q, "instId"))
    assert inst_ids is not None
    mgn_mode = choice(q, "mgnMode", ("cross", "isolated"))
    current = engine.account_by_key(account.api_key)
    sides = ("net",) if current.position_mode.value == "net" else ("long", "short")
    out = []
    for inst_id in sorted(inst_ids):
        _inst(engine, inst_id)
        for side in sides:
            lever = engine.get_leverage(account.api_key, inst_id, side)
            out.append({"instId": inst_id, "mgnMode": mgn_mode, "posSide": side, "lever": str(lever)})
    return out
