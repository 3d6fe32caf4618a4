# The two commands of the README: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo baselines test test-browser test-tuning test-compile lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"

demo: setup
	$(BIN)/python examples/train_ppo.py --device cpu --out runs/demo

baselines: setup
	$(BIN)/python examples/run_baselines.py

test: setup
	$(BIN)/python -m pytest -n 3  # three workers: many tests wait on job processes and servers (docs/testing.md)

test-browser: setup
	$(BIN)/python -m pytest -m browser  # the dashboard in headless Chromium (docs/testing.md)

test-tuning: setup
	$(BIN)/python -m pytest -m tuning  # studies shared by processes: a journal file, a real PostgreSQL (docs/testing.md)

test-compile: setup
	$(BIN)/python -m pytest -m compile  # torch.compile of PPO's loss: a cold compile takes tens of seconds

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_env.py
	$(BIN)/python benchmarks/bench_policy.py
	$(BIN)/python benchmarks/bench_rollout.py
	$(BIN)/python benchmarks/bench_api.py
