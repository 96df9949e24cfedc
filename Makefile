# DFIG: the two commands of the README.
#   make reproduce   run the notebooks end to end (profile smoke by default; PROFILE=sample|paper)
#   make test        ruff + pytest unit tests + nbval on every notebook + a smoke run_all.py (locally and
#                    through a one-node Slurm cluster)
#                    + the device check on CPU (standin-check)
#   make gpu-wheels  the wheel folder for benchmarks/device_check.sh on a GPU machine (docs/gpu.md)
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

.PHONY: install reproduce run test lint unit nbval smoke slurm-smoke paper weights clean-work clean-checkpoints standin-check gpu-wheels device-faces

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
	$(VENV)/bin/ruff format --check .

unit: install
	$(VENV)/bin/pytest -q tests

nbval: install
	rm -rf $(TEST_OUT)/nbval
	$(call TEST_ENV,nbval) $(VENV)/bin/pytest -q --nbval-lax notebooks

# no training time cap in make test's smoke runs: the table must not depend on machine speed (slurm-smoke
# compares it with the same profile run through Slurm)
SMOKE_ARGS ?= --set max_minutes=null
smoke: install
	rm -rf $(TEST_OUT)/smoke
	$(call TEST_ENV,smoke) $(PY) run_all.py --profile smoke $(SMOKE_ARGS)

# the smoke profile through a real one-node Slurm cluster (tests/slurmcluster.py; skips, one line, without
# the Debian packages .ci/run installs), its models table compared with make smoke's (~5 min)
slurm-smoke: install
	DFIG_LOCAL_SMOKE=$(CURDIR)/$(TEST_OUT)/smoke/reports DFIG_SMOKE_ARGS="$(SMOKE_ARGS)" $(VENV)/bin/pytest -q -rs tests/test_slurm.py -k smoke

test: lint unit nbval smoke slurm-smoke standin-check

# benchmarks/device_check.sh at tiny scale on the CPU: stand-in weights (SAM vit_b), the three
# benchmarks, run_all.py --profile paper-standin-cpu on 1 photo per split and class (a few minutes)
STANDIN_CHECK ?= work/standin-check
standin-check: install
	rm -rf $(STANDIN_CHECK)/work $(STANDIN_CHECK)/reports
	PYTHON=$(PY) bash benchmarks/device_check.sh --cpu $(STANDIN_CHECK)

# wheels a GPU machine with its own torch may lack (papermill, ipykernel, nbconvert, segment-anything
# and their needs; never torch), for python $(GPU_PYTHON) on x86-64 Linux -> $(GPU_WHEELS) (~10 MB).
# debugpy and jedi are optional for a kernel and left out; typst (the PDF, 20-33 MB) only with
# GPU_TYPST=1. Carry the folder with the repository; docs/gpu.md.
GPU_PYTHON ?= 3.12
GPU_WHEELS ?= work/gpu-wheels
GPU_TYPST ?= 0
GPU_PKGS := papermill nbformat nbclient nbconvert ipykernel segment-anything==1.0 tabulate pyyaml $(if $(filter 1,$(GPU_TYPST)),typst)
gpu-wheels: install
	$(PY) -m pip download --quiet --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d $(GPU_WHEELS) $(GPU_PKGS)
	rm -f $(GPU_WHEELS)/debugpy-*.whl $(GPU_WHEELS)/jedi-*.whl
	@du -sh $(GPU_WHEELS)

# a subset of the face sample to carry to a GPU machine (20 per split and class; ignored, never committed)
device-faces: install
	$(PY) benchmarks/face_subset.py --per_class 20 --out work/device/faces

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
