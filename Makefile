# Set-up on a fresh machine: `make demo` or `make test` creates .venv, installs the pinned CPU build of
# PyTorch and this package, then runs. GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= outputs/demo
PYTEST_ARGS ?=

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The main job on the embedded default (synthetic customers, no downloads).
demo: install
	$(BIN)/python scripts/demo.py output_dir=$(DEMO_DIR)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf outputs .cache .pytest_cache
