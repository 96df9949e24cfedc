#!/usr/bin/env bash
# The device check rehearsed as the GPU machine holds it (make device-rehearsal, part of make test):
#
#   benchmarks/device_rehearsal.sh CARRY.tar.gz BACKDIR
#
# 1. the GPU machine's python: a venv cached outside the clone (${DFIG_CACHE:-~/.cache/dfig}/gpu-sim-...)
#    made once from GPU_SIM_PYTHON (3.12) with ONLY what such a machine holds (GPU_SIM_PACKAGES: torch
#    2.11.0 + torchvision 0.26.0, pandas, ...); none of papermill, nbformat, nbconvert, nbclient,
#    ipykernel, jupyter, segment-anything, typst (checked on every run);
# 2. the machine: a fresh folder outside the clone (TMPDIR) holding only CARRY unpacked (make gpu-carry:
#    no .git, no ../shared), its own empty HOME;
# 3. the command that docs/gpu.md tells a person to type (the line after its "the GPU command" marker)
#    with --cpu as the only change, run there with a clean environment: PATH = that python first, no
#    pip config file, no index (PIP_NO_INDEX), and no network (a new network namespace, `unshare -n`,
#    when the machine allows it; else one line says the network stayed);
# 4. checks: exit 0, the table printed, the carried faces used (not synthetic), the commit of the
#    stamp and the torch build in the manifest; copies the files docs/gpu.md says to bring back
#    (device_check.txt, device_check.json, versions.json, reports.tar.gz, run_all.log) into BACKDIR.
# Exit 0 rehearsed, 1 the check failed, 2 bad setup.
set -uo pipefail
[[ $# -eq 2 ]] || { echo "usage: benchmarks/device_rehearsal.sh CARRY.tar.gz BACKDIR" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="$(realpath "$1")" || exit 2
mkdir -p "$2" && BACK="$(cd "$2" && pwd)" || exit 2
T0=$(date +%s)
say() { echo "[rehearsal +$(( $(date +%s) - T0 ))s] $*"; }
GPU_SIM_PYTHON="${GPU_SIM_PYTHON:-3.12}"
GPU_SIM_PACKAGES="${GPU_SIM_PACKAGES:-torch==2.11.0 torchvision==0.26.0 pandas matplotlib seaborn scikit-learn \
opencv-python-headless pyyaml tqdm tabulate timm onnxruntime}"
ABSENT=(papermill nbformat nbconvert nbclient ipykernel jupyter segment_anything typst)
BRING_BACK=(device_check.txt device_check.json versions.json reports.tar.gz run_all.log)

# 1. the GPU machine's python (cached) --------------------------------------------------------------
found=$("$ROOT/.ci/find-python" "$GPU_SIM_PYTHON") || found=""
if [[ -z "$found" ]]; then
  found=$("$ROOT/.ci/find-python") || { echo "no supported Python found" >&2; exit 2; }
  say "WARNING no Python $GPU_SIM_PYTHON here: rehearsing with Python ${found#* } instead"
fi
base="${found%% *}" ver="${found#* }"
cache="${DFIG_CACHE:-$HOME/.cache/dfig}"
key=$(echo "$ver $GPU_SIM_PACKAGES" | sha256sum | cut -c1-10)
SIM="$cache/gpu-sim-py${ver%.*}-$key"
if [[ ! -f "$SIM/.dfig-ready" ]]; then
  say "making the GPU machine's python once: $SIM (Python $ver; $GPU_SIM_PACKAGES)"
  for old in "$cache"/gpu-sim-py"${ver%.*}"-*; do [[ -e "$old" && "$old" != "$SIM" ]] && rm -rf "$old"; done
  rm -rf "$SIM" && mkdir -p "$cache" && "$base" -m venv "$SIM" || exit 2
  "$SIM/bin/python" -m pip install --quiet --upgrade pip || exit 2
  # shellcheck disable=SC2086
  "$SIM/bin/python" -m pip install --quiet $GPU_SIM_PACKAGES || exit 2
  touch "$SIM/.dfig-ready"
fi
"$SIM/bin/python" - "${ABSENT[@]}" <<'PY' || exit 2
import importlib.util, sys
held = [m for m in sys.argv[1:] if importlib.util.find_spec(m)]
sys.exit(f"the GPU machine's python holds {held}: it must not (delete it to rebuild)" if held else 0)
PY
say "GPU machine's python: $SIM (Python $ver), $("$SIM/bin/python" -c 'import torch; print("torch", torch.__version__)')"

# 2. the machine: the carried file unpacked outside the clone ---------------------------------------
MACHINE=$(mktemp -d "${TMPDIR:-/tmp}/dfig-gpu-machine.XXXXXX") || exit 2
trap 'rm -rf "$MACHINE"' EXIT
mkdir -p "$MACHINE/home" && tar -xzf "$CARRY" -C "$MACHINE" || exit 2
REPO="$MACHINE/dfig"
[[ ! -e "$REPO/.git" && ! -e "$MACHINE/shared" ]] || { echo "the carried copy holds .git or ../shared" >&2; exit 2; }

# 3. the command of docs/gpu.md, with the one switch -------------------------------------------------
CMD=$(awk '/<!-- the GPU command/ {m = 1; next} m && /^```/ {if (f) exit; f = 1; next} m && f {print; exit}' \
  "$REPO/docs/gpu.md")
[[ "$CMD" == *"benchmarks/device_check.sh "* ]] || { echo "docs/gpu.md: no GPU command after its marker" >&2; exit 2; }
CMD="${CMD/device_check.sh /device_check.sh --cpu }"
NET=(unshare -n)
if ! unshare -n true 2>/dev/null; then
  NET=(); say "WARNING cannot cut the network here (unshare -n refused): pip still has no index"
fi
say "on the GPU machine ($REPO, no .git, no ../shared, no network, pip without index): $CMD"
(cd "$REPO" && "${NET[@]}" env -i PATH="$SIM/bin:/usr/bin:/bin" HOME="$MACHINE/home" LANG=C.UTF-8 \
  PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 TMPDIR="$MACHINE" bash -c "$CMD")
rc=$?
say "the command exited $rc"

# 4. what a person checks and brings back -------------------------------------------------------------
OUTDIR="$REPO/$(echo "$CMD" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /device_check.sh$/) {j = i + 1; if ($j == "--cpu") j++; print $j; exit}}')"
for f in "${BRING_BACK[@]}"; do
  if [[ -f "$OUTDIR/$f" ]]; then cp "$OUTDIR/$f" "$BACK/"; else say "MISSING $f"; rc=1; fi
done
"$SIM/bin/python" - "$BACK" "$REPO/dfig-commit.json" <<'PY' || rc=1
import json, sys, tarfile
from pathlib import Path
back, stamp = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
with tarfile.open(back / "reports.tar.gz") as t:
    name = next(n for n in t.getnames() if n.endswith("/manifest.json"))
    man = json.load(t.extractfile(name))
table = (back / "device_check.txt").read_text()
bad = []
if "seconds per phase" not in table or "stand-in profile" not in table:
    bad.append("the table is incomplete")
if man.get("synthetic_data"):
    bad.append("the run used the SYNTHETIC set, not the carried faces")
if man.get("git", {}).get("commit") != stamp["commit"]:
    bad.append(f"manifest commit {man.get('git')} is not the stamp's {stamp['commit']}")
if "torch_build" not in man.get("packages", {}):
    bad.append("the manifest has no torch build")
print("rehearsal checks: " + ("; ".join(bad) if bad else
      f"table printed, carried faces, commit {stamp['commit'][:12]} from the stamp, "
      f"torch {man['packages']['torch_build']}"))
sys.exit(1 if bad else 0)
PY
say "brought back $(cd "$BACK" && du -ch "${BRING_BACK[@]}" 2>/dev/null | tail -1 | cut -f1) to $BACK; exit $rc"
exit $rc
