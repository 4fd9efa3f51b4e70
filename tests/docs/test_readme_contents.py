"""What the README must say (issue 12 items 8 and 11): a valid API_TOKENS example and the 16-character rule
where the variable is described; the seed's own curl examples as the seed prints them; a curl example with
its body for every write route of the API."""

from __future__ import annotations

import re
from pathlib import Path

from position_order_service.api.auth import parse_tokens
from position_order_service.app import create_app
from position_order_service.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"

# the seed's (service-readme.ko.md) examples, exactly as it prints them
SEED_EXAMPLES = [
    """curl -X POST http://localhost:8020/api/v1/orders/cancel \\
  -H "Content-Type: application/json" \\
  -d '{
    "user_id": "user123",
    "exchange": "okx",
    "symbol": "BTC-USDT-SWAP",
    "order_id": "12345",
    "order_type": "stop_loss",
    "side": "buy"
  }'""",
    """curl -X POST http://localhost:8020/api/v1/trailing-stops \\
  -H "Content-Type: application/json" \\
  -d '{
    "user_id": "user123",
    "exchange": "okx",
    "symbol": "BTC-USDT-SWAP",
    "side": "long",
    "activation_price": 50000,
    "callback_rate": 0.02,
    "size": 0.1
  }'""",
    """curl -X POST http://localhost:8020/api/v1/conditional-rules \\
  -H "Content-Type: application/json" \\
  -d '{
    "user_id": "user123",
    "exchange": "okx",
    "trigger_order_id": "order_A",
    "cancel_order_ids": ["order_B", "order_C"],
    "condition": "filled"
  }'""",
    "curl http://localhost:8020/api/v1/positions/user123/okx?symbol=BTC-USDT-SWAP",
    "curl http://localhost:8020/api/v1/orders/user123/okx/open?symbol=BTC-USDT-SWAP",
    """curl -X POST http://localhost:8020/api/v1/users/user123/activate \\
  -H "Content-Type: application/json" \\
  -d '{"exchanges": ["okx", "binance"]}'""",
    "curl -X POST http://localhost:8020/api/v1/users/user123/deactivate",
    "curl http://localhost:8020/api/v1/users/active",
]


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_the_api_tokens_examples_are_valid_and_the_rule_is_documented() -> None:
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `API_TOKENS`"))
    assert "16 characters" in row
    examples = [m for m in re.findall(r"`([^`\s]+)`", row) if "=" in m]
    examples += re.findall(r"API_TOKENS='([^']+)'", text)
    assert examples, "no API_TOKENS example"
    for example in examples:
        assert parse_tokens(example), example


def test_the_seeds_curl_examples_are_printed() -> None:
    text = _squash(README.read_text())
    missing = [ex.splitlines()[0] for ex in SEED_EXAMPLES if _squash(ex) not in text]
    assert missing == []


def test_every_write_route_has_a_curl_example_with_its_body() -> None:
    spec = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    curls = [_squash(c) for c in re.findall(r"curl -X .*?(?:\n(?!\s)|$)", README.read_text(), flags=re.S)]
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            url = re.sub(r"\\\{[^}]+\\\}", r"[^/\\s'\"?]+", re.escape(path))
            pattern = re.compile(rf"^curl -X {method.upper()} \S*?{url}(?:[?'\"\s]|$)")
            found = [c for c in curls if pattern.search(c)]
            if not found or ("requestBody" in op and not any(" -d " in c for c in found)):
                missing.append(f"{method.upper()} {path}")
    assert missing == []
