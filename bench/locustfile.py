"""Locust load test of the service with its simulator: many users, orders, reads, price moves.

Run by bench/bench_load.py (which starts the service and onboards the users); or by hand against a running
service with users u0..u{N-1} onboarded: `locust -f bench/locustfile.py --host http://127.0.0.1:8020`.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, events, task

USERS = int(os.environ.get("LOAD_USERS", "50"))
SIM_URL = os.environ.get("LOAD_SIM_URL", "")
SYMBOL = "BTC-USDT-SWAP"


class BotOperator(HttpUser):
    """One trading bot: mostly reads, some orders and cancels, the odd trailing stop."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.user_id = f"u{random.randrange(USERS)}"
        self.open_ids: list[str] = []

    @task(10)
    def read_positions(self) -> None:
        self.client.get(f"/api/v1/positions/{self.user_id}/okx", name="GET positions")

    @task(5)
    def read_open_orders(self) -> None:
        self.client.get(f"/api/v1/orders/{self.user_id}/okx/open", name="GET open orders")

    @task(3)
    def place_limit(self) -> None:
        price = random.randint(50000, 55000)
        with self.client.post(
            "/api/v1/orders",
            json={"user_id": self.user_id, "exchange": "okx", "symbol": SYMBOL, "side": "buy",
                  "order_type": "limit", "quantity": "0.001", "price": str(price)},
            name="POST orders (limit)", catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code == 201:
                self.open_ids.append(
                    r.json()["order_id"] if "order_id" in r.json() else r.json()["exchange_order_id"]
                )
            else:
                r.failure(f"{r.status_code} {r.text[:200]}")

    @task(2)
    def cancel(self) -> None:
        if not self.open_ids:
            return
        order_id = self.open_ids.pop(0)
        with self.client.post(
            "/api/v1/orders/cancel",
            json={"user_id": self.user_id, "exchange": "okx", "order_id": order_id, "symbol": SYMBOL},
            name="POST orders/cancel", catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code in (200, 409):  # 409: it filled or was cancelled meanwhile
                r.success()

    @task(1)
    def market_round_trip(self) -> None:
        for side in ("buy", "sell"):
            self.client.post(
                "/api/v1/orders",
                json={"user_id": self.user_id, "exchange": "okx", "symbol": SYMBOL, "side": side,
                      "order_type": "market", "quantity": "0.001"},
                name="POST orders (market)",
            )  # fmt: skip


class PriceMover(HttpUser):
    """Moves the simulator's price, so limit orders fill and trailing stops trail."""

    fixed_count = 1
    wait_time = between(0.2, 0.3)

    @task
    def move(self) -> None:
        if SIM_URL:
            price = 60000 + random.randint(-300, 300)
            self.client.post(
                f"{SIM_URL}/sim/prices", json={"symbol": SYMBOL, "price": str(price)}, name="sim price"
            )


@events.init_command_line_parser.add_listener
def _(parser: object) -> None:  # keeps locust's CLI unchanged; configuration is by environment
    return None
