"""Account settings endpoints: POST account/set-leverage and account/set-position-mode."""

from __future__ import annotations

from typing import Any

from ..engine import Account, EngineError, InvalidLeverage, SimEngine, UnknownInstrument
from .codes import OkxError, from_engine, param_error, required
from .params import as_object, choice, opt_dec, opt_str, req_str

__all__ = ["set_leverage", "set_position_mode"]

_POS_MODES = {"net_mode": "net", "long_short_mode": "long_short"}


def set_leverage(engine: SimEngine, account: Account, body: Any) -> list[dict[str, Any]]:
    """Cross (and net-mode isolated) leverage applies to every side; isolated in long/short mode to posSide."""
    d = as_object(body)
    lever_d = opt_dec(d, "lever")
    if lever_d is None:
        raise required("lever")
    if lever_d != lever_d.to_integral_value() or lever_d < 1:
        raise param_error("lever")
    lever = int(lever_d)
    mgn_mode = choice(d, "mgnMode", ("cross", "isolated"))
    inst_id = req_str(d, "instId")
    pos_side = opt_str(d, "posSide")
    if pos_side is not None and pos_side not in ("net", "long", "short"):
        raise param_error("posSide")
    try:
        inst = engine.instrument(inst_id)
    except UnknownInstrument:
        raise OkxError("51001", "Instrument ID does not exist.") from None
    hedged = engine.account_by_key(account.api_key).position_mode.value == "long_short"
    target = None
    if mgn_mode == "isolated" and hedged:
        if pos_side not in ("long", "short"):
            raise param_error("posSide")
        target = pos_side
    try:
        engine.set_leverage(account.api_key, inst.inst_id, lever, pos_side=target, margin_mode=mgn_mode)
    except InvalidLeverage:
        raise OkxError("59102", f"Leverage exceeds the maximum leverage {inst.max_leverage}.") from None
    except EngineError as exc:
        raise from_engine(exc, "account") from None
    return [{"instId": inst.inst_id, "lever": str(lever), "mgnMode": mgn_mode, "posSide": pos_side or ""}]


def set_position_mode(engine: SimEngine, account: Account, body: Any) -> list[dict[str, Any]]:
    d = as_object(body)
    pos_mode = choice(d, "posMode", tuple(_POS_MODES))
    try:
        engine.set_position_mode(account.api_key, _POS_MODES[pos_mode])
    except EngineError as exc:
        raise from_engine(exc, "account") from None
    return [{"posMode": pos_mode}]
