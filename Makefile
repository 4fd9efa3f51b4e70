# The two set-up commands of the README: `make run` and `make test`. Each (re)creates .venv as needed.
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8020

.PHONY: venv test-tools run test lint typecheck unit bench clean

venv:
	@PYTHON="$(PYTHON)" ./scripts/bootstrap.sh

# Debian's chromium and prometheus (promtool) for the browser and monitoring tests, when missing
test-tools:
	@./scripts/bootstrap.sh --test-tools

run: venv
	$(BIN)/position-order-service serve --host $(HOST) --port $(PORT)

lint: venv
	$(BIN)/ruff check src tests bench main.py
	$(BIN)/ruff format --check src tests bench main.py

typecheck: venv
	$(BIN)/mypy --strict src

# Four workers on two cores: most tests wait on processes, sockets and Redis, not on the CPU. A module's tests
# stay on one worker (loadscope): module-scoped services start once, ordered examples keep their order.
TEST_WORKERS ?= 4
unit: venv test-tools
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
