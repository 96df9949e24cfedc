#!/usr/bin/env bash
# The device check: the main job on a CUDA GPU, once, in under 8 minutes on one H100 (docs/gpu.md).
#
#   benchmarks/device_check.sh [--cpu] OUTDIR [WHEELDIR]
#
# 1. installs what this python lacks from WHEELDIR (made by `make gpu-wheels`; pip --no-index --isolated
#    with no config file, into work/device/site, never touching torch) and prints the versions it uses
#    (torch >= 2.4 required; its build: CUDA/cuDNN or cpu);
# 2. writes stand-in weights (random, official formats; python -m dfig.weights standin);
# 3. runs benchmarks/bench_{sam,lnp,train}.py (naive path vs ours) -> OUTDIR/bench_*.json;
# 4. runs `run_all.py --profile paper-standin` (every notebook and code path of the paper profile) on the
#    carried faces -> OUTDIR/reports/paper-standin/, packed whole as OUTDIR/reports.tar.gz (`make device-pdf
#    PACK=...` builds the PDF from it where typst is);
# 5. prints the table (benchmarks/device_table.py): images/s, speed-up, projected paper-profile hours
#    on the 140k set beside the paper's 3-4 h per model, and the seconds of each phase
#    -> OUTDIR/device_check.{txt,json}.
#
# --cpu: the one switch for a machine without a GPU (make device-rehearsal, part of make test): the CPU,
# SAM vit_b, profile paper-standin-cpu and tiny benchmarks; same install step, same faces.
# Environment: PYTHON (default python3), FACES (data tree {train,val,test}/{real,fake}; default the
# carried work/device/faces, made by `make device-faces`: absent = exit 2), DFIG_WEIGHTS (stand-in
# folder; default work/device/weights, OUTDIR/weights with --cpu). Exit 0 when everything ran (an
# absent bench script is a named skip), 1 when a benchmark or the profile failed, 2 on bad setup.
set -uo pipefail

CPU=0
if [[ "${1:-}" == "--cpu" ]]; then CPU=1; shift; fi
if [[ $# -lt 1 || "${1:-}" == -* ]]; then
  echo "usage: benchmarks/device_check.sh [--cpu] OUTDIR [WHEELDIR]" >&2; exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$1" || exit 2
OUT="$(cd "$1" && pwd)"
WHEELS="${2:-}"
PY="${PYTHON:-python3}"
cd "$ROOT" || exit 2
T0=$(date +%s)
say() { echo "[device_check +$(( $(date +%s) - T0 ))s] $*"; }
export PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
export DFIG_REPORTS="$OUT/reports"

PHASES=()
T_PHASE=$T0
phase() {  # phase NAME: the seconds since the previous phase ended, printed in the table
  local now; now=$(date +%s); PHASES+=("$1=$(( now - T_PHASE ))"); T_PHASE=$now
}
FACES="${FACES:-$ROOT/work/device/faces}"
if [[ $CPU == 1 ]]; then
  DEVICE=cpu; PROFILE=paper-standin-cpu; SAM=vit_b
  SAM_ARGS=(--n 1 --naive_n 1); LNP_ARGS=(--n 2 --size 64)
  TRAIN_ARGS=(--steps 2 --warmup 1 --batch_size 2 --n_images 6)
  export DFIG_WORK="${DFIG_WORK:-$OUT/work}"
  WEIGHTS="${DFIG_WEIGHTS:-$OUT/weights}"
else
  DEVICE=cuda; PROFILE=paper-standin; SAM=vit_h
  SAM_ARGS=(--n 16); LNP_ARGS=(--n 20 --size 256); TRAIN_ARGS=(--steps 30 --n_images 120)
  export DFIG_WORK="${DFIG_WORK:-$ROOT/work/device/work}"
  WEIGHTS="${DFIG_WEIGHTS:-$ROOT/work/device/weights}"
fi
if [[ ! -d "$FACES/train" ]]; then
  echo "no faces at $FACES: run \`make device-faces\` where the face sample is and carry work/device/faces" \
    "with the repository (make gpu-carry), or set FACES={train,val,test}/{real,fake} tree" >&2
  exit 2
fi
export DFIG_WEIGHTS="$WEIGHTS"
NEEDED=(sam_$SAM cycleisp_sidd_rgb resnet50 resnet34 mobilenetv2_c5e733a8)

# 1. packages -------------------------------------------------------------------------------------
if [[ -n "$WHEELS" ]]; then
  [[ -d "$WHEELS" ]] || { echo "WHEELDIR $WHEELS is not a folder (make gpu-wheels writes work/gpu-wheels)" >&2; exit 2; }
  SITE="$ROOT/work/device/site"
  mapfile -t MISSING < <("$PY" - "$WHEELS" <<'EOF'
import re, sys
from importlib import metadata
from pathlib import Path
for w in sorted(Path(sys.argv[1]).glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower()
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        print(w)
EOF
  )
  if [[ ${#MISSING[@]} -gt 0 ]]; then
    say "installing ${#MISSING[@]} wheels this python lacks into $SITE (no index, no torch)"
    PIP_CONFIG_FILE=/dev/null "$PY" -m pip install -q --isolated --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$SITE" \
      "${MISSING[@]}" || { echo "pip install from $WHEELS failed" >&2; exit 2; }
  fi
  # only what the machine lacks went there (never torch); nbconvert finds its templates via JUPYTER_PATH
  export PYTHONPATH="$PYTHONPATH:$SITE" JUPYTER_PATH="$SITE/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
fi
"$PY" - "$OUT/versions.json" "$DEVICE" <<'EOF' || exit 2
import json, platform, sys
from importlib import metadata
need = {"torch": "torch", "torchvision": "torchvision", "segment_anything": "segment-anything",
        "papermill": "papermill", "nbformat": "nbformat", "nbconvert": "nbconvert", "ipykernel": "ipykernel",
        "yaml": "pyyaml", "cv2": "opencv-python-headless", "sklearn": "scikit-learn",
        "pandas": "pandas", "matplotlib": "matplotlib", "seaborn": "seaborn", "tabulate": "tabulate",
        "tqdm": "tqdm", "PIL": "pillow", "numpy": "numpy"}
missing = []
for mod in need:
    try:
        __import__(mod)
    except Exception as e:  # noqa: BLE001
        missing.append(f"{need[mod]} ({type(e).__name__}: {e})")
if missing:
    sys.exit("missing packages: " + "; ".join(missing) + " -- add their wheels to WHEELDIR (make gpu-wheels)")
import torch
v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
if v < (2, 4):
    sys.exit(f"torch {torch.__version__} is older than 2.4, which this code needs (never reinstalled here)")
if sys.argv[2] == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA GPU visible to torch (use --cpu for the CPU check)")
from dfig.report.manifest import torch_build
out = {"python": platform.python_version(), "executable": sys.executable, "torch_build": torch_build(),
       "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
for dist in sorted({*need.values(), "typst"}):
    try:
        out[dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:  # typst (the PDF) is optional here: 06_paper is then skipped
        out[dist] = "absent"
json.dump(out, open(sys.argv[1], "w"), indent=2)
print("versions: " + ", ".join(f"{k} {v}" for k, v in out.items() if k != "executable"))
EOF

phase packages

# 2. stand-in weights ------------------------------------------------------------------------------
say "stand-in weights -> $WEIGHTS (${NEEDED[*]})"
"$PY" -m dfig.weights standin --out "$WEIGHTS" --only "$(IFS=,; echo "${NEEDED[*]}")" || exit 2
SAMFILE=$("$PY" -c "from dfig import weights; print(weights.spec('sam_$SAM').filename)")
phase weights

# 3. benchmarks (each may fail alone: recorded, the check goes on) ----------------------------------
STATUS=0
BENCH_DIR="${BENCH_DIR:-benchmarks}"   # tests point this at stand-ins for the three scripts
bench() {  # bench NAME ARGS...
  local name=$1; shift
  if [[ ! -f "$BENCH_DIR/bench_$name.py" ]]; then
    say "bench_$name: SKIPPED ($BENCH_DIR/bench_$name.py absent)"; return
  fi
  say "bench_$name $*"
  "$PY" "$BENCH_DIR/bench_$name.py" --device "$DEVICE" --images "$FACES" \
    --json "$OUT/bench_$name.json" "$@" >"$OUT/bench_$name.log" 2>&1 \
    || { say "bench_$name FAILED (see $OUT/bench_$name.log)"; tail -5 "$OUT/bench_$name.log"; STATUS=1; }
}
bench sam --model_type "$SAM" --checkpoint "$WEIGHTS/$SAMFILE" "${SAM_ARGS[@]}"
bench lnp --checkpoint "$WEIGHTS/sidd_rgb.pth" "${LNP_ARGS[@]}"
bench train --arch res50 --train_mode 0 --crop_size 224 "${TRAIN_ARGS[@]}"
phase benchmarks

# 4. the stand-in profile --------------------------------------------------------------------------
ONLY=()
if ! "$PY" -c "import typst" 2>/dev/null; then
  say "06_paper SKIPPED: typst is not installed (its wheel does not fit 64 MiB); the PDF: make device-pdf" \
    "PACK=$OUT/reports.tar.gz where typst is"
  ONLY=(--only 01 --only 02 --only 03 --only 04 --only 05)
fi
say "run_all.py --profile $PROFILE --data $FACES ${ONLY[*]}"
"$PY" run_all.py --profile "$PROFILE" --data "$FACES" "${ONLY[@]}" 2>&1 | tee "$OUT/run_all.log"
[[ ${PIPESTATUS[0]} == 0 ]] || { say "run_all FAILED (see $OUT/run_all.log)"; STATUS=1; }
# everything 06_paper needs, so that `make device-pdf PACK=OUTDIR/reports.tar.gz` builds the PDF elsewhere
if [[ -d "$OUT/reports/$PROFILE" ]]; then
  tar -czf "$OUT/reports.tar.gz" -C "$OUT/reports" "$PROFILE"
fi
phase profile

# 5. the table --------------------------------------------------------------------------------------
"$PY" benchmarks/device_table.py "$OUT" --profile "$PROFILE" --wall_seconds "$(( $(date +%s) - T0 ))" \
  --phases "${PHASES[@]}" \
  | tee "$OUT/device_check.txt"
[[ ${PIPESTATUS[0]} == 0 ]] || STATUS=1
say "done in $(( $(date +%s) - T0 )) s, status $STATUS; results in $OUT"
exit $STATUS
