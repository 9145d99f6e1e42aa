# Entry points for a newcomer: `make demo` (the product end to end) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: setup system venv test test-fast bench lint format typecheck demo clean

setup: system venv

system:
	@bash scripts/setup-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/pytest -q -p no:cacheprovider tests

bench: setup
	$(BIN)/python bench/pipeline.py
	@if [ -f bench/api.py ]; then $(BIN)/python bench/api.py; fi
	@if [ -f bench/ivr.py ]; then $(BIN)/python bench/ivr.py; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy shared services convtrack simulator

demo: setup
	$(BIN)/convtrack demo $(ARGS)

clean:
	-$(BIN)/convtrack stack down --dir .stack 2>/dev/null
	-$(BIN)/convtrack stack down --dir .stack/demo 2>/dev/null
	rm -rf .stack .pytest_cache .mypy_cache .ruff_cache build *.egg-info
