# `make help` lists the targets. Everything runs inside .venv, which `make install` creates.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test train demo study report bench quality tensorboard lint format clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(BIN)/.installed ## create .venv and install the project with its dev tools (idempotent)

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install ## run the test suite: tiny synthetic data, fast_dev_run, short CPU runs, DDP (about 12 min on 2 cores)
	$(BIN)/python -m pytest -n auto --dist worksteal

train: install ## train with Hydra overrides, e.g. make train ARGS="stage=supervised backbone=resnet18"
	$(BIN)/python train.py $(ARGS)

demo: install ## the whole study on synthetic STL-10 on CPU (~14 minutes on 2 idle cores), ending with the results table
	$(BIN)/python -m stl10_lightning.study experiment=demo $(ARGS)

study: install ## the whole study on real STL-10 (GPU): make study DATA=/path/containing/stl10_binary
	$(BIN)/python -m stl10_lightning.study $(if $(DATA),data.root=$(DATA)) $(ARGS)

report: install ## the results table of every finished run under outputs/ (or: make report ARGS=<folders>)
	$(BIN)/stl10-report $(or $(ARGS),outputs)

bench: install ## benchmarks against plain baselines on this machine (~5 min); writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run $(ARGS)

quality: install ## the study on real photographs at a CPU budget, with controls (~3.5 h a seed on 2 cores, more on slower ones): make quality DATA=data/realdev; writes benchmarks/QUALITY.md
	$(BIN)/python -m benchmarks.quality --data $(or $(DATA),$(error give DATA=<folder containing stl10_binary/>)) $(ARGS)

tensorboard: install ## serve the dashboard of every run under outputs/
	$(BIN)/tensorboard --logdir outputs

lint: install ## ruff: lint and check formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff: fix imports and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove run outputs, generated data and caches (keeps .venv)
	rm -rf outputs/*/ data/synthetic benchmarks/.cache .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
