"""The account book's folding rules (domain/account_book.py): whatever the interleaving of stream updates
(lost, duplicated, reordered) and REST snapshots (slow, taken before or after updates), the book converges on
the exchange's last state, and each change the book sees is one event."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from position_order_service.domain.account_book import AccountBook, Plan
from position_order_service.domain.enums import OrderSide, OrderStatus, OrderType, PositionSide
from position_order_service.domain.models import Order, Position
from position_order_service.domain.reconcile import PROVISIONAL, SIZE_UNKNOWN

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTC-USDT-SWAP", "ETH-USDT-SWAP")


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def order(oid: str, status: OrderStatus, filled: str, t: int, price: str = "59000", **kw: Any) -> Order:
    return Order(exchange_order_id=oid, client_order_id=kw.pop("cid", None), user_id="u1", exchange="okx",
                 symbol=SYMBOLS[0], side=OrderSide.BUY, order_type=OrderType.LIMIT, quantity=Decimal("0.03"),
                 price=Decimal(price), filled_qty=Decimal(filled), status=status, created_at=at(0), updated_at=at(t),
                 **kw)  # fmt: skip


def position(symbol: str, size: str, t: int, side: PositionSide = PositionSide.LONG) -> Position:
    return Position(user_id="u1", exchange="okx", symbol=symbol, side=side, size=Decimal(size),
                    entry_price=Decimal("100") if Decimal(size) else Decimal(0), updated_at=at(t),
                    status="open" if Decimal(size) else "closed", closed_at=None if Decimal(size) else at(t))  # fmt: skip


def run(book: AccountBook, plan: Plan, events: list[tuple[str, str]]) -> Plan:
    for w in plan.orders:
        if w.event:
            events.append((w.order.order_id, w.event))
    for p in plan.positions:
        if p.event:
            events.append((p.position.symbol, p.event))
    book.commit(plan)
    return plan


# -- targeted cases ------------------------------------------------------------------------------------------
def test_a_snapshot_older_than_a_stream_update_does_not_close_the_position() -> None:
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    run(book, book.fold_snapshot([], [], False, 0, None, {}), events)
    started = 1  # the snapshot starts; then the stream shows a position opening (arrival 2)
    run(book, book.fold_positions([position(SYMBOLS[0], "0.01", 10)], 2), events)
    plan = run(book, book.fold_snapshot([], [], False, started, None, {}), events)
    assert book.position(SYMBOLS[0], "long") is not None and not plan.confirm_snapshot
    assert events == [(SYMBOLS[0], "position.opened")]


def test_a_position_is_closed_only_when_two_later_snapshots_agree_and_at_exchange_time() -> None:
    book = AccountBook("u1", "okx")
    book.load([], [position(SYMBOLS[0], "0.01", 10)])
    events: list[tuple[str, str]] = []
    first = run(book, book.fold_snapshot([], [], False, 0, None, {}), events)
    assert book.position(SYMBOLS[0], "long") is not None and first.confirm_snapshot
    second = run(book, book.fold_snapshot([], [], False, 0, at(500), {}), events)
    assert book.position(SYMBOLS[0], "long") is None and events == [(SYMBOLS[0], "position.closed")]
    assert second.positions[0].position.updated_at == at(500)  # the snapshot's exchange time, not ours


def test_a_gone_order_is_looked_up_after_two_misses_and_lost_only_if_not_found() -> None:
    book = AccountBook("u1", "okx")
    book.load([order("1", OrderStatus.OPEN, "0", 5)], [])
    events: list[tuple[str, str]] = []
    assert run(book, book.fold_snapshot([], [], False, 0, None, {}), events).lookups == []
    plan = run(book, book.fold_snapshot([], [], False, 0, None, {}), events)
    assert [o.order_id for o in plan.lookups] == ["1"]
    run(book, book.fold_final_state("1", order("1", OrderStatus.FILLED, "0.03", 9), {}), events)
    assert events == [("1", "order.filled")]
    book.load([order("2", OrderStatus.OPEN, "0", 5)], [])
    for _ in range(2):
        run(book, book.fold_snapshot([], [], False, 0, None, {}), events)
    run(book, book.fold_final_state("2", None, {}), events)
    lost = book.order("2")
    assert lost is not None and lost.status is OrderStatus.CANCELLED and lost.metadata["lost"]
    assert lost.updated_at == at(5) + timedelta(milliseconds=1)


def test_a_reply_is_provisional_and_the_report_of_the_same_status_is_silent() -> None:
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    reply = order("7", OrderStatus.OPEN, "0", 999, price="59475.0", cid="c7")
    plan = run(book, book.fold_reply(reply, None, 1), events)
    assert not plan.orders[0].versioned and plan.orders[0].order.metadata[PROVISIONAL]
    report = order("7", OrderStatus.OPEN, "0", 3, price="59475", cid="c7", fee=Decimal("0.1"))
    run(book, book.fold_orders([report], 2, {}), events)
    run(
        book,
        book.fold_orders([order("7", OrderStatus.FILLED, "0.03", 4, price="59475", cid="c7")], 3, {}),
        events,
    )
    assert events == [("7", "order.created"), ("7", "order.filled")]
    known = book.order("7")
    assert known is not None and PROVISIONAL not in known.metadata and known.fee == Decimal("0.1")


def test_a_reply_after_the_report_only_links_ids() -> None:
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    run(book, book.fold_orders([order("8", OrderStatus.FILLED, "0.03", 3)], 1, {}), events)
    plan = run(book, book.fold_reply(order("8", OrderStatus.OPEN, "0", 999, cid="c8"), None, 2), events)
    assert [w.event for w in plan.orders] == [None]
    known = book.order("8")
    assert known is not None and known.status is OrderStatus.FILLED and known.client_order_id == "c8"
    assert events == [("8", "order.filled")]


def test_fee_only_changes_are_silent_and_numbers_compare_by_value() -> None:
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    run(book, book.fold_orders([order("9", OrderStatus.OPEN, "0", 3, price="59475.0")], 1, {}), events)
    plan = run(book, book.fold_orders([order("9", OrderStatus.OPEN, "0", 3, price="59475")], 2, {}), events)
    assert plan.orders == []  # the same order, spelled differently
    plan = run(book, book.fold_orders([order("9", OrderStatus.OPEN, "0", 4, price="59475")], 2, {}), events)
    assert [w.event for w in plan.orders] == [None]  # a later time alone: written, no event
    plan = run(
        book,
        book.fold_orders([order("9", OrderStatus.OPEN, "0", 5, "59475", fee=Decimal("0.2"))], 3, {}),
        events,
    )
    assert [w.event for w in plan.orders] == [None]
    assert events == [("9", "order.created")]


def test_a_mark_changes_no_version_and_an_older_exchange_report_still_applies() -> None:
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    run(book, book.fold_positions([position(SYMBOLS[0], "0.01", 10)], 1), events)
    marks = run(book, book.fold_mark(SYMBOLS[0], Decimal("105")), events)
    assert marks.marks and book.positions[(SYMBOLS[0], "long")].position.updated_at == at(10)
    run(book, book.fold_positions([position(SYMBOLS[0], "0.02", 11)], 2), events)
    p = book.position(SYMBOLS[0], "long")
    assert p is not None and p.size == Decimal("0.02")


def test_one_way_flip_closes_the_other_side_with_the_exchange_s_version() -> None:
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    run(book, book.fold_snapshot([], [position(SYMBOLS[0], "0.01", 10)], False, 0, None, {}), events)
    run(book, book.fold_positions([position(SYMBOLS[0], "0.02", 20, PositionSide.SHORT)], 1), events)
    assert book.position(SYMBOLS[0], "long") is None
    closed = book.positions[(SYMBOLS[0], "long")].position
    assert closed.updated_at == at(20)


# -- any interleaving converges ----------------------------------------------------------------------------
ORDER_STEPS = [(OrderStatus.OPEN, "0"), (OrderStatus.PARTIALLY_FILLED, "0.01"), (OrderStatus.FILLED, "0.03")]
Op = tuple[str, int]


class Exchange:
    """A tiny exchange: three orders that progress, two position slots that open, change and close."""

    def __init__(self) -> None:
        self.t = 0
        self.orders: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}

    def tick(self) -> int:
        self.t += 1
        return self.t

    def change_order(self, i: int) -> Order:
        oid = str(i)
        cur = self.orders.get(oid)
        if cur is None:
            new = order(oid, OrderStatus.OPEN, "0", self.tick())
        elif cur.status.is_terminal:
            return cur
        elif i == 2 and cur.status is OrderStatus.OPEN:
            new = order(oid, OrderStatus.CANCELLED, "0", self.tick())
        else:
            step = [s for s, _ in ORDER_STEPS].index(cur.status) + 1
            new = order(oid, ORDER_STEPS[step][0], ORDER_STEPS[step][1], self.tick())
        self.orders[oid] = new
        return new

    def change_position(self, i: int, size: int) -> Position:
        p = position(SYMBOLS[i], str(Decimal(size) / 100), self.tick())
        self.positions[SYMBOLS[i]] = p
        return p

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status.is_active]

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.size > 0]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(0, 2)),
        st.tuples(st.just("position"), st.integers(0, 1) | st.integers(0, 3).map(lambda n: n * 10 + 1)),
        st.tuples(st.sampled_from(["deliver", "drop", "duplicate"]), st.integers(0, 3)),
        st.tuples(st.sampled_from(["snap_start", "snap_deliver"]), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_any_interleaving_of_stream_and_snapshots_converges_on_the_exchange(script: list[Op]) -> None:
    ex = Exchange()
    book = AccountBook("u1", "okx")
    events: list[tuple[str, str]] = []
    pending: list[tuple[str, Any]] = []  # stream messages in flight
    snaps: list[tuple[list[Order], list[Position], int, datetime]] = []
    arrival = 0

    def deliver(kind: str, item: Any) -> None:
        nonlocal arrival
        arrival += 1
        if kind == "order":
            plan = book.fold_orders([item], arrival, {})
        else:
            plan = book.fold_positions([item], arrival)
        run(book, plan, events)

    def deliver_snapshot(snap: tuple[list[Order], list[Position], int, datetime]) -> None:
        plan = run(book, book.fold_snapshot(snap[0], snap[1], False, snap[2], snap[3], {}), events)
        for o in plan.lookups:  # the REST lookup of a missing order: its final state
            run(book, book.fold_final_state(o.order_id, ex.orders.get(o.order_id), {}), events)

    for op, n in script:
        if op == "order":
            pending.append(("order", ex.change_order(n)))
        elif op == "position":
            i, size = (n, 1) if n < 2 else (n % 2, n // 10)
            pending.append(("position", ex.change_position(i, size)))
        elif op in ("deliver", "drop", "duplicate") and pending:
            k = min(n, len(pending) - 1)
            item = pending[k] if op == "duplicate" else pending.pop(k)
            if op != "drop":
                deliver(*item)
        elif op == "snap_start":
            snaps.append((ex.open_orders(), ex.open_positions(), arrival, at(ex.t)))
        elif op == "snap_deliver" and snaps:
            deliver_snapshot(snaps.pop(0))
    # the quiet period: what is in flight arrives, then snapshots taken now agree
    for item in pending:
        deliver(*item)
    for snap in snaps:
        deliver_snapshot(snap)
    for _ in range(2):
        deliver_snapshot((ex.open_orders(), ex.open_positions(), arrival, at(ex.t)))

    for symbol in SYMBOLS:
        want = ex.positions.get(symbol)
        got = book.position(symbol, "long")
        assert (got.size if got else Decimal(0)) == (want.size if want else Decimal(0)), symbol
    for oid, want_o in ex.orders.items():
        got_o = book.order(oid)
        if got_o is None:  # opened and finished while every report of it was lost: no open list shows it
            assert not want_o.status.is_active, oid
            continue
        assert (got_o.status, got_o.filled_qty) == (want_o.status, want_o.filled_qty), oid
    # one event per change the book saw: never the same event twice in a row for one record
    for key in {k for k, _ in events}:
        seq = [e for k, e in events if k == key]
        assert all(a != b or a == "position.updated" for a, b in itertools.pairwise(seq)), seq


def test_finished_orders_are_remembered_up_to_a_bound_and_read_back_when_needed() -> None:
    book = AccountBook("u1", "okx", finished_kept=3)
    events: list[tuple[str, str]] = []
    for i in range(6):
        run(book, book.fold_orders([order(str(i), OrderStatus.FILLED, "0.03", i + 1)], i + 1, {}), events)
    assert len(book.finished) == 3 and book.order("0") is None and book.order("5") is not None
    assert book.unknown(["0", "5"]) == ["0"]  # the actor reads the stored record of "0" before folding


# -- close-all algos: the size is the child's, and a bot never sees the stand-in as a fill -------------------
MIN = Decimal("0.0001")


def close_all(status: OrderStatus, t: int, **meta: Any) -> Order:
    """A close-all algo as the parsers report it: no size of its own, the minimum standing in."""
    return Order(exchange_order_id="A1", user_id="u1", exchange="okx", symbol=SYMBOLS[0], side=OrderSide.SELL,
                 order_type=OrderType.STOP_LOSS, quantity=MIN, trigger_price=Decimal("59000"),
                 filled_qty=MIN if status is OrderStatus.FILLED else Decimal(0), status=status,
                 created_at=at(0), updated_at=at(t),
                 metadata={"algo": True, "close_position": True, SIZE_UNKNOWN: True, **meta})  # fmt: skip


def child(t: int) -> Order:
    return Order(exchange_order_id="C1", user_id="u1", exchange="okx", symbol=SYMBOLS[0], side=OrderSide.SELL,
                 order_type=OrderType.MARKET, quantity=Decimal("0.03"), filled_qty=Decimal("0.03"),
                 avg_fill_price=Decimal("58890"), status=OrderStatus.FILLED, created_at=at(t), updated_at=at(t),
                 metadata={"algo_id": "A1"})  # fmt: skip


def test_a_stand_in_fill_whose_child_is_known_is_rewritten_not_published() -> None:
    """The child came first; then the algo's report still claims the stand-in (a REST read of it, say): the
    plan writes the algo once, with the child's size, and one order.filled."""
    book = AccountBook("u1", "okx")
    book.load([close_all(OrderStatus.OPEN, 5)], [])
    events: list[tuple[str, str]] = []
    run(book, book.fold_orders([child(10)], 1, {}), events)
    plan = run(
        book, book.fold_orders([close_all(OrderStatus.FILLED, 10, child_order_id="C1")], 2, {}), events
    )
    algo_writes = [w for w in plan.orders if w.order.order_id == "A1"]
    assert len(algo_writes) == 1 and algo_writes[0].order.filled_qty == Decimal("0.03")
    assert events == [("C1", "order.filled"), ("A1", "order.filled")]
    stored = book.order("A1")
    assert (
        stored is not None
        and stored.avg_fill_price == Decimal("58890")
        and SIZE_UNKNOWN not in stored.metadata
    )


def test_a_fired_algo_without_its_size_waits_open_and_its_child_completes_it() -> None:
    """The gateway could not read the child: the fired algo is open with no fill claim (a silent write); the
    child's report then fills it with the child's size."""
    book = AccountBook("u1", "okx")
    book.load([close_all(OrderStatus.OPEN, 5)], [])
    events: list[tuple[str, str]] = []
    fired = close_all(OrderStatus.OPEN, 10, child_order_id="C1", venue_state="effective")
    run(book, book.fold_orders([fired], 1, {}), events)
    assert events == []
    run(book, book.fold_orders([child(11)], 2, {}), events)
    assert events == [("C1", "order.filled"), ("A1", "order.filled")]
    stored = book.order("A1")
    assert stored is not None and stored.status is OrderStatus.FILLED and stored.filled_qty == Decimal("0.03")
    assert SIZE_UNKNOWN not in stored.metadata
    # a later report that knows the size changes nothing; the stand-in flag does not come back
    sized = stored.model_copy(update={"metadata": {k: v for k, v in stored.metadata.items()}})
    assert run(book, book.fold_orders([sized], 3, {}), events).orders == []


def test_a_child_s_partial_report_after_the_algo_filled_never_shrinks_it() -> None:
    """The algo's push came first, sized (its child read over REST, or OKX's actualSz): filled 0.03. The child's
    own pushes then arrive late, partially filled 0.01 first: the algo stays filled 0.03, with one order.filled."""
    book = AccountBook("u1", "okx")
    book.load([close_all(OrderStatus.OPEN, 5)], [])
    events: list[tuple[str, str]] = []
    sized = close_all(OrderStatus.FILLED, 10, child_order_id="C1").model_copy(
        update={"quantity": Decimal("0.03"), "filled_qty": Decimal("0.03"),
                "metadata": {"algo": True, "close_position": True, "child_order_id": "C1"}}
    )  # fmt: skip
    run(book, book.fold_orders([sized], 1, {}), events)
    part = child(11).model_copy(
        update={"filled_qty": Decimal("0.01"), "status": OrderStatus.PARTIALLY_FILLED}
    )
    run(book, book.fold_orders([part], 2, {}), events)
    algo = book.order("A1")
    assert algo is not None and algo.status is OrderStatus.FILLED and algo.filled_qty == Decimal("0.03")
    run(book, book.fold_orders([child(12)], 3, {}), events)
    assert [e for e in events if e[0] == "A1"] == [("A1", "order.filled")]


def test_a_fired_algo_whose_child_ends_without_a_fill_is_cancelled_not_left_open() -> None:
    """The child (a reduce-only close) was cancelled with nothing filled (the position was already closed): the
    algo waiting open for its size ends, cancelled, filled 0, instead of showing a live stop for good."""
    book = AccountBook("u1", "okx")
    book.load([close_all(OrderStatus.OPEN, 5)], [])
    events: list[tuple[str, str]] = []
    fired = close_all(OrderStatus.OPEN, 10, child_order_id="C1", venue_state="effective")
    run(book, book.fold_orders([fired], 1, {}), events)
    dead = child(11).model_copy(
        update={"filled_qty": Decimal(0), "avg_fill_price": None, "status": OrderStatus.CANCELLED}
    )
    run(book, book.fold_orders([dead], 2, {}), events)
    algo = book.order("A1")
    assert algo is not None and algo.status is OrderStatus.CANCELLED and algo.filled_qty == 0
    assert algo.metadata.get("child_unfilled") is True and SIZE_UNKNOWN not in algo.metadata
    assert ("A1", "order.cancelled") in events
