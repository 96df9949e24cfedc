# DFIG: the two commands of the README.
#   make reproduce   run the notebooks end to end (profile smoke by default; PROFILE=sample|paper)
#   make test        ruff + pytest unit tests + nbval on every notebook + a smoke run_all.py (locally and
#                    through a one-node Slurm cluster: slurm-smoke)
#                    + the device check rehearsed as a GPU machine holds it (device-rehearsal)
#                    + the unit tests under Python 3.12 too (unit-py3.12; one line when there is none)
#   make gpu-carry   what to carry to a GPU machine (docs/gpu.md): the repository, the wheel folder and
#                    the faces, one file of at most 64 MiB
#   make git-filter  nbstripout's git filter for the notebooks (a step of make install; .gitattributes)
# Both create the virtual environment .venv on first use with the exact versions of constraints.txt.
# PYTHON: the interpreter (3.10-3.13); default the newest supported one on PATH (.ci/find-python).
#   make run ARGS="--only 03"   run_all.py with any arguments (README: the manual commands)
# make test writes into work/test/ (never into reports/smoke or work/smoke, which make reproduce made).

# --- Python and the install ------------------------------------------------------------------------
ifndef PYTHON
PYTHON := $(firstword $(shell .ci/find-python))
endif
VENV ?= .venv
PROFILE ?= smoke
PY := $(VENV)/bin/python
# the exact versions of the committed results (pyproject.toml holds ranges: a user's own torch stays)
CONSTRAINTS ?= constraints.txt
# make test's own output folders (dfig.paths: DFIG_REPORTS / DFIG_WORK), inside the ignored work/
TEST_OUT ?= work/test
TEST_ENV = DFIG_REPORTS=$(CURDIR)/$(TEST_OUT)/$(1)/reports DFIG_WORK=$(CURDIR)/$(TEST_OUT)/$(1)/work

.PHONY: install reproduce run test lint unit nbval smoke slurm-smoke paper weights clean-work clean-checkpoints constraints git-filter \
	gpu-wheels device-faces gpu-carry device-rehearsal device-pdf

install: $(VENV)/.dfig-installed git-filter

$(VENV)/.dfig-installed: pyproject.toml $(CONSTRAINTS)
	@test -n "$(PYTHON)" || { echo "no Python 3.10-3.13 found on PATH (.ci/find-python): set PYTHON=/path/to/python3.12"; exit 1; }
	@$(PYTHON) -c 'import sys; print(f"make install: Python {sys.version.split()[0]} ({sys.executable})"); sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' \
	  || { echo "$(PYTHON) is not Python 3.10-3.13 (pyproject.toml: >=3.10,<3.14): set PYTHON=/path/to/python3.12"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dfig)" >/dev/null
	@touch $@

# rewrite constraints.txt from .venv after an upgrade (its header is kept; dfig itself left out)
constraints: install
	{ grep '^#' $(CONSTRAINTS); $(PY) -m pip freeze --exclude-editable | grep -v '^dfig=='; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

# nbstripout's git filter (.gitattributes is committed): a notebook saved by JupyterLab with outputs,
# execution counts and language_info leaves no git diff; cell ids stay (--keep-id). Outside git: skipped.
git-filter: $(VENV)/.dfig-installed
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "not a git checkout: nbstripout's filter not installed"; exit 0; }; \
	$(VENV)/bin/nbstripout --install --attributes .gitattributes && \
	git config filter.nbstripout.clean '"$(abspath $(PY))" -m nbstripout --keep-id' && \
	git config filter.nbstripout.extrakeys metadata.language_info

reproduce: install
	$(PY) run_all.py --profile $(PROFILE) $(ARGS)

run: install
	$(PY) run_all.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: install
	$(VENV)/bin/pytest -q tests

nbval: install
	rm -rf $(TEST_OUT)/nbval
	$(call TEST_ENV,nbval) $(VENV)/bin/pytest -q --nbval-lax notebooks

# extra run_all.py arguments of make test's smoke runs (the smoke profile has no time budget, so its models
# table never depends on machine speed: slurm-smoke compares it with the same profile run through Slurm)
SMOKE_ARGS ?=
smoke: install
	rm -rf $(TEST_OUT)/smoke
	$(call TEST_ENV,smoke) $(PY) run_all.py --profile smoke $(SMOKE_ARGS)

# the smoke profile through a real one-node Slurm cluster (tests/slurmcluster.py; skips, one line, without
# the Debian packages .ci/run installs), its models table compared with make smoke's (~5 min)
slurm-smoke: install
	DFIG_LOCAL_SMOKE=$(CURDIR)/$(TEST_OUT)/smoke/reports DFIG_SMOKE_ARGS="$(SMOKE_ARGS)" $(VENV)/bin/pytest -q -rs tests/test_slurm.py -k smoke

test: lint unit nbval smoke slurm-smoke device-rehearsal unit-py3.12

# the unit tests under another Python X.Y (make unit-py3.12, part of make test), in a venv cached outside
# the clone and built as a GPU user's is: their torch first, then pip install -e ".[dev]" (.ci/unit-python)
unit-py%:
	bash .ci/unit-python $*

# --- the GPU machine (docs/gpu.md) -----------------------------------------------------------------
# wheels a GPU machine with its own torch may lack (papermill, ipykernel, nbconvert, segment-anything
# and their needs; never torch), resolved BY a python $(GPU_PYTHON) (pip judges markers such as
# python_version for the interpreter that runs it; another one is used only with a warning), for
# x86-64 Linux -> $(GPU_WHEELS) (~10 MB). No .venv needed. debugpy and jedi are optional for a kernel
# and left out; typst (the PDF, 20-33 MB) only with GPU_TYPST=1 (it does not fit 64 MiB: results come
# back packed and make device-pdf builds the PDF here).
GPU_PYTHON ?= 3.12
GPU_WHEELS ?= work/gpu-wheels
GPU_TYPST ?= 0
GPU_PKGS := papermill nbformat nbclient nbconvert ipykernel segment-anything==1.0 tabulate pyyaml $(if $(filter 1,$(GPU_TYPST)),typst)
gpu-wheels:
	@set -e; gpy=$$(.ci/find-python $(GPU_PYTHON) | cut -d' ' -f1); \
	if [ -z "$$gpy" ]; then gpy="$(PYTHON)"; \
	  echo "gpu-wheels: WARNING no Python $(GPU_PYTHON) here: resolving with $$gpy, whose version judges the markers"; fi; \
	echo "gpu-wheels: resolving for Python $(GPU_PYTHON) with $$gpy -> $(GPU_WHEELS)"; \
	$$gpy -m pip download --quiet --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d $(GPU_WHEELS) $(GPU_PKGS)
	rm -f $(GPU_WHEELS)/debugpy-*.whl $(GPU_WHEELS)/jedi-*.whl
	@du -sh $(GPU_WHEELS)

# a subset of the face sample to carry to a GPU machine (ignored, never committed); DEVICE_FACES_SYNTHETIC=1
# writes the synthetic set when the sample is absent (labelled SYNTHETIC; only when asked)
DEVICE_FACES ?= work/device/faces
DEVICE_FACES_PER_CLASS ?= 20
DEVICE_FACES_SIZE ?= 0
DEVICE_FACES_SYNTHETIC ?= 0
device-faces: install
	$(PY) benchmarks/face_subset.py --per_class $(DEVICE_FACES_PER_CLASS) --size $(DEVICE_FACES_SIZE) \
	  --out $(DEVICE_FACES) $(if $(filter 1,$(DEVICE_FACES_SYNTHETIC)),--synthetic_if_absent)

# the one file to carry: tracked files + $(GPU_WHEELS) + $(DEVICE_FACES) + the commit stamp, refused above 64 MiB
GPU_CARRY ?= work/device/dfig-carry.tar.gz
gpu-carry: gpu-wheels device-faces
	bash benchmarks/device_carry.sh $(GPU_CARRY) $(GPU_WHEELS) $(DEVICE_FACES)

# the device check rehearsed as the GPU machine holds it (docs/gpu.md; part of make test): a cached
# Python 3.12 env with only the GPU machine's packages, the carried file unpacked outside the clone
# (no .git, no ../shared), no network, pip without index, the command of docs/gpu.md plus --cpu; then
# the PDF rebuilt here from the packed results (make device-pdf)
REHEARSAL ?= work/device-rehearsal
device-rehearsal: install
	rm -rf $(REHEARSAL)
	$(MAKE) --no-print-directory gpu-carry GPU_WHEELS=$(REHEARSAL)/gpu-wheels GPU_CARRY=$(REHEARSAL)/dfig-carry.tar.gz \
	  DEVICE_FACES=$(REHEARSAL)/faces DEVICE_FACES_PER_CLASS=1 DEVICE_FACES_SIZE=64 DEVICE_FACES_SYNTHETIC=1
	bash benchmarks/device_rehearsal.sh $(REHEARSAL)/dfig-carry.tar.gz $(REHEARSAL)/back
	$(MAKE) --no-print-directory device-pdf PACK=$(REHEARSAL)/back/reports.tar.gz

# the PDF of a GPU run, here: unpack the results the GPU machine packed (PACK) beside it and compile
PACK ?= work/device/back/reports.tar.gz
device-pdf: install
	rm -rf $(dir $(PACK))reports && mkdir -p $(dir $(PACK))reports && tar -xzf $(PACK) -C $(dir $(PACK))reports
	DFIG_REPORTS=$(abspath $(dir $(PACK))reports) $(PY) run_all.py --profile \
	  $$(ls $(dir $(PACK))reports | head -1) --paper-only

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
