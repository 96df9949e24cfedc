"""Copy a small subset of the face sample ({train,val,test}/{real,fake}) into an ignored folder.

    python benchmarks/face_subset.py --per_class 40 --out work/device/faces     # to carry to a GPU machine
    python benchmarks/face_subset.py --per_class 1 --out /tmp/tiny --synthetic_if_absent   # CI

The first ``per_class`` files (sorted by name) of each split and class are copied (atomically) from
the face sample (``DFIG_SAMPLE_DATA`` or ``--src``); the input tree is only read. ``--out`` must be a
new folder, or one this script made with the same settings (then it is kept as is); anything else is
never overwritten. Without the sample, ``--synthetic_if_absent`` writes the deterministic synthetic
set instead (labelled SYNTHETIC by the notebooks); otherwise the script exits 3 ("skipped").
Never commit the output: the images are not ours to publish (README, Data).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from dfig import io, paths
from dfig.data.layout import CLASS_DIRS, IMAGE_EXTS, SPLITS

MARKER = ".dfig_subset.json"
EXIT_SKIPPED = 3


def _copy(p: Path, dest: Path, size: int) -> None:
    """Copy one photo; with ``size`` > 0 write it resized to size x size (JPEG q95) instead."""
    from PIL import Image

    with io.atomic_path(dest) as tmp:
        if not size:
            shutil.copyfile(p, tmp)
            return
        with Image.open(p) as im:
            im.convert("RGB").resize((size, size), Image.BICUBIC).save(tmp, format="JPEG", quality=95)


def make_subset(src: Path, out: Path, per_class: int, size: int = 0) -> dict:
    """Copy ``per_class`` images of each split/class of ``src`` into ``out`` (resized to ``size`` px when
    > 0, e.g. for a cheap CPU check); returns ``{source, per_class, size, counts}``."""
    src, out = src.resolve(), out.resolve()
    if out == src or src in out.parents:
        raise ValueError(f"--out {out} lies inside the source tree {src}: never written into")
    want = {"source": paths.rel(src), "per_class": per_class, "size": size}
    if out.exists() and any(out.iterdir()):
        old = io.load_json(out / MARKER) if (out / MARKER).is_file() else None
        if old and {k: old.get(k) for k in want} == want:
            return old
        raise FileExistsError(
            f"{out} exists and is not a subset made with these settings: never overwritten "
            "(remove it or choose another --out)"
        )
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        for cls in sorted(d.name for d in (src / split).iterdir() if d.name in CLASS_DIRS):
            files = sorted(p for p in (src / split / cls).iterdir() if p.suffix.lower() in IMAGE_EXTS)[
                :per_class
            ]
            if not files:
                raise FileNotFoundError(f"{src / split / cls}: no images")
            for p in files:
                _copy(p, out / split / cls / p.name, size)
            counts.setdefault(split, {})[cls] = len(files)
    rec = {**want, "counts": counts}
    io.save_json(rec, out / MARKER)
    return rec


def main(argv: list[str] | None = None) -> int:
    """CLI (see module doc). Exit 0 done, 2 bad input, 3 skipped (no sample and no --synthetic_if_absent)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--per_class", type=int, default=40, help="images per split and class")
    ap.add_argument(
        "--size", type=int, default=0, help="resize to SIZE x SIZE px (0: copy the files as they are)"
    )
    ap.add_argument(
        "--src", default=None, help="face sample root (default: DFIG_SAMPLE_DATA or ../shared/...)"
    )
    ap.add_argument(
        "--synthetic_if_absent",
        action="store_true",
        help="write the tiny synthetic set when the face sample is absent",
    )
    args = ap.parse_args(argv)
    src = Path(args.src) if args.src else paths.sample_data_dir()
    out = Path(args.out)
    if not (src / "train").is_dir():
        if not args.synthetic_if_absent:
            print(
                f"skipped: face sample not found at {src} (set DFIG_SAMPLE_DATA or pass --src)",
                file=sys.stderr,
            )
            return EXIT_SKIPPED
        from dfig.data.synthetic import generate

        generate(out, n_train=max(1, args.per_class), n_eval=max(1, args.per_class), size=args.size or 128)
        print(f"face sample absent: wrote the SYNTHETIC set ({args.per_class} per split/class) to {out}")
        return 0
    try:
        rec = make_subset(src, out, args.per_class, args.size)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{out}: {rec['counts']} from {rec['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
