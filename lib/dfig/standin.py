"""Stand-in weights: random weights, from a fixed seed, in exactly the official file formats and names.

    python -m dfig.weights standin --out DIR [--only sam_vit_b,cycleisp_sidd_rgb] [--seed 0]
    python -m dfig.standin --out DIR ...   (the same command)

With them every code path that needs an official checkpoint runs (the strict loaders accept them, the
shapes and key names are the official ones) where the real files cannot be had, e.g. on a GPU
machine without internet (``benchmarks/device_check.sh``) or in CI. Their outputs are meaningless,
and they are never mistaken for official files: each file carries a marker twice (see
:mod:`dfig.weights`), every stage records :data:`dfig.weights.STANDIN_LABEL`, the manifest lists them
and the paper prints a banner on page 1. The ``paper`` profile refuses them; ``paper-standin``
requires them.

Formats written (``name`` -> file):

- ``sam_vit_h`` / ``sam_vit_l`` / ``sam_vit_b`` -> ``sam_vit_*_*.pth``: the plain state dict of
  segment-anything's ``Sam`` (random weights from the modules' own initialisers).
- ``cycleisp_sidd_rgb`` -> ``sidd_rgb.pth``: ``{"state_dict": {"module.<key>": tensor}}``.
- ``resnet50`` / ``resnet34`` / ``mobilenet_v2`` -> torchvision's ImageNet files (1000-class heads,
  no ``num_batches_tracked``, as the V1 releases).
- ``mobilenetv2_c5e733a8`` -> ``mobilenetv2-c5e733a8.pth`` in the d-li14/mobilenetv2.pytorch layout
  (``features.N.conv.M.*``, top-level ``conv.*``, ``classifier.*``).

SAM vit_h is ~2.5 GB: write only what a run needs (``--only``). A stand-in already there with the
same seed is kept (fast reruns); a file that is not a stand-in is never overwritten.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dfig import io, paths, weights
from dfig.core.models.backbones import BACKBONES, DLI14_MOBILENETV2, IMAGENET_WEIGHTS
from dfig.registry import UnknownNameError, lookup

DEFAULT_SEED = 0
#: what ``standin`` writes without ``--only``: every file the ``paper`` profile requires
DEFAULT_NAMES: tuple[str, ...] = (
    "sam_vit_h",
    "cycleisp_sidd_rgb",
    *(names[0] for names in IMAGENET_WEIGHTS.values()),  # each backbone's preferred ImageNet file
)
MARKER_FORMAT = "dfig-standin/1"


def default_dir() -> Path:
    """Where stand-ins go by default, and where the ``paper-standin`` profile looks: ``work/standin-weights``."""
    return paths.work_dir("standin-weights")


def _sam(model_type: str) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        from segment_anything import sam_model_registry

        sd = sam_model_registry[model_type](checkpoint=None).state_dict()
        return sd, sd

    return build


def _cycleisp() -> tuple[Any, Any]:
    from dfig.core.denoise import CycleISPDenoiser

    sd = OrderedDict((f"module.{k}", v) for k, v in CycleISPDenoiser().state_dict().items())
    return {"state_dict": sd}, sd


def _torchvision_sd(ctor: str) -> OrderedDict:
    import torchvision

    sd = getattr(torchvision.models, ctor)(weights=None, num_classes=1000).state_dict()
    return OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))


def _torchvision(ctor: str) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        sd = _torchvision_sd(ctor)
        return sd, sd

    return build


def _dli14() -> tuple[Any, Any]:
    from dfig.core.models.pretrained import dli14_mobilenetv2_names

    tv = _torchvision_sd("mobilenet_v2")
    sd = OrderedDict(zip(dli14_mobilenetv2_names(list(tv)), tv.values()))
    return sd, sd


#: registry name -> builder() -> (object to save, the state dict that carries the marker attribute);
#: the ImageNet entries come from the backbone registry (torchvision layout, or the d-li14 one)
BUILDERS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "sam_vit_h": _sam("vit_h"),
    "sam_vit_l": _sam("vit_l"),
    "sam_vit_b": _sam("vit_b"),
    "cycleisp_sidd_rgb": _cycleisp,
    **{
        w: _dli14 if w == DLI14_MOBILENETV2 else _torchvision(spec.torchvision_name)
        for spec in BACKBONES.values()
        for w in spec.weights
    },
}


def _existing(dest: Path, name: str, seed: int, overwrite: bool) -> dict[str, Any] | None:
    """The marker of a stand-in already at ``dest`` worth keeping; refuses to touch a non-stand-in."""
    if not dest.exists():
        return None
    try:
        info = weights.standin_info(dest)
    except weights.WrongWeightsError as e:
        raise FileExistsError(
            f"{dest}: exists and its stand-in marker does not match it ({e}); "
            "never overwritten: remove it or choose another --out"
        ) from None
    if info is None:
        raise FileExistsError(
            f"{dest}: exists and is not a stand-in (an official file?); never overwritten: "
            "choose another --out"
        )
    keep = (
        not overwrite
        and info.get("seed") == seed
        and info.get("weights") == name
        and weights.standin_marker_path(dest).is_file()
    )
    return info if keep else None


def write_standin(
    name: str, out_dir: str | Path, seed: int = DEFAULT_SEED, overwrite: bool = False
) -> dict[str, Any]:
    """Write the stand-in of registry entry ``name`` into ``out_dir`` (atomically) with its sidecar marker.

    Arguments: ``name`` (a key of :data:`BUILDERS`), ``out_dir``, ``seed`` (the weights are a function of
    it and of the torch version), ``overwrite`` (rewrite a stand-in even when one with this seed is there).
    Returns ``{name, file, path, size, sha256, seed, status}`` with ``status`` ``"written"`` or ``"kept"``.
    Raises :class:`dfig.registry.UnknownNameError` (a ``KeyError``) for an unknown name and ``FileExistsError`` when ``out_dir`` holds a file of that
    name that is not a stand-in (it is never overwritten).
    """
    import torch

    build = lookup(BUILDERS, name, "stand-in")
    s = weights.spec(name)
    dest = Path(out_dir) / s.filename
    old = _existing(dest, name, seed, overwrite)
    if old is not None:
        return _record(name, dest, old, "kept")
    marker = {
        "format": MARKER_FORMAT,
        "standin": True,
        "label": weights.STANDIN_LABEL,
        "weights": name,
        "file": s.filename,
        "seed": seed,
        "generator": "dfig.standin",
        "torch": str(torch.__version__),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        obj, sd = build()
    setattr(sd, weights.STANDIN_ATTR, dict(marker))
    with io.atomic_path(dest) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # a file object: the archive is named "archive", not after the temp file
    side = {
        **marker,
        "size": dest.stat().st_size,
        "sha256": weights.sha256_file(dest),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": f"Random weights in the format of the official {s.filename}; NOT the official checkpoint.",
    }
    io.save_json(side, weights.standin_marker_path(dest))
    return _record(name, dest, side, "written")


def _record(name: str, dest: Path, marker: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "name": name,
        "file": dest.name,
        "path": str(dest),
        "size": marker.get("size"),
        "sha256": marker.get("sha256"),
        "seed": marker.get("seed"),
        "status": status,
    }


def write_standins(
    out_dir: str | Path | None = None,
    names: tuple[str, ...] | list[str] = DEFAULT_NAMES,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Write several stand-ins (see :func:`write_standin`) into ``out_dir`` (default :func:`default_dir`).

    Returns one record per name, with ``seconds`` added.
    """
    out = Path(out_dir) if out_dir is not None else default_dir()
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise UnknownNameError("stand-in", unknown[0] if len(unknown) == 1 else unknown, BUILDERS)
    recs = []
    for n in names:
        t0 = time.perf_counter()
        rec = write_standin(n, out, seed=seed, overwrite=overwrite)
        recs.append({**rec, "seconds": round(time.perf_counter() - t0, 1)})
    return recs


def main(argv: list[str] | None = None) -> int:
    """CLI ``python -m dfig.weights standin``: write stand-in weights; exit 2 with one line on bad input."""
    ap = argparse.ArgumentParser(
        prog="python -m dfig.weights standin",
        description="Write stand-in (random) weights in the official formats and names.",
    )
    ap.add_argument("--out", default=None, help=f"folder (default: {paths.rel(default_dir())})")
    ap.add_argument(
        "--only",
        default=",".join(DEFAULT_NAMES),
        help=f"comma-separated registry names (default: what the paper profile needs); all: {','.join(BUILDERS)}",
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--overwrite", action="store_true", help="rewrite stand-ins already there")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    try:
        recs = write_standins(args.out, names, seed=args.seed, overwrite=args.overwrite)
    except (KeyError, FileExistsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in recs:
        print(
            f"{r['status']:>7}  {r['name']:<22} {r['path']}  {r['size'] / 1e6:8.1f} MB  seed {r['seed']}  "
            f"{r['seconds']:.1f}s  [{weights.STANDIN_LABEL}]"
        )
    return 0


__all__ = [
    "BUILDERS",
    "DEFAULT_NAMES",
    "DEFAULT_SEED",
    "default_dir",
    "write_standin",
    "write_standins",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())
