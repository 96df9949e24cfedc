# DFIG: the two commands of the README.
#   make reproduce   run the notebooks end to end (profile smoke by default; PROFILE=sample|paper)
#   make test        ruff + pytest unit tests + nbval on every notebook + a smoke run_all.py
# Both create the virtual environment .venv on first use (Python 3.11, pinned torch).

PYTHON ?= python3.11
VENV ?= .venv
PROFILE ?= smoke
PY := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install reproduce test lint unit nbval smoke paper weights clean-work

install: $(VENV)/.dfig-installed

$(VENV)/.dfig-installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dfig)" >/dev/null
	@touch $@

reproduce: install
	$(PY) run_all.py --profile $(PROFILE) $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

unit: install
	$(VENV)/bin/pytest -q tests

nbval: install
	$(VENV)/bin/pytest -q --nbval-lax notebooks

smoke: install
	$(PY) run_all.py --profile smoke

test: lint unit nbval smoke

paper: install
	$(PY) run_all.py --profile $(PROFILE) --paper-only

weights: install
	$(PY) -m dfig.weights

clean-work:
	rm -rf work/smoke reports/smoke
