"""Order-changing operations (place, cancel, amend, algo place/cancel, close position), shared by the REST
endpoints and the private WebSocket's order ops.

Each takes the authenticated account and a list of request items and returns a :class:`Reply`: one result per
item with ``sCode``/``sMsg``, and the top-level code OKX uses for batches ("0" all done, "1" all failed,
"2" partly done). A rejected item never reaches the engine, or the engine rejects it before any change.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..engine import (
    Account,
    AttachedTpSl,
    EngineError,
    Instrument,
    InvalidTriggerPrice,
    SimEngine,
    TriggerPxType,
    UnknownInstrument,
)
from .codes import OkxError, from_engine, param_error, required, size_error, tp_sl_error
from .params import as_list, choice, opt_bool, opt_clid, opt_dec, opt_str, opt_tag, req_dec, req_str

__all__ = ["INST_ID_CODE_BASE", "MAX_ALGO_CANCELS", "MAX_BATCH", "Reply", "Trader", "inst_id_code", "now_ms"]

MAX_BATCH = 20
MAX_ALGO_CANCELS = 10
_TD_MODES = ("cross", "isolated")
_SIDES = ("buy", "sell")
_POS_SIDES = ("net", "long", "short")
_PX_TYPES = ("last", "mark")
_ORD_TYPES = {
    "market": "market",
    "optimal_limit_ioc": "market",
    "limit": "limit",
    "post_only": "post_only",
    "fok": "fok",
    "ioc": "ioc",
}
_ALGO_TYPES = ("conditional", "oco", "trigger", "move_order_stop")
_MINUS_ONE = Decimal(-1)


INST_ID_CODE_BASE = 10_000


def inst_id_code(engine: SimEngine, inst_id: str) -> int:
    """OKX's numeric instIdCode: here 10000 + the instrument's position in the engine's list (stable)."""
    for i, inst in enumerate(engine.instruments()):
        if inst.inst_id == inst_id:
            return INST_ID_CODE_BASE + i
    raise OkxError("51001", "Instrument ID does not exist.")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Reply:
    code: str
    msg: str
    data: list[dict[str, Any]]


def _batch_reply(results: list[tuple[bool, dict[str, Any]]]) -> Reply:
    ok = sum(1 for done, _ in results if done)
    data = [item for _, item in results]
    if ok == len(results):
        return Reply("0", "", data)
    if ok == 0:
        return Reply("1", "All operations failed", data)
    return Reply("2", "Batch operation partially succeeded", data)


def _text(raw: Any, name: str) -> str:
    v = raw.get(name) if isinstance(raw, dict) else None
    return v if isinstance(v, str) else ""


class Trader:
    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine

    def _inst(self, raw: dict[str, Any]) -> Instrument:
        """The instrument of a request item: instId, or instIdCode (what ccxt's WS order ops send)."""
        code = raw.get("instIdCode")
        if raw.get("instId") in (None, "") and code not in (None, ""):
            if isinstance(code, bool) or not isinstance(code, (int, str)) or not str(code).isdigit():
                raise param_error("instIdCode")
            insts = self.engine.instruments()
            index = int(code) - INST_ID_CODE_BASE
            if not 0 <= index < len(insts):
                raise OkxError("51001", "Instrument ID does not exist.")
            return insts[index]
        inst_id = req_str(raw, "instId")
        try:
            return self.engine.instrument(inst_id)
        except UnknownInstrument:
            raise OkxError("51001", "Instrument ID does not exist.") from None

    def _run(
        self,
        items: list[Any],
        one: Callable[[dict[str, Any]], dict[str, Any]],
        failed: Callable[[Any, OkxError], dict[str, Any]],
    ) -> Reply:
        results: list[tuple[bool, dict[str, Any]]] = []
        for raw in items:
            try:
                if not isinstance(raw, dict):
                    raise OkxError("50002", "Json data format error.")
                results.append((True, one(raw)))
            except OkxError as exc:
                results.append((False, failed(raw, exc)))
        return _batch_reply(results)

    # ------------------------------------------------------------------ orders

    def place_orders(self, account: Account, body: Any, max_items: int = MAX_BATCH) -> Reply:
        items = as_list(body, max_items)

        def failed(raw: Any, exc: OkxError) -> dict[str, Any]:
            return {"clOrdId": _text(raw, "clOrdId"), "ordId": "", "tag": _text(raw, "tag"),
                    "ts": str(self.engine.now_ms()), "sCode": exc.code, "sMsg": exc.msg}  # fmt: skip

        return self._run(items, lambda raw: self._place(account, raw), failed)

    def _attached(self, raw: dict[str, Any]) -> AttachedTpSl | None:
        src: Any = raw
        algos = raw.get("attachAlgoOrds")
        if algos not in (None, ""):
            if not isinstance(algos, list) or not algos or not isinstance(algos[0], dict):
                raise param_error("attachAlgoOrds")
            src = algos[0]
        sl = opt_dec(src, "slTriggerPx")
        tp = opt_dec(src, "tpTriggerPx")
        if sl is None and tp is None:
            return None
        px_type = choice(src, "slTriggerPxType" if sl is not None else "tpTriggerPxType", _PX_TYPES, "last")
        return AttachedTpSl(sl, opt_dec(src, "slOrdPx") if sl is not None else None,
                            tp, opt_dec(src, "tpOrdPx") if tp is not None else None, TriggerPxType(px_type))  # fmt: skip

    def _place(self, account: Account, raw: dict[str, Any]) -> dict[str, Any]:
        inst = self._inst(raw)
        td_mode = choice(raw, "tdMode", _TD_MODES)
        side = choice(raw, "side", _SIDES)
        ord_type = _ORD_TYPES.get(req_str(raw, "ordType"))
        if ord_type is None:
            raise param_error("ordType")
        sz = req_dec(raw, "sz")
        market = ord_type == "market"
        cap = inst.max_market_size if market else inst.max_limit_size
        err = size_error(sz, inst.lot_size, inst.min_size, cap, market)
        if err is not None:
            raise err
        px = None if market else opt_dec(raw, "px")
        pos_side = opt_str(raw, "posSide")
        if pos_side is not None and pos_side not in _POS_SIDES:
            raise param_error("posSide")
        clid = opt_clid(raw, "clOrdId")
        tag = opt_tag(raw)
        attach = self._attached(raw)
        try:
            batch = self.engine.place_order(
                account.api_key, inst.inst_id, side, sz, ord_type=ord_type, px=px, pos_side=pos_side,
                reduce_only=opt_bool(raw, "reduceOnly"), client_order_id=clid, tag=tag, margin_mode=td_mode,
                attach_tp_sl=attach,
            )  # fmt: skip
        except InvalidTriggerPrice:
            assert attach is not None
            ticker = self.engine.ticker(inst.inst_id)
            ref = px if px is not None else (ticker.last if ticker else None)
            raise tp_sl_error(side, ref, attach.sl_trigger_px, attach.tp_trigger_px, attached=True) from None
        except EngineError as exc:
            raise from_engine(exc, "place") from None
        order = batch.order
        assert order is not None
        return {"clOrdId": clid or "", "ordId": order.order_id, "tag": tag or "", "ts": str(self.engine.now_ms()),
                "sCode": "0", "sMsg": "Order placed"}  # fmt: skip

    def cancel_orders(self, account: Account, body: Any, max_items: int = MAX_BATCH) -> Reply:
        items = as_list(body, max_items)

        def failed(raw: Any, exc: OkxError) -> dict[str, Any]:
            return {"clOrdId": _text(raw, "clOrdId"), "ordId": _text(raw, "ordId"), "ts": str(self.engine.now_ms()),
                    "sCode": exc.code, "sMsg": exc.msg}  # fmt: skip

        return self._run(items, lambda raw: self._cancel(account, raw), failed)

    def _ids(self, raw: dict[str, Any], id_name: str, clid_name: str) -> tuple[str | None, str | None]:
        oid = opt_str(raw, id_name)
        clid = opt_str(raw, clid_name)
        if oid is None and clid is None:
            raise OkxError("51003", f"Either {clid_name} or {id_name} is required.")
        return oid, (None if oid is not None else clid)

    def _cancel(self, account: Account, raw: dict[str, Any]) -> dict[str, Any]:
        inst = self._inst(raw)
        oid, clid = self._ids(raw, "ordId", "clOrdId")
        try:
            batch = self.engine.cancel_order(account.api_key, order_id=oid, client_order_id=clid,
                                             inst_id=inst.inst_id)  # fmt: skip
        except EngineError as exc:
            raise from_engine(exc, "cancel") from None
        order = batch.order
        assert order is not None
        return {"clOrdId": order.client_order_id or "", "ordId": order.order_id, "ts": str(self.engine.now_ms()),
                "sCode": "0", "sMsg": ""}  # fmt: skip

    def amend_orders(self, account: Account, body: Any, max_items: int = MAX_BATCH) -> Reply:
        items = as_list(body, max_items)

        def failed(raw: Any, exc: OkxError) -> dict[str, Any]:
            return {"clOrdId": _text(raw, "clOrdId"), "ordId": _text(raw, "ordId"), "reqId": _text(raw, "reqId"),
                    "ts": str(self.engine.now_ms()), "sCode": exc.code, "sMsg": exc.msg}  # fmt: skip

        return self._run(items, lambda raw: self._amend(account, raw), failed)

    def _amend(self, account: Account, raw: dict[str, Any]) -> dict[str, Any]:
        inst = self._inst(raw)
        oid, clid = self._ids(raw, "ordId", "clOrdId")
        new_sz = opt_dec(raw, "newSz")
        new_px = opt_dec(raw, "newPx")
        if new_sz is None and new_px is None:
            raise OkxError("51500", "Either order price or amount is required.")
        if new_sz is not None:
            err = size_error(new_sz, inst.lot_size, inst.min_size, inst.max_limit_size, False)
            if err is not None:
                raise err
        try:
            batch = self.engine.amend_order(account.api_key, order_id=oid, client_order_id=clid,
                                            inst_id=inst.inst_id, new_sz=new_sz, new_px=new_px)  # fmt: skip
        except EngineError as exc:
            error = from_engine(exc, "amend")
            if opt_bool(raw, "cxlOnFail"):
                with contextlib.suppress(EngineError):
                    self.engine.cancel_order(account.api_key, order_id=oid, client_order_id=clid,
                                             inst_id=inst.inst_id)  # fmt: skip
            raise error from None
        order = batch.order
        assert order is not None
        return {"clOrdId": order.client_order_id or "", "ordId": order.order_id,
                "reqId": _text(raw, "reqId"), "ts": str(self.engine.now_ms()), "sCode": "0", "sMsg": ""}  # fmt: skip

    def close_position(self, account: Account, raw: Any) -> Reply:
        if not isinstance(raw, dict):
            raise OkxError("50002", "Json data format error.", 400)
        inst = self._inst(raw)
        choice(raw, "mgnMode", _TD_MODES)
        pos_side = choice(raw, "posSide", _POS_SIDES, "net")
        clid = opt_clid(raw, "clOrdId")
        tag = opt_tag(raw)
        try:
            pos = self.engine.position(account.api_key, inst.inst_id, pos_side)
        except EngineError as exc:
            raise from_engine(exc, "place") from None
        if pos is None or pos.qty == 0:
            raise OkxError("51023", "Position does not exist.")
        side = "sell" if pos.signed_qty > 0 else "buy"
        try:
            self.engine.place_order(
                account.api_key, inst.inst_id, side, abs(pos.qty), ord_type="market",
                pos_side=None if pos_side == "net" else pos_side, reduce_only=pos_side == "net",
                client_order_id=clid, tag=tag, margin_mode=pos.margin_mode,
            )  # fmt: skip
        except EngineError as exc:
            raise from_engine(exc, "place") from None
        return Reply("0", "", [{"clOrdId": clid or "", "instId": inst.inst_id, "posSide": pos_side,
                                "tag": tag or ""}])  # fmt: skip

    # ------------------------------------------------------------------ algo orders

    def place_algo(self, account: Account, body: Any) -> Reply:
        items = as_list(body, 1)

        def failed(raw: Any, exc: OkxError) -> dict[str, Any]:
            clid = _text(raw, "algoClOrdId") or _text(raw, "clOrdId")
            return {"algoId": "", "clOrdId": clid, "algoClOrdId": clid, "tag": _text(raw, "tag"),
                    "sCode": exc.code, "sMsg": exc.msg}  # fmt: skip

        return self._run(items, lambda raw: self._place_algo(account, raw), failed)

    def _place_algo(self, account: Account, raw: dict[str, Any]) -> dict[str, Any]:
        inst = self._inst(raw)
        choice(raw, "tdMode", _TD_MODES)
        side = choice(raw, "side", _SIDES)
        ord_type = req_str(raw, "ordType")
        if ord_type not in _ALGO_TYPES:
            raise OkxError("51251", "Algo order type error.")
        pos_side = opt_str(raw, "posSide")
        if pos_side is not None and pos_side not in _POS_SIDES:
            raise param_error("posSide")
        close = opt_str(raw, "closeFraction")
        if close is not None and close != "1":
            raise param_error("closeFraction")
        sz = opt_dec(raw, "sz")
        if sz is None and (close is None or ord_type == "trigger"):
            raise required("sz")
        if close is not None:
            sz = None
        clid = opt_clid(raw, "algoClOrdId") or opt_clid(raw, "clOrdId")
        tag = opt_tag(raw)
        kwargs: dict[str, Any] = {}
        market_child = True
        if ord_type in ("conditional", "oco"):
            sl, tp = opt_dec(raw, "slTriggerPx"), opt_dec(raw, "tpTriggerPx")
            sl_px, tp_px = opt_dec(raw, "slOrdPx"), opt_dec(raw, "tpOrdPx")
            if sl is None and tp is None:
                raise OkxError("50015", "Either parameter slTriggerPx or tpTriggerPx is required.")
            if (sl is not None and sl_px is None) or (tp is not None and tp_px is None):
                raise required("slOrdPx" if sl is not None and sl_px is None else "tpOrdPx")
            market_child = (sl is None or sl_px == _MINUS_ONE) and (tp is None or tp_px == _MINUS_ONE)
            px_name = "slTriggerPxType" if sl is not None else "tpTriggerPxType"
            kwargs.update(sl_trigger_px=sl, sl_ord_px=sl_px, tp_trigger_px=tp, tp_ord_px=tp_px,
                          trigger_px_type=choice(raw, px_name, _PX_TYPES, "last"))  # fmt: skip
        elif ord_type == "trigger":
            order_px = opt_dec(raw, "orderPx")
            if order_px is None:
                raise required("orderPx")
            market_child = order_px == _MINUS_ONE
            kwargs.update(trigger_px=req_dec(raw, "triggerPx"), order_px=order_px,
                          trigger_px_type=choice(raw, "triggerPxType", _PX_TYPES, "last"))  # fmt: skip
        else:
            ratio, spread = opt_dec(raw, "callbackRatio"), opt_dec(raw, "callbackSpread")
            if (ratio is None) == (spread is None):
                raise OkxError("50015", "Either parameter callbackRatio or callbackSpread is required.")
            if ratio is not None and not 0 < ratio < 1:
                raise OkxError("51257", "Trail order callback rate error.")
            if spread is not None and spread <= 0:
                raise param_error("callbackSpread")
            kwargs.update(callback_ratio=ratio, callback_spread=spread, active_px=opt_dec(raw, "activePx"))
        if sz is not None:
            cap = inst.max_market_size if market_child else inst.max_limit_size
            err = size_error(sz, inst.lot_size, inst.min_size, cap, market_child)
            if err is not None:
                raise err
        try:
            batch = self.engine.place_algo(
                account.api_key, inst.inst_id, ord_type, side, sz=sz, pos_side=pos_side,
                reduce_only=opt_bool(raw, "reduceOnly"), close_position=close is not None,
                client_algo_id=clid, tag=tag, **kwargs,
            )  # fmt: skip
        except InvalidTriggerPrice:
            if ord_type not in ("conditional", "oco"):
                raise OkxError("51250", "Algo order price is out of the available range.") from None
            ticker = self.engine.ticker(inst.inst_id)
            ref = (
                None
                if ticker is None
                else (ticker.mark if kwargs["trigger_px_type"] == "mark" else ticker.last)
            )
            raise tp_sl_error(
                side, ref, kwargs["sl_trigger_px"], kwargs["tp_trigger_px"], attached=False
            ) from None
        except EngineError as exc:
            raise from_engine(exc, "algo") from None
        algo = batch.algo
        assert algo is not None
        return {"algoId": algo.algo_id, "clOrdId": clid or "", "algoClOrdId": clid or "", "tag": tag or "",
                "sCode": "0", "sMsg": "Order placed"}  # fmt: skip

    def cancel_algos(self, account: Account, body: Any) -> Reply:
        items = as_list(body, MAX_ALGO_CANCELS)

        def failed(raw: Any, exc: OkxError) -> dict[str, Any]:
            return {"algoId": _text(raw, "algoId"), "algoClOrdId": _text(raw, "algoClOrdId"), "clOrdId": "",
                    "sCode": exc.code, "sMsg": exc.msg}  # fmt: skip

        return self._run(items, lambda raw: self._cancel_algo(account, raw), failed)

    def _cancel_algo(self, account: Account, raw: dict[str, Any]) -> dict[str, Any]:
        inst = self._inst(raw)
        aid, clid = self._ids(raw, "algoId", "algoClOrdId")
        try:
            batch = self.engine.cancel_algo(account.api_key, algo_id=aid, client_algo_id=clid,
                                            inst_id=inst.inst_id)  # fmt: skip
        except EngineError as exc:
            raise from_engine(exc, "cancel_algo") from None
        algo = batch.algo
        assert algo is not None
        clid_out = algo.client_algo_id or ""
        return {
            "algoId": algo.algo_id,
            "algoClOrdId": clid_out,
            "clOrdId": clid_out,
            "sCode": "0",
            "sMsg": "",
        }
