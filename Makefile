# DFIG: the two commands of the README.
#   make reproduce   run the notebooks end to end (profile smoke by default; PROFILE=sample|paper)
#   make test        ruff + pytest unit tests + nbval on every notebook + a smoke run_all.py
# Both create the virtual environment .venv on first use (Python 3.11, pinned torch).
#   make run ARGS="--only 03"   run_all.py with any arguments (README: the manual commands)
# make test writes into work/test/ (never into reports/smoke or work/smoke, which make reproduce made).

PYTHON ?= python3.11
VENV ?= .venv
PROFILE ?= smoke
PY := $(VENV)/bin/python
# make test's own output folders (dfig.paths: DFIG_REPORTS / DFIG_WORK), inside the ignored work/
TEST_OUT ?= work/test
TEST_ENV = DFIG_REPORTS=$(CURDIR)/$(TEST_OUT)/$(1)/reports DFIG_WORK=$(CURDIR)/$(TEST_OUT)/$(1)/work
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install reproduce run test lint unit nbval smoke paper weights clean-work clean-checkpoints

install: $(VENV)/.dfig-installed

$(VENV)/.dfig-installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=/path/to/python3.11)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "$(PYTHON) is not Python 3.11 (pyproject.toml requires >=3.11,<3.12): set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dfig)" >/dev/null
	@touch $@

reproduce: install
	$(PY) run_all.py --profile $(PROFILE) $(ARGS)

run: install
	$(PY) run_all.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

unit: install
	$(VENV)/bin/pytest -q tests

nbval: install
	rm -rf $(TEST_OUT)/nbval
	$(call TEST_ENV,nbval) $(VENV)/bin/pytest -q --nbval-lax notebooks

smoke: install
	rm -rf $(TEST_OUT)/smoke
	$(call TEST_ENV,smoke) $(PY) run_all.py --profile smoke

test: lint unit nbval smoke

paper: install
	$(PY) run_all.py --profile $(PROFILE) --paper-only

weights: install
	$(PY) -m dfig.weights

# what make reproduce (smoke) and make test leave behind: work/smoke (faces, LNPs, checkpoints), reports/smoke,
# work/test; the committed reports/sample is never touched
clean-work:
	rm -rf work/smoke reports/smoke $(TEST_OUT)

# checkpoints the reports do not read: model_epoch_latest.pth (for resuming an interrupted training run)
clean-checkpoints:
	find work -name model_epoch_latest.pth -print -delete
