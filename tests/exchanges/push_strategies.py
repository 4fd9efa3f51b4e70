"""Hypothesis strategies of valid pushes, per venue and kind, shaped as the venues document them (and as the
simulator's fronts send them): OKX ``orders``, ``orders-algo``, ``positions``, ``tickers``, ``mark-price``;
Binance ORDER_TRADE_UPDATE, ALGO_UPDATE, ACCOUNT_UPDATE, 24hrMiniTicker, markPriceUpdate.

Numbers are decimal strings on the venues' grids (OKX sizes in contracts), times are epoch milliseconds, and
the fields agree with each other the way an exchange's do (a filled order's cumulative fill is its size, a
trade update carries its trade). Instruments are BTC and ETH (the equivalence harness keeps SOL for markers);
ids within one frame are distinct (an exchange does not push one order twice in a frame).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

OKX_INSTRUMENTS = ("BTC-USDT-SWAP", "ETH-USDT-SWAP")
BINANCE_SYMBOLS = ("BTCUSDT", "ETHUSDT")
T0 = 1_790_000_000_000


def _dec(n: int, places: int) -> str:
    return format(Decimal(n).scaleb(-places), "f")


prices = st.integers(10, 10_000_000).map(lambda n: _dec(n, 1))  # 1.0 .. 1,000,000.0
times = st.integers(T0, T0 + 10**9)
ids = st.integers(1, 10**15).map(str)
client_ids = st.one_of(st.just(""), st.text("abcdefXYZ0123456789", min_size=1, max_size=32))
okx_sizes = st.integers(1, 100_000)  # hundredths of a contract
binance_sizes = st.integers(1, 100_000)  # thousandths of a coin


# ---------------------------------------------------------------- OKX


@st.composite
def okx_order(draw: st.DrawFn, ord_id: str) -> dict[str, Any]:
    ord_type = draw(st.sampled_from(["market", "limit", "post_only", "ioc", "fok", "optimal_limit_ioc"]))
    sz_n = draw(okx_sizes)
    state = draw(st.sampled_from(["live", "partially_filled", "filled", "canceled", "mmp_canceled"]))
    acc_n = (
        {"live": 0, "filled": sz_n}.get(state) if state in ("live", "filled") else draw(st.integers(0, sz_n))
    )
    if state == "partially_filled" and acc_n in (0, sz_n):
        state = "filled" if acc_n == sz_n else "live"
    px = "" if ord_type in ("market", "optimal_limit_ioc") else draw(prices)
    avg = draw(prices) if acc_n else ""
    c_time = draw(times)
    u_time = c_time + draw(st.integers(0, 10**6))
    traded = acc_n > 0 and draw(st.booleans())
    fill_n = draw(st.integers(1, acc_n)) if traded else 0
    fee = draw(st.integers(-(10**8), 10**6)) if acc_n else 0
    fill_fee = -draw(st.integers(0, 10**6)) if traded else 0
    algo = draw(st.one_of(st.just(""), st.just(""), ids.map(lambda i: "g" + i)))
    return {
        "instType": "SWAP", "instId": draw(st.sampled_from(OKX_INSTRUMENTS)), "ordId": ord_id,
        "clOrdId": draw(client_ids), "tag": "", "px": px, "sz": _dec(sz_n, 2), "ordType": ord_type,
        "side": draw(st.sampled_from(["buy", "sell"])), "posSide": draw(st.sampled_from(["net", "long", "short"])),
        "tdMode": draw(st.sampled_from(["cross", "isolated"])), "accFillSz": _dec(acc_n, 2),
        "fillPx": avg if traded else "", "tradeId": draw(ids) if traded else "", "fillSz": _dec(fill_n, 2),
        "fillTime": str(u_time) if traded else "", "avgPx": avg, "state": state, "lever": "10",
        "fee": _dec(fee, 6), "feeCcy": "USDT", "fillFee": _dec(fill_fee, 6), "fillFeeCcy": "USDT" if traded else "",
        "execType": draw(st.sampled_from(["T", "M"])) if traded else "",
        "reduceOnly": draw(st.sampled_from(["true", "false"])), "cancelSource": "",
        "cTime": str(c_time), "uTime": str(u_time), "algoId": algo, "algoClOrdId": "",
    }  # fmt: skip


@st.composite
def okx_algo(draw: st.DrawFn, algo_id: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["sl", "tp", "oco", "trigger", "move_order_stop"]))
    fields: dict[str, Any] = {"slTriggerPx": "", "slOrdPx": "", "tpTriggerPx": "", "tpOrdPx": "", "triggerPx": "",
                              "ordPx": "", "callbackRatio": "", "callbackSpread": "", "activePx": "",
                              "moveTriggerPx": ""}  # fmt: skip
    limit_or_market = st.one_of(st.just("-1"), prices)
    if kind in ("sl", "oco"):
        fields.update(slTriggerPx=draw(prices), slOrdPx=draw(limit_or_market))
    if kind in ("tp", "oco"):
        fields.update(tpTriggerPx=draw(prices), tpOrdPx=draw(limit_or_market))
    if kind == "trigger":
        fields.update(triggerPx=draw(prices), ordPx=draw(limit_or_market))
    if kind == "move_order_stop":
        fields.update(callbackRatio=_dec(draw(st.integers(1, 999)), 3))
        if draw(st.booleans()):
            fields.update(activePx=draw(prices))
    sz = draw(st.one_of(okx_sizes.map(lambda n: _dec(n, 2)), st.just("")))  # "": close the whole position
    state = draw(
        st.sampled_from(["live", "pause", "effective", "canceled", "order_failed", "partially_effective"])
    )
    c_time = draw(times)
    triggered = state in ("effective", "partially_effective")
    return {
        "instType": "SWAP", "instId": draw(st.sampled_from(OKX_INSTRUMENTS)), "algoId": algo_id,
        "algoClOrdId": draw(client_ids), "clOrdId": "", "ordType": "conditional" if kind in ("sl", "tp") else kind,
        "side": draw(st.sampled_from(["buy", "sell"])), "posSide": draw(st.sampled_from(["net", "long", "short"])),
        "sz": sz, "state": state, "reduceOnly": draw(st.sampled_from(["true", "false"])),
        "actualSz": sz if triggered else "", "actualSide": draw(st.sampled_from(["sl", "tp", ""])) if triggered else "",
        "ordId": draw(ids) if triggered else "", "triggerTime": str(c_time + 5) if triggered else "",
        "failCode": "51008" if state == "order_failed" else "", "tag": "", "lever": "10",
        "cTime": str(c_time), "uTime": str(c_time + draw(st.integers(0, 10**6))), **fields,
    }  # fmt: skip


@st.composite
def okx_position(draw: st.DrawFn, inst: str, pos_side: str) -> dict[str, Any]:
    n = draw(st.integers(-100_000, 100_000) if pos_side == "net" else st.integers(0, 100_000))
    c_time = draw(times)
    return {
        "instType": "SWAP", "instId": inst, "posSide": pos_side, "pos": _dec(n, 2),
        "avgPx": draw(prices) if n else "", "markPx": draw(prices), "upl": _dec(draw(st.integers(-10**9, 10**9)), 4),
        "uplRatio": "0", "lever": str(draw(st.integers(1, 125))), "mgnMode": draw(st.sampled_from(["cross", "isolated"])),
        "liqPx": draw(st.one_of(st.just(""), prices)), "fee": _dec(-draw(st.integers(0, 10**8)), 6),
        "pnl": _dec(draw(st.integers(-10**9, 10**9)), 4), "realizedPnl": "0", "posId": draw(ids),
        "cTime": str(c_time), "uTime": str(c_time + draw(st.integers(0, 10**6))), "ccy": "USDT",
    }  # fmt: skip


def _okx_frame(channel: str, data: list[dict[str, Any]], inst: str | None = None) -> dict[str, Any]:
    arg: dict[str, Any] = {"channel": channel, "instType": "ANY", "uid": "1"}
    if inst is not None:
        arg = {"channel": channel, "instId": inst}
    return {"arg": arg, "data": data}


@st.composite
def okx_orders_push(draw: st.DrawFn) -> dict[str, Any]:
    order_ids = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    return _okx_frame("orders", [draw(okx_order(i)) for i in order_ids])


@st.composite
def okx_algo_push(draw: st.DrawFn) -> dict[str, Any]:
    algo_ids = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    return _okx_frame("orders-algo", [draw(okx_algo(i)) for i in algo_ids])


@st.composite
def okx_positions_push(draw: st.DrawFn) -> dict[str, Any]:
    """An account is in one mode: net positions, or long/short ones; one entry per position in a frame."""
    sides = ["net"] if draw(st.booleans()) else ["long", "short"]
    keys = draw(
        st.lists(st.tuples(st.sampled_from(OKX_INSTRUMENTS), st.sampled_from(sides)), min_size=1, max_size=3,
                 unique_by=lambda k: k[0] if sides == ["net"] else k)
    )  # fmt: skip
    return _okx_frame("positions", [draw(okx_position(inst, side)) for inst, side in keys])


@st.composite
def okx_ticker_push(draw: st.DrawFn) -> dict[str, Any]:
    inst, last = draw(st.sampled_from(OKX_INSTRUMENTS)), draw(prices)
    entry = {
        "instType": "SWAP", "instId": inst, "last": last, "lastSz": "1",
        "askPx": draw(st.one_of(st.just(""), prices)), "askSz": "1", "bidPx": draw(st.one_of(st.just(""), prices)),
        "bidSz": "1", "open24h": draw(prices), "high24h": draw(prices), "low24h": draw(prices),
        "volCcy24h": "1", "vol24h": "1", "ts": str(draw(times)), "sodUtc0": last, "sodUtc8": last,
    }  # fmt: skip
    return _okx_frame("tickers", [entry], inst)


@st.composite
def okx_mark_push(draw: st.DrawFn) -> dict[str, Any]:
    inst = draw(st.sampled_from(OKX_INSTRUMENTS))
    entry = {"instType": "SWAP", "instId": inst, "markPx": draw(prices), "ts": str(draw(times))}
    return _okx_frame("mark-price", [entry], inst)


# ---------------------------------------------------------------- Binance


_KINDS = [
    "MARKET",
    "LIMIT",
    "STOP_MARKET",
    "TAKE_PROFIT_MARKET",
    "STOP",
    "TAKE_PROFIT",
    "TRAILING_STOP_MARKET",
]


@st.composite
def binance_order_update(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(_KINDS))
    q_n = draw(binance_sizes)
    status = draw(
        st.sampled_from(["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH"])
    )
    z_n = {"NEW": 0, "FILLED": q_n}.get(status, None)
    if z_n is None:
        z_n = (
            draw(st.integers(1, max(1, q_n - 1)))
            if status == "PARTIALLY_FILLED"
            else draw(st.integers(0, q_n))
        )
    traded = z_n > 0 and status in ("PARTIALLY_FILLED", "FILLED") and draw(st.booleans())
    exec_type = "TRADE" if traded else {"NEW": "NEW", "CANCELED": "CANCELED"}.get(status, "EXPIRED")
    t = draw(times)
    l_n = draw(st.integers(1, z_n)) if traded else 0
    o: dict[str, Any] = {
        "s": draw(st.sampled_from(BINANCE_SYMBOLS)), "c": draw(client_ids), "S": draw(st.sampled_from(["BUY", "SELL"])),
        "o": kind, "f": draw(st.sampled_from(["GTC", "IOC", "FOK", "GTX"])), "q": _dec(q_n, 3),
        "p": draw(prices) if kind in ("LIMIT", "STOP", "TAKE_PROFIT") else "0",
        "ap": draw(prices) if z_n else "0", "sp": draw(prices) if kind not in ("MARKET", "LIMIT") else "0",
        "x": exec_type, "X": status, "i": draw(st.integers(1, 10**12)), "l": _dec(l_n, 3), "z": _dec(z_n, 3),
        "L": draw(prices) if traded else "0", "T": t, "t": draw(st.integers(1, 10**12)) if traded else 0,
        "b": "0", "a": "0", "m": draw(st.booleans()), "R": draw(st.booleans()), "wt": "CONTRACT_PRICE",
        "ot": kind, "ps": draw(st.sampled_from(["BOTH", "LONG", "SHORT"])), "cp": False, "rp": "0",
        "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
    }  # fmt: skip
    if traded:
        o.update(N="USDT", n=_dec(draw(st.integers(0, 10**8)), 8))
    if kind == "TRAILING_STOP_MARKET":
        o.update(AP=draw(prices), cr=_dec(draw(st.integers(1, 100)), 1))
    return {"e": "ORDER_TRADE_UPDATE", "E": t + 1, "T": t, "o": o}


@st.composite
def binance_algo_update(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET", "STOP", "TAKE_PROFIT"])
    )
    status = draw(
        st.sampled_from(["NEW", "TRIGGERING", "TRIGGERED", "FINISHED", "CANCELED", "REJECTED", "EXPIRED"])
    )
    t = draw(times)
    close_all = draw(st.booleans())
    o: dict[str, Any] = {
        "caid": draw(client_ids), "aid": draw(st.integers(1, 10**13)), "at": "CONDITIONAL", "o": kind,
        "s": draw(st.sampled_from(BINANCE_SYMBOLS)), "S": draw(st.sampled_from(["BUY", "SELL"])),
        "ps": draw(st.sampled_from(["BOTH", "LONG", "SHORT"])), "f": "GTC",
        "q": "0" if close_all else _dec(draw(binance_sizes), 3), "X": status,
        "ai": str(draw(st.integers(1, 10**12))) if status in ("TRIGGERED", "FINISHED") else "",
        "ap": "0", "aq": "0", "act": "0", "tp": draw(prices), "p": draw(prices) if kind in ("STOP", "TAKE_PROFIT") else "0",
        "V": "EXPIRE_MAKER", "wt": "CONTRACT_PRICE", "pm": "NONE", "cp": close_all, "pP": False,
        "R": draw(st.booleans()), "tt": t if status in ("TRIGGERED", "FINISHED") else 0, "gtd": 0,
    }  # fmt: skip
    if kind == "TRAILING_STOP_MARKET" and draw(st.booleans()):  # the rate is not always pushed
        o.update(cr=_dec(draw(st.integers(1, 100)), 1), AP=draw(prices))
    if status == "REJECTED":
        o["rm"] = "Reduce Only reject"
    if draw(st.booleans()):  # an algo update may carry its own time; if not, the event's stands in
        o["T"] = t - 1
    return {"e": "ALGO_UPDATE", "E": t + 1, "T": t, "o": o}


@st.composite
def binance_account_update(draw: st.DrawFn) -> dict[str, Any]:
    modes = ["BOTH"] if draw(st.booleans()) else ["LONG", "SHORT"]  # an account is in one mode
    keys = draw(
        st.lists(st.tuples(st.sampled_from(BINANCE_SYMBOLS), st.sampled_from(modes)), min_size=1, max_size=3,
                 unique=True)
    )  # fmt: skip
    entries = []
    for sym, ps in keys:
        n = draw(st.integers(-100_000, 100_000) if ps == "BOTH" else st.integers(0, 100_000))
        if ps == "SHORT":
            n = -n
        entries.append({
            "s": sym, "pa": _dec(n, 3), "ep": draw(prices) if n else "0", "bep": "0",
            "cr": _dec(draw(st.integers(-10**9, 10**9)), 4), "up": _dec(draw(st.integers(-10**9, 10**9)), 4),
            "mt": draw(st.sampled_from(["cross", "isolated"])), "iw": "0", "ps": ps, "ma": "USDT",
        })  # fmt: skip
    t = draw(times)
    balances = [{"a": "USDT", "wb": "1000", "cw": "1000", "bc": "0"}]
    return {"e": "ACCOUNT_UPDATE", "E": t + 2, "T": t, "a": {"m": "ORDER", "B": balances, "P": entries}}


@st.composite
def binance_ticker(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "e": "24hrMiniTicker", "E": draw(times), "s": draw(st.sampled_from(BINANCE_SYMBOLS)), "c": draw(prices),
        "o": draw(prices), "h": draw(prices), "l": draw(prices), "v": "12.5", "q": "750000",
    }  # fmt: skip


@st.composite
def binance_mark(draw: st.DrawFn) -> dict[str, Any]:
    t = draw(times)
    return {
        "e": "markPriceUpdate", "E": t, "s": draw(st.sampled_from(BINANCE_SYMBOLS)), "p": draw(prices),
        "ap": draw(prices), "P": draw(prices), "i": draw(prices), "r": "0.0001", "T": t + 3_600_000,
    }  # fmt: skip


PRIVATE = {
    "okx": st.one_of(okx_orders_push(), okx_algo_push(), okx_positions_push()),
    "binance": st.one_of(binance_order_update(), binance_algo_update(), binance_account_update()),
}
TICKS = {
    "okx": st.one_of(okx_ticker_push(), okx_mark_push()),
    "binance": st.one_of(binance_ticker(), binance_mark()),
}
