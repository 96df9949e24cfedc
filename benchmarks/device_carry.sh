#!/usr/bin/env bash
# What to carry to a GPU machine, as one file (make gpu-carry; docs/gpu.md):
#
#   benchmarks/device_carry.sh OUTFILE.tar.gz WHEELDIR FACESDIR
#
# Packs, under one top folder dfig/: the repository's tracked files as they are in this working tree
# (no .git), WHEELDIR as work/gpu-wheels, FACESDIR as work/device/faces, and dfig-commit.json (commit,
# branch, dirty: what the manifest records as the commit in a copy without .git). The size of what
# travels (the files, unpacked; the .tar.gz is smaller) is printed per part and refused above 64 MiB
# (CARRY_LIMIT_MIB). Exit 0 written, 2 bad input or too big (nothing written then).
set -euo pipefail
LIMIT_MIB="${CARRY_LIMIT_MIB:-64}"
if [[ $# -ne 3 ]]; then
  echo "usage: benchmarks/device_carry.sh OUTFILE.tar.gz WHEELDIR FACESDIR" >&2; exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTFILE="$(realpath -m "$1")" WHEELS="$2" FACES="$3"
[[ -d "$WHEELS" ]] || { echo "no wheel folder $WHEELS: run make gpu-wheels" >&2; exit 2; }
[[ -d "$FACES/train" ]] || { echo "no faces at $FACES: run make device-faces" >&2; exit 2; }
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) \
  || { echo "$ROOT is not a git clone: the commit stamp needs git (carry from a clone)" >&2; exit 2; }
branch=$(git -C "$ROOT" rev-parse --abbrev-ref HEAD)
# dirty as dfig.report.manifest.git_info says it: tracked code changed, regenerated outputs aside
dirty=false
[[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no -- . ':(exclude)reports' \
  ':(exclude)DFIG_v2.pdf')" ]] || dirty=true

stage=$(mktemp -d "${TMPDIR:-/tmp}/dfig-carry.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dfig/work/device"
(cd "$ROOT" && git ls-files -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$stage/dfig"
mib() { du -sb "$@" | awk '{s += $1} END {printf "%.1f", s / 1048576}'; }
tracked=$(mib "$stage/dfig")
cp -r "$WHEELS" "$stage/dfig/work/gpu-wheels"
cp -r "$FACES" "$stage/dfig/work/device/faces"
printf '{"commit": "%s", "branch": "%s", "dirty": %s}\n' "$commit" "$branch" "$dirty" >"$stage/dfig/dfig-commit.json"
total=$(mib "$stage/dfig")
sizes="tracked files $tracked MiB + wheels $(mib "$WHEELS") MiB + faces $(mib "$FACES") MiB = $total MiB"
if awk -v t="$total" -v l="$LIMIT_MIB" 'BEGIN {exit !(t > l)}'; then
  echo "carry: REFUSED, $sizes is above the $LIMIT_MIB MiB limit (fewer faces: DEVICE_FACES_PER_CLASS;" \
    "no typst: GPU_TYPST=0)" >&2
  exit 2
fi
mkdir -p "$(dirname "$OUTFILE")"
tar -czf "$OUTFILE.part" -C "$stage" dfig
mv "$OUTFILE.part" "$OUTFILE"
echo "carry: $OUTFILE ($(mib "$OUTFILE") MiB packed; $sizes unpacked, limit $LIMIT_MIB MiB;" \
  "commit ${commit:0:12}$([[ $dirty == true ]] && echo ' + uncommitted changes'))"
