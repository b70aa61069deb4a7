# Two commands for a fresh machine:  make reproduce  |  make test
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= quick
JOBS    ?= auto
# where torch comes from: empty = PyPI (on Linux the CUDA build, several GB); a CPU-only machine saves most of it
# with TORCH_INDEX=https://download.pytorch.org/whl/cpu, an older NVIDIA driver needs .../whl/cu126 or .../whl/cu118
# (README, Install)
TORCH_INDEX ?=

.PHONY: setup test test-fast reproduce report gpu-check benchmarks clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# torch/torchvision first so a machine with a local or CUDA build keeps it; then the package and its extras.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch>=2.2" "torchvision>=0.17"
	$(BIN)/python -m pip install -e ".[notebooks,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest tests notebooks/mint.ipynb notebooks/amint.ipynb notebooks/gmint.ipynb notebooks/factors.ipynb notebooks/audit.ipynb --nbval-lax -p no:cacheprovider

test-fast: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -m "not slow" -x -q

# The report is written even when a run failed (it lists the failures); the exit status is the batch's.
reproduce: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m mintkit reproduce --profile $(PROFILE) --jobs $(JOBS) --out runs/$(PROFILE); \
	rc=$$?; MPLBACKEND=Agg $(BIN)/python -m mintkit report --runs runs/$(PROFILE) --out figures && exit $$rc

report: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m mintkit report --runs runs/$(PROFILE) --out figures

benchmarks: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

# the venv's python: system python3 has no torch
gpu-check: $(STAMP)
	PYTHON=$(abspath $(BIN))/python bash scripts/gpu_check.sh

clean:
	rm -rf runs .pytest_cache
