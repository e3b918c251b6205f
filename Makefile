# Everything a fresh machine needs lives here: `make run` and `make test` set up on first use.
PYTHON ?= python3
VENV ?= .venv
# Torch is installed only when the environment has none. Override to bring your own build, e.g.
#   make setup TORCH_SPEC="torch==2.5.1" TORCH_INDEX=https://download.pytorch.org/whl/cu124
# or reuse a system-wide CUDA torch: make setup VENV_FLAGS=--system-site-packages
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
VENV_FLAGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

run: setup
	$(BIN)/python train.py

test: setup
	$(BIN)/python -m pytest -q tests

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

# Paper TBSN, literal (reference) vs phase (fast) form on this machine; see docs/performance.md.
benchmark: setup
	$(BIN)/python scripts/benchmark.py --compare "tbsn form=literal" "tbsn" --measure train,forward

clean:
	rm -rf logs outputs .pytest_cache
