"""The chaos driver: a seeded sequence of exchange, service and infrastructure actions against the service's
object graph (bootstrap.build_graph, as the app builds it), then quiet periods in which the service must
converge to the exchange and the invariants must hold.

One seed gives one action sequence (random.Random(seed)); the asyncio interleaving around it follows real
time, so a replay runs the same actions, not always the same schedule."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from redis.exceptions import RedisError

from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.exchanges.base import GatewayError
from position_order_service.services.commands import CommandError
from position_order_service.sim.engine import EngineError, Event, OrderEvent, OrderEventKind
from position_order_service.store import Store
from position_order_service.store.connection import wait_until_loaded

from ..services.harness import Harness
from .redis_proc import RedisProc

log = logging.getLogger(__name__)
D = Decimal
PRIVATE = ["orders", "positions", "account"]
TICK = D("0.1")
QUIET_MAX_S = 20.0  # how long a quiet period may take to converge before its differences are violations
EXPECTED = (CommandError, GatewayError, RedisError, ConnectionError, OSError, TimeoutError)
LOT = {
    "okx": D(1),
    "binance": D("0.002"),
}  # one unit of the random sizes, in venue units (Binance: min notional)
SNAPSHOT_PATHS = {
    "okx": ["/api/v5/account/positions", "/api/v5/trade/orders-pending"],
    "binance": ["/fapi/v3/positionRisk", "/fapi/v1/openOrders"],
}


@dataclass
class StopModel:
    stop_id: str
    side: str  # long | short
    rate: Decimal
    extreme: Decimal | None = None  # the extreme of the prices held through quiet periods since creation


@dataclass
class Stats:
    steps: int = 0
    quiet_periods: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    command_errors: Counter[str] = field(default_factory=Counter)
    outcome: dict[str, int] = field(default_factory=dict)  # what the run amounted to (its last check)


class Violation(AssertionError):
    pass


class Chaos:
    def __init__(
        self,
        h: Harness,
        redis: RedisProc,
        seed: int,
        user: str,
        hedged: bool = False,
        redis_faults: bool = True,
        observer: Store | None = None,
    ) -> None:
        self.h = h
        self.ex = h.exchange
        self.sym = h.symbol
        self.lot = LOT[self.ex]
        self.observer = observer  # the test's own Redis client: reads while the service is killed
        self.redis = redis
        self.rng = random.Random(seed)
        self.seed = seed
        self.user = user
        self.hedged = hedged  # long/short (hedge) position mode: both sides at once, closing by side
        self.key = h.account(user, position_mode="long_short" if hedged else "net", usdt="10000000")
        self.ct = h.engine.instrument(self.sym).contract_value
        self.price = D(60000)
        self.redis_faults = redis_faults
        self.stats = Stats()
        self.new_by_clid: Counter[str] = Counter()  # every order the exchange accepted, by client order id
        self.stops: dict[str, StopModel] = {}
        self.pending: set[asyncio.Task[Any]] = set()
        self.crashes: list[str] = []
        self.redis_down_steps = 0
        self._unsubscribe = h.engine.subscribe(self._on_engine_event)

    def _on_engine_event(self, ev: Event) -> None:
        if isinstance(ev, OrderEvent) and ev.kind is OrderEventKind.NEW and ev.order.client_order_id:
            if ev.account_id == self.h.engine.account_by_key(self.key).account_id:
                self.new_by_clid[ev.order.client_order_id] += 1

    def close(self) -> None:
        self._unsubscribe()

    # -- set-up -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.h.price(str(self.price))
        self.h.engine.set_max_fill_per_step(self.sym, 3 * self.lot)  # orders over 3 lots fill in parts
        # the exchange's clock is off ours by a constant (a clock that runs backwards would reorder the
        # exchange's own versions: no venue does that)
        self.faults({"clock_offset_ms": self.rng.randint(-1500, 1500), "seed": self.seed})
        await self.h.track(self.user)

    def faults(self, body: dict[str, Any]) -> None:
        self.h.engine.faults.update(body)

    # -- the run ------------------------------------------------------------------------------------------
    async def run(self, steps: int, quiet_every: int) -> Stats:
        await self.start()
        for i in range(steps):
            if i == steps // 2 and self.h.rebuild is not None and not self.stats.actions["service_kill"]:
                self.stats.actions["service_kill"] += 1  # every run has one kill at least
                await self.service_kill()
            await self.step()
            self.stats.steps += 1
            if (i + 1) % quiet_every == 0 or i == steps - 1:
                await self.quiet(i + 1)
        events = await self.h.events(self.user)
        kinds = Counter(str(e["event_type"]) for e in events)
        self.stats.outcome = {
            "exchange_fills": len(self.h.engine.fills(self.key)),
            "orders_sent_by_service": sum(self.new_by_clid.values()),
            "events": len(events),
            **{k: kinds[k] for k in ("fill.created", "order.created", "position.opened", "position.closed",
                                     "trailing_stop.created", "trailing_stop.triggered", "trailing_stop.executed", "trailing_stop.failed",
                                     "trailing_stop.cancelled")},
        }  # fmt: skip
        return self.stats

    async def step(self) -> None:
        actions: list[tuple[float, Any]] = [
            (30, self.move_price),
            (8, self.external_limit),
            (4, self.external_market),
            (3, self.external_cancel),
            (6, self.service_order),
            (3, self.service_cancel),
            (3, self.trailing_stop),
            (2, self.flip_or_close),
            (0.15 if self.h.rebuild is not None else 0, self.service_kill),
            (0.6, self.reconnect),
            (1.2, self.push_faults),
            (0.6, self.slow_snapshot),
            (0.6 if self.redis_faults else 0, self.redis_outage),
            (1, self.pause),
        ]
        total = sum(w for w, _ in actions)
        r = self.rng.random() * total
        for w, action in actions:
            r -= w
            if r < 0:
                self.stats.actions[action.__name__] += 1
                await action()
                break
        if self.redis_down_steps:
            self.redis_down_steps -= 1
            if self.redis_down_steps == 0:
                self.redis.heal()
        await asyncio.sleep(0)

    # -- exchange side ------------------------------------------------------------------------------------
    def _round(self, p: Decimal) -> Decimal:
        return (p / TICK).to_integral_value() * TICK

    async def move_price(self) -> None:
        jump = self.rng.random() < 0.1
        delta = D(self.rng.randint(-400, 400)) if jump else D(self.rng.randint(-40, 40))
        self.price = max(D(50000), min(D(70000), self._round(self.price + delta)))
        self.h.price(str(self.price))
        if self.rng.random() < 0.3:
            await asyncio.sleep(0.02)  # a price the service sees before the next one

    def _qty(self) -> Decimal:
        return D(self.rng.randint(1, 8)) * self.lot

    def _away(self) -> Decimal:
        return self._round(D(self.rng.randint(5, 300)))

    async def external_limit(self) -> None:
        side = self.rng.choice(["buy", "sell"])
        px = self.price - self._away() if side == "buy" else self.price + self._away()
        pos_side = self._pos_side()
        self._engine_call(
            lambda: self.h.engine.place_order(
                self.key, self.sym, side, self._qty(), ord_type="limit", px=str(px), pos_side=pos_side
            )
        )

    async def external_market(self) -> None:
        side = self.rng.choice(["buy", "sell"])
        reduce = not self.hedged and self.rng.random() < 0.3
        pos_side = self._pos_side()
        self._engine_call(
            lambda: self.h.engine.place_order(
                self.key, self.sym, side, self._qty(), reduce_only=reduce, pos_side=pos_side
            )
        )

    def _pos_side(self) -> str | None:
        return self.rng.choice(["long", "short"]) if self.hedged else None

    def _positions(self) -> dict[str, Decimal]:
        """The exchange's open positions by side (long/short), in venue units."""
        out = {}
        for p in self.h.engine.positions(self.key):
            if p.qty != 0:
                side = p.pos_side.value if p.pos_side.value != "net" else ("long" if p.qty > 0 else "short")
                out[side] = abs(p.qty)
        return out

    async def flip_or_close(self) -> None:
        """One order that ends a position: in one-way mode mostly a flip (larger than the position, the other
        way: long -> short in a single fill), else a close of exactly its size; through the exchange or the
        service's command path."""
        open_ = self._positions()
        if not open_:
            return await self.external_market()
        side = self.rng.choice(sorted(open_))
        size = open_[side]
        flip = not self.hedged and self.rng.random() < 0.7
        qty = size + self._qty() if flip else size
        order_side = "sell" if side == "long" else "buy"
        pos_side = side if self.hedged else None
        if self.rng.random() < 0.3 and self.redis.up and not self.h.killed:
            self.stats.actions["flip_by_service" if flip else "close_by_service"] += 1
            self._spawn(
                "create_order",
                self.h.orders.create_order(self.user, self.ex, self.sym, order_side, "market", qty * self.ct,
                                           position_side=pos_side),
            )  # fmt: skip
            return
        self.stats.actions["flip" if flip else "close"] += 1
        self.h.engine.set_max_fill_per_step(self.sym, None)  # the whole order in one fill
        try:
            self._engine_call(
                lambda: self.h.engine.place_order(self.key, self.sym, order_side, qty, pos_side=pos_side)
            )
        finally:
            self.h.engine.set_max_fill_per_step(self.sym, 3 * self.lot)

    async def external_cancel(self) -> None:
        open_ = self.h.engine.open_orders(self.key, self.sym)
        if open_:
            order = self.rng.choice(open_)
            self._engine_call(lambda: self.h.engine.cancel_order(self.key, order_id=order.order_id))

    def _engine_call(self, call: Any) -> None:
        try:
            call()
        except EngineError as exc:
            self.stats.command_errors[f"engine:{exc.code}"] += 1

    # -- service side (the command path; run concurrently with the next steps, as a bot's calls are) ------
    def _spawn(self, name: str, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                async with asyncio.timeout(60):
                    await coro
            except EXPECTED as exc:
                self.stats.command_errors[f"{name}:{type(exc).__name__}"] += 1
            except Exception as exc:  # a command that crashed, or hung for a minute
                self.crashes.append(f"{name}: {type(exc).__name__}: {exc}")

        task = asyncio.create_task(run())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def service_order(self) -> None:
        if not self.redis.up and self.rng.random() < 0.8:
            return  # a few commands while Redis is away (each waits for the socket timeout)
        side = self.rng.choice(["buy", "sell"])
        if self.rng.random() < 0.4:
            kind, px = "market", None
        else:
            kind = "limit"
            px = self.price - self._away() if side == "buy" else self.price + self._away()
        qty = self._qty() * self.ct
        reduce = not self.hedged and kind == "market" and self.rng.random() < 0.3
        pos_side = self._pos_side()
        self._spawn(
            "create_order",
            self.h.orders.create_order(
                self.user,
                self.ex,
                self.sym,
                side,
                kind,
                qty,
                price=px,
                reduce_only=reduce,
                position_side=pos_side,
            ),
        )

    async def service_cancel(self) -> None:
        if not self.redis.up:
            return
        open_ = self.h.engine.open_orders(self.key, self.sym)
        if open_:
            order = self.rng.choice(open_)
            self._spawn(
                "cancel_order", self.h.orders.cancel_order(self.user, self.ex, order.order_id, self.sym)
            )

    async def trailing_stop(self) -> None:
        if not self.redis.up:
            return
        sides = [
            "long" if p.qty > 0 else "short" if p.pos_side.value == "net" else p.pos_side.value
            for p in self.h.engine.positions(self.key)
            if p.qty != 0
        ]
        sides = [s for s in sides if not any(m.side == s for m in self.stops.values())]
        if not sides:
            return
        side = self.rng.choice(sides)
        rate = D(self.rng.choice(["0.002", "0.005", "0.01", "0.02"]))
        stop = TrailingStop.model_validate(
            {"user_id": self.user, "exchange": self.ex, "symbol": self.sym, "side": side,
             "callback_rate": str(rate)}
        )  # fmt: skip
        self.stops[stop.id] = StopModel(stop.id, side, rate)

        async def create() -> None:
            try:
                await self.h.trailing.create(stop)
            except BaseException:
                self.stops.pop(stop.id, None)
                raise

        self._spawn("trailing_stop", create())

    # -- service kills ------------------------------------------------------------------------------------
    async def service_kill(self) -> None:
        """The service graph dies as with kill -9; the exchange goes on without it (orders placed, cancelled
        and filled, positions closed and flipped); a new graph on the same Redis must then converge: positions
        and open orders as the exchange's, the ids of what survived unchanged, each downtime fill one event."""
        if not self.redis.up or self.observer is None:
            return  # (a kill during a Redis outage: its in-flight writes land when Redis answers again)
        observer = self.observer
        await observer.redis.connection_pool.disconnect()  # (connections from before a Redis restart)
        await wait_until_loaded(observer.redis)
        ids = {p.side.value: p.id for p in await observer.positions.list(self.user, self.ex) if p.is_open}
        unowned = await self.h.kill()
        stream = observer.keys.event_stream(self.user)
        tail = await observer.redis.xrevrange(stream, count=1)
        after = tail[0][0].decode() if tail else "0-0"  # events after this one came from a dead service
        survivors = set(self._positions())
        for _ in range(self.rng.randint(3, 12)):
            action = self.rng.choice([self.move_price, self.move_price, self.external_limit, self.external_market,
                                      self.external_cancel, self.flip_or_close])  # fmt: skip
            self.stats.actions[f"down:{action.__name__}"] += 1
            await action()
            survivors &= set(self._positions())  # a side that closed or flipped did not survive
            await asyncio.sleep(0.02)
        late = await observer.redis.xrange(stream, min=f"({after}")
        if late:
            kinds = Counter(orjson.loads(f[b"data"])["event_type"] for _, f in late)
            raise Violation(
                f"the killed service emitted {len(late)} event(s) while it was down: {dict(kinds)}; tasks it "
                f"ran outside its supervisor: {unowned}; still running: {[t.get_name() for t in self.h.graph_tasks()]}"
            )
        await self.h.restart(self.user)
        await self.settle(self.stats.steps)
        survivors &= set(self._positions())  # (a stop the price crossed while it was down may close one)
        now = {p.side.value: p.id for p in await self.h.store.positions.list(self.user, self.ex) if p.is_open}
        changed = {s: (ids[s], now.get(s)) for s in survivors if s in ids and now.get(s) != ids[s]}
        if changed:
            raise Violation(f"positions that survived a kill changed id (side: before, after): {changed}")
        await self.after_quiet()

    # -- infrastructure -----------------------------------------------------------------------------------
    async def reconnect(self) -> None:
        await self.h.disconnect(self.user)

    async def push_faults(self) -> None:
        channels = self.rng.sample(PRIVATE, self.rng.randint(1, len(PRIVATE)))
        kind = self.rng.choice(["ws_drop", "ws_duplicate", "ws_reorder"])
        rule: dict[str, Any] = {"rate": round(self.rng.uniform(0.05, 0.5), 2), "channels": channels}
        if self.rng.random() < 0.5:
            rule = {"count": self.rng.randint(1, 3), "channels": channels}
        self.faults({kind: rule})

    async def slow_snapshot(self) -> None:
        if self.h.sim is None:  # the paper gateway has no REST to hold
            return await self.reconnect()
        path = self.rng.choice(SNAPSHOT_PATHS[self.ex])
        self.faults({"hold_responses": [{"path": path, "ms": self.rng.randint(200, 1500), "count": 1}]})
        await self.reconnect()  # a reconnect's snapshot is the one held back

    async def redis_outage(self) -> None:
        if not self.redis.up:
            return
        if self.rng.random() < 0.5:
            self.redis.freeze()
        else:
            self.redis.stop()
        self.redis_down_steps = self.rng.randint(5, 60)

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.01, 0.15))

    # -- quiet periods and invariants ---------------------------------------------------------------------
    async def quiet(self, step: int) -> None:
        await self.settle(step)
        await self.after_quiet()

    async def settle(self, step: int) -> None:
        """The faults stop; within QUIET_MAX_S the service must equal the exchange."""
        self.stats.quiet_periods += 1
        self.redis.heal()
        self.redis_down_steps = 0
        await self._redis_answers()
        offset = self.h.engine.faults.clock_offset_ms
        self.h.engine.faults.clear()
        self.faults({"clock_offset_ms": offset})  # (the exchange's clock stays where it is)
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=70)
        await self.converge(step)

    async def after_quiet(self) -> None:
        """Each quiet period ends by checking a live stop fires once its price is crossed."""
        step = self.stats.steps
        self.held_price()
        if await self.cross_a_stop():
            await self.converge(step)
            self.held_price()

    async def converge(self, step: int) -> None:
        """Within QUIET_MAX_S the invariants must hold; whatever still differs then is a violation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIET_MAX_S
        problems: list[str] = []
        pushed = 0.0
        while True:
            # the held price, pushed again when the service has not seen it (its ticker socket was down). Not
            # on every round: each price step also fills a resting remainder again (max_fill_per_step)
            if not self.service_saw_price() and loop.time() - pushed > 1.0:
                self.h.price(str(self.price))
                pushed = loop.time()
            try:
                problems = await self.check()
            except RedisError as exc:  # (our own reads, on a connection from before a restart)
                problems = [f"Redis did not answer the check: {exc}"]
            if not problems or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
        problems += self.crashes
        self.crashes = []
        if problems:
            raise Violation(f"after step {step}:\n  " + "\n  ".join(problems) + "\n  " + self.diagnosis())

    def diagnosis(self) -> str:
        """What the account's actor and REST worker were doing (for the report of a violation)."""
        actor = self.h.accounts.get(self.user, self.ex)
        if actor is None:
            return "service: the account is not tracked"
        rest = actor.rest
        now = time.monotonic()
        due = None if rest._due is None else round(rest._due - now, 2)
        return (
            f"service: health {actor.health.as_dict()}, streams down {sorted(actor.health.streams_down)}, "
            f"inbox {len(actor.inbox)}, snapshots {actor.book.snapshots}, reconciled {actor.reconciled.is_set()}, "
            f"rest: next snapshot due in {due}s, silent for {round(now - rest._last_activity, 2)}s, "
            f"lookups queued {rest._lookups.qsize()}; jobs {sorted(j for j in self._jobs())}"
        )

    def _jobs(self) -> list[str]:
        actor = self.h.accounts.get(self.user, self.ex)
        scope = getattr(actor, "scope", None)
        jobs = getattr(scope, "jobs", None) or getattr(scope, "_jobs", None) or {}
        out = []
        for name, job in jobs.items() if isinstance(jobs, dict) else enumerate(jobs):
            task = getattr(job, "task", None)
            out.append(f"{getattr(job, 'name', name)}:{'done' if task is None or task.done() else 'running'}")
        return out

    def service_saw_price(self) -> bool:
        tick = self.h.prices.last(self.ex, self.sym)
        return tick is not None and tick.last == self.price

    def held_price(self) -> None:
        """The price held through a quiet period, once the service has seen it, bounds each live stop's
        extreme."""
        if not self.service_saw_price():
            return
        for model in self.stops.values():
            if model.extreme is None:
                model.extreme = self.price
            elif model.side == "long":
                model.extreme = max(model.extreme, self.price)
            else:
                model.extreme = min(model.extreme, self.price)

    async def cross_a_stop(self) -> bool:
        """Move the price past a live stop's trigger, computed from an extreme the service's is at least as far
        as: it must fire (the next convergence checks that it did, once, and that its close order filled)."""
        for model in self.stops.values():
            stop = await self.h.store.trailing_stops.get(self.user, self.ex, self.sym, model.side)
            if stop is None or stop.id != model.stop_id or not stop.state.is_live or model.extreme is None:
                continue
            if model.side == "long":
                self.price = self._round(model.extreme * (1 - model.rate)) - 10
            else:
                self.price = self._round(model.extreme * (1 + model.rate)) + 10
            self.h.price(str(self.price))
            self.stats.actions["cross_stop"] += 1
            return True
        return False

    async def _redis_answers(self) -> None:
        """A restarted Redis answers once its file is loaded; pooled connections from before it fail once."""
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                await self.h.store.redis.ping()
                return
            except RedisError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def check(self) -> list[str]:
        problems: list[str] = []
        h, user = self.h, self.user
        # 1. positions and open orders equal the exchange's
        eng_pos = {}
        for p in h.engine.positions(self.key):
            if p.qty != 0:
                side = p.pos_side.value if p.pos_side.value != "net" else ("long" if p.qty > 0 else "short")
                eng_pos[side] = abs(p.qty) * self.ct
        svc_pos = {
            p.side.value: p.size for p in await h.store.positions.list(user, self.ex) if p.is_open and p.size
        }
        if eng_pos != svc_pos:
            problems.append(f"positions: service {svc_pos} != exchange {eng_pos}")
        eng_orders = {
            o.order_id: (o.sz * self.ct, o.filled_sz * self.ct) for o in h.engine.open_orders(self.key)
        }
        svc_orders = {
            o.order_id: (o.quantity, o.filled_qty) for o in await h.store.orders.list_open(user, self.ex)
        }
        if eng_orders != svc_orders:
            diff = {k: (svc_orders.get(k), eng_orders.get(k)) for k in set(eng_orders) ^ set(svc_orders)}
            diff.update(
                {k: (svc_orders[k], v) for k, v in eng_orders.items() if svc_orders.get(k) not in (None, v)}
            )
            problems.append(f"open orders differ (service, exchange): {diff}")
        # 2. events: contiguous seqs, one fill.created per exchange fill, one event per kind per order
        events = [
            orjson.loads(f[b"data"]) for _, f in await h.store.redis.xrange(h.store.keys.event_stream(user))
        ]
        seqs = [int(e["seq"]) for e in events]
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False:
            problems.append(f"event seqs not contiguous: {_gaps(seqs)}")
        fills = Counter(str(e["trade_id"]) for e in events if e["event_type"] == "fill.created")
        exchange_fills = {f.trade_id for f in h.engine.fills(self.key)}
        missing = exchange_fills - set(fills)
        if missing:
            problems.append(
                f"{len(missing)} exchange fill(s) without a fill.created event: {sorted(missing)[:10]}"
            )
        extra = {t: n for t, n in fills.items() if n > 1 or t not in exchange_fills}
        if extra:
            problems.append(f"fill.created duplicated or unknown (trade id: count): {extra}")
        problems += self._order_events(events)
        problems += self._position_events(events)
        problems += _one_event_per_change(events)
        # 3. stops: fired at most once, and fired when crossed
        triggered = Counter(
            e["trailing_stop_id"] for e in events if e["event_type"] == "trailing_stop.triggered"
        )
        twice = {k: n for k, n in triggered.items() if n > 1}
        if twice:
            problems.append(f"trailing stops triggered more than once: {twice}")
        for model in list(self.stops.values()):
            stop = await h.store.trailing_stops.get(user, self.ex, self.sym, model.side)
            if stop is None or stop.id != model.stop_id:
                continue
            if stop.state.is_final:
                cid = stop.close_client_order_id
                if stop.state is StopState.EXECUTED and (cid is None or self.new_by_clid[cid] != 1):
                    problems.append(
                        f"trailing stop {stop.id} executed, but its close order {cid} is not on the exchange"
                    )
                    continue
                del self.stops[model.stop_id]
                continue
            if stop.state is StopState.TRIGGERED:
                problems.append(
                    f"trailing stop {stop.id} still triggered: its close order neither placed nor refused"
                )
                continue
            book = h.trailing.books_extreme(stop)
            if stop.state is StopState.ACTIVE and book is not None and stop.extreme_price != book:
                problems.append(
                    f"trailing stop {stop.id}: extreme {stop.extreme_price} in Redis, {book} in the engine's book "
                    "(a restart would trail from the stale one)"
                )
            if model.extreme is None:
                continue
            crossed = (
                self.price <= model.extreme * (1 - model.rate)
                if model.side == "long"
                else self.price >= model.extreme * (1 + model.rate)
            )
            if crossed and stop.state.is_live:
                problems.append(
                    f"trailing stop {stop.id} ({model.side}, rate {model.rate}) is {stop.state.value}: price "
                    f"{self.price} crossed its stop from the extreme {model.extreme}"
                )
        # 4. no order sent twice
        dup = {c: n for c, n in self.new_by_clid.items() if n > 1}
        if dup:
            problems.append(f"orders sent twice (client order id: count): {dup}")
        return problems

    def _order_events(self, events: list[dict[str, Any]]) -> list[str]:
        problems: list[str] = []
        per_order: dict[str, Counter[str]] = {}
        for e in events:
            if e["event_type"].startswith("order."):
                per_order.setdefault(str(e["order_id"]), Counter())[e["event_type"]] += 1
        terminal = ("order.filled", "order.cancelled", "order.rejected")
        for oid, kinds in per_order.items():
            if kinds["order.created"] > 1 or sum(kinds[k] for k in terminal) > 1:
                problems.append(f"order {oid}: events {dict(kinds)}")
                continue
            try:
                o = self.h.engine.get_order(self.key, order_id=oid)
            except EngineError:
                continue  # not on the exchange under this id (an order refused before it had one)
            state = o.state.value
            want = {"filled": "order.filled", "canceled": "order.cancelled"}.get(state)
            if want and kinds[want] != 1:
                problems.append(f"order {oid} is {state} on the exchange; service events {dict(kinds)}")
        return problems

    def _position_events(self, events: list[dict[str, Any]]) -> list[str]:
        problems: list[str] = []
        open_: dict[str, bool] = {}
        for e in events:
            kind = e["event_type"]
            if kind not in ("position.opened", "position.closed"):
                continue
            side = str(e["side"])
            is_open = open_.get(side, False)
            if (kind == "position.opened") == is_open:
                problems.append(
                    f"{kind} for {side} when it was {'open' if is_open else 'closed'} (seq {e['seq']})"
                )
            open_[side] = kind == "position.opened"
        return problems


# What an exchange change of a position can change. Realized pnl is one: fills the service saw only the end of
# (an add and a reduce at the old entry, during a kill or lost pushes) leave size and entry price as they were
_POSITION_CHANGE = ("size", "entry_price", "leverage", "realized_pnl")
_NOT_CONTENT = frozenset({"event_id", "seq", "timestamp", "metadata", "created_at", "updated_at"})


def _value(v: Any) -> Any:
    """Numbers by value: "59475" and "59475.0" are one price."""
    if isinstance(v, str):
        try:
            return D(v)
        except ArithmeticError:
            return v
    return v


def _one_event_per_change(events: list[dict[str, Any]]) -> list[str]:
    """Each exchange change emitted one event: an order's (status, filled size) at most once, no order event
    repeating the previous one's content, no position event repeating the previous (size, entry price,
    leverage, realized pnl); marks (current price) are not exchange changes."""
    problems: list[str] = []
    states: Counter[tuple[str, str, Any]] = Counter()
    last_order: dict[str, dict[str, Any]] = {}
    last_position: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        kind = str(e["event_type"])
        if kind.startswith("order."):
            # (a refused order has no exchange id: its client order id names it)
            oid = str(e.get("order_id") or e.get("client_order_id") or e["event_id"])
            states[(oid, str(e.get("status")), _value(e.get("filled_qty")))] += 1
            content = {k: _value(v) for k, v in e.items() if k not in _NOT_CONTENT}
            if last_order.get(oid) == content:
                problems.append(f"order {oid}: {kind} (seq {e['seq']}) repeats the previous event's content")
            last_order[oid] = content
        elif kind.startswith("position.") and (e.get("metadata") or {}).get("cause") != "mark":
            key = (str(e["symbol"]), str(e["side"]))
            if kind == "position.closed":
                last_position.pop(key, None)
                continue
            content = {k: _value(v) for k, v in e.items() if k not in _NOT_CONTENT}
            before = last_position.get(key)
            if before is not None and all(before.get(k) == content.get(k) for k in _POSITION_CHANGE):
                diff = {k: (before.get(k), v) for k, v in content.items() if before.get(k) != v}
                problems.append(
                    f"{kind} for {key[1]} (seq {e['seq']}) repeats the previous "
                    f"{ {k: content.get(k) for k in _POSITION_CHANGE} }; it differs in {diff}"
                )
            last_position[key] = content
    twice = {k: n for k, n in states.items() if n > 1}
    if twice:
        problems.append(
            f"order events repeated for one (order, status, filled): {dict(list(twice.items())[:10])}"
        )
    return problems[:20]


def _gaps(seqs: list[int]) -> str:
    out = []
    for a, b in itertools.pairwise(seqs):
        if b != a + 1:
            out.append(f"{a}->{b}")
    return ", ".join(out[:10])
