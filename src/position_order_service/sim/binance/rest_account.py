"""Account endpoints: positionRisk (v2, v3), account (v2, v3), balance, leverageBracket, leverage,
positionSide/dual, marginType, commissionRate, multiAssetsMargin and the listenKey (user stream) endpoints."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from ..engine import Instrument, MarginMode, Position, PositionMode, PosSide
from .auth import Caller
from .errors import BinanceError, mandatory
from .front import Front
from .market import leverage_bracket
from .numbers import fmt
from .params import Params
from .rest_format import account_v2, account_v3, balance_rows, position_risk

__all__ = [
    "account",
    "balance",
    "change_leverage",
    "change_margin_type",
    "change_position_mode",
    "close_listen_key",
    "commission_rate",
    "get_position_mode",
    "keepalive_listen_key",
    "leverage_brackets",
    "multi_assets_margin",
    "open_listen_key",
    "position_risk_v2",
    "position_risk_v3",
    "symbol_config",
]

_ZERO = Decimal(0)


def _flat(front: Front, caller: Caller, inst: Instrument, ps: PosSide) -> Position:
    lev = front.engine.get_leverage(caller.api_key, inst.inst_id, ps)
    mm = front.engine.account_by_key(caller.api_key).get_margin_mode(inst.inst_id)
    ticker = front.engine.ticker(inst.inst_id)
    mark = _ZERO if ticker is None else ticker.mark
    return Position("", caller.account_id, inst.inst_id, ps, _ZERO, _ZERO, lev, mm, _ZERO, _ZERO, 0, 0,
                    inst.contract_value, inst.settle, mark_px=mark)  # fmt: skip


def position_risk_v3(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    """Positions with a size (the v3 endpoint omits flat ones)."""
    inst = front.symbol_param(p, required=False)
    positions = front.engine.positions(caller.api_key, None if inst is None else inst.inst_id)
    return [position_risk(pos, front.engine.instrument(pos.inst_id), v2=False) for pos in positions]


def position_risk_v2(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    """Every symbol and position side, flat ones as zero rows (the v2 shape)."""
    inst = front.symbol_param(p, required=False)
    instruments = [inst] if inst is not None else front.engine.instruments()
    sides = (PosSide.LONG, PosSide.SHORT) if front.hedged(caller) else (PosSide.NET,)
    held = {
        (pos.inst_id, pos.pos_side): pos for pos in front.engine.positions(caller.api_key, include_flat=True)
    }
    rows = []
    for i in instruments:
        for ps in sides:
            pos = held.get((i.inst_id, ps)) or _flat(front, caller, i, ps)
            rows.append(position_risk(pos, i, v2=True))
    return rows


def account(front: Front, caller: Caller, p: Params, *, v2: bool) -> dict[str, Any]:
    engine = front.engine
    balances = list(engine.balances(caller.api_key).values())
    positions = engine.positions(caller.api_key)
    if v2:
        return account_v2(balances, positions, front.engine.now_ms(), front.hedged(caller))
    return account_v3(balances, positions, front.engine.now_ms())


def balance(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    return balance_rows(list(front.engine.balances(caller.api_key).values()), front.engine.now_ms())


def leverage_brackets(front: Front, caller: Caller, p: Params) -> Any:
    inst = front.symbol_param(p, required=False)
    if inst is not None:
        return leverage_bracket(inst)
    return [leverage_bracket(i) for i in front.engine.instruments()]


def change_leverage(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    lev = p.req_int("leverage")
    if not 1 <= lev <= inst.max_leverage:
        raise BinanceError(-4028, f"Leverage {lev} is not valid")
    front.engine.set_leverage(caller.api_key, inst.inst_id, lev)
    return {"leverage": lev, "maxNotionalValue": "1000000000", "symbol": inst.inst_id}


def get_position_mode(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    return {"dualSidePosition": front.hedged(caller)}


def change_position_mode(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    dual = p.opt_bool("dualSidePosition")
    if dual is None:
        raise mandatory("dualSidePosition")
    if dual == front.hedged(caller):
        raise BinanceError(-4059, "No need to change position side.")
    engine = front.engine
    if engine.positions(caller.api_key):
        raise BinanceError(-4068, "Position side cannot be changed if there exists position.")
    if engine.open_orders(caller.api_key) or engine.open_algos(caller.api_key):
        raise BinanceError(-4067, "Position side cannot be changed if there exists open orders.")
    engine.set_position_mode(caller.api_key, PositionMode.LONG_SHORT if dual else PositionMode.NET)
    return {"code": 200, "msg": "success"}


def change_margin_type(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    raw = p.enum("marginType", ("ISOLATED", "CROSSED"))
    if raw is None:
        raise mandatory("marginType")
    wanted = MarginMode.ISOLATED if raw == "ISOLATED" else MarginMode.CROSS
    engine = front.engine
    acct = engine.account_by_key(caller.api_key)
    if acct.get_margin_mode(inst.inst_id) is wanted:
        raise BinanceError(-4046, "No need to change margin type.")
    if engine.positions(caller.api_key, inst.inst_id):
        raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
    if engine.open_orders(caller.api_key, inst.inst_id) or engine.open_algos(caller.api_key, inst.inst_id):
        raise BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")
    lev = acct.get_leverage(inst.inst_id, PosSide.NET)
    engine.set_leverage(caller.api_key, inst.inst_id, lev, margin_mode=wanted)
    return {"code": 200, "msg": "success"}


def symbol_config(front: Front, caller: Caller, p: Params) -> list[dict[str, Any]]:
    """GET /fapi/v1/symbolConfig: leverage and margin type per symbol (ccxt fetch_leverages)."""
    inst = front.symbol_param(p, required=False)
    acct = front.engine.account_by_key(caller.api_key)
    instruments = [inst] if inst is not None else front.engine.instruments()
    return [
        {
            "symbol": i.inst_id,
            "marginType": "ISOLATED" if acct.get_margin_mode(i.inst_id) is MarginMode.ISOLATED else "CROSSED",
            "isAutoAddMargin": "false",
            "leverage": acct.get_leverage(i.inst_id, PosSide.NET),
            "maxNotionalValue": "1000000000",
        }
        for i in instruments
    ]


def commission_rate(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    inst = front.symbol_param(p, required=True)
    assert inst is not None
    acct = front.engine.account_by_key(caller.api_key)
    return {
        "symbol": inst.inst_id,
        "makerCommissionRate": fmt(acct.maker_fee_rate),
        "takerCommissionRate": fmt(acct.taker_fee_rate),
    }


def multi_assets_margin(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    return {"multiAssetsMargin": False}


async def open_listen_key(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    return {"listenKey": front.listen_keys.open(caller.account_id)}


async def keepalive_listen_key(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    key = front.listen_keys.keepalive(caller.account_id)
    if key is None:
        raise BinanceError(-1125, "This listenKey does not exist.")
    return {"listenKey": key}


async def close_listen_key(front: Front, caller: Caller, p: Params) -> dict[str, Any]:
    key = front.listen_keys.close(caller.account_id)
    if key is not None:
        for conn in front.hub.user_connections(caller.account_id):
            if conn.listen_key == key:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1000, message=b"listenKey closed")
    return {}
