"""Output CSV and the command line of ``python -m dfig.predict``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dfig import io
from dfig.stages.predict.pipeline import MAX_PIXELS, PipelineMismatchError
from dfig.stages.predict.scoring import predict_folder

# ---------------------------------------------------------------------------------------------
# output and CLI


def default_output_csv(
    model_path: str | os.PathLike[str], input_dir: str | os.PathLike[str], raw: bool
) -> Path:
    """``<checkpoint folder>/predict_<input folder name>[_raw].csv``.

    The ``predict_`` prefix keeps it apart from everything ``dfig.stages.train`` writes there
    (``predictions_{val,test}.csv``, ``summary.json``, ``log.*``, ``model_epoch_*.pth``).
    """
    name = Path(input_dir).resolve().name or "input"
    return Path(model_path).resolve().parent / f"predict_{name}{'_raw' if raw else ''}.csv"


def check_destination(
    dest: str | os.PathLike[str], input_dir: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Refuse a CSV destination inside the input tree, an existing file (unless ``overwrite``) or an
    unwritable folder, before any work. Returns: the resolved path. Raises ValueError/FileExistsError/
    PermissionError naming the file and the flag that fixes it."""
    from dfig.clierrors import check_writable

    dest, inp = Path(dest).resolve(), Path(input_dir).resolve()
    if inp in dest.parents:
        raise ValueError(
            f"{dest} lies inside the input folder {inp}: predictions are never written into "
            "the input tree; choose another --output_csv"
        )
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"{dest} already exists and was not written by this call: pass --overwrite to "
            "replace it, or choose another --output_csv"
        )
    check_writable(dest.parent, "--output_csv")
    return dest


def write_predictions(
    df: Any, dest: str | os.PathLike[str], input_dir: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write the CSV atomically; refuses a destination inside ``input_dir`` or an existing file
    (unless ``overwrite``), see :func:`check_destination`. Returns: the path written."""
    dest = check_destination(dest, input_dir, overwrite)
    io.save_predictions_csv(df, dest)  # paths portable (dfig.paths.portable)
    return dest


def summary(df: Any) -> dict[str, Any]:
    """Counts, mean p_fake and (when labels are known) metrics at the threshold used."""
    out: dict[str, Any] = {
        "n": int(len(df)),
        "pred_fake": int(df["pred_label"].sum()),
        "pred_real": int((1 - df["pred_label"]).sum()),
        "mean_p_fake": float(df["p_fake"].mean()) if len(df) else float("nan"),
        "threshold": df.attrs.get("threshold"),
        "skipped": len(df.attrs.get("skipped", [])),
    }
    if "true_label" in df and len(df):
        from dfig.core.metrics import compute_metrics

        m = compute_metrics(df["true_label"].to_numpy(), df["p_fake"].to_numpy(), out["threshold"] or 0.5)
        out["metrics"] = {k: float(m[k]) for k in ("acc", "real_acc", "fake_acc", "ap", "roc_auc", "eer")}
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m dfig.predict`` (``--backbone``/``--mode``: aliases). Returns: the parser."""
    ap = argparse.ArgumentParser(
        prog="python -m dfig.predict", description="Score a folder with a trained detector."
    )
    ap.add_argument("--model_path", required=True, help="model_epoch_best.pth of a dfig.stages.train run")
    ap.add_argument("--input_dir", required=True, help="LNP folder (or raw photos with --raw)")
    ap.add_argument(
        "--arch",
        "--backbone",
        dest="arch",
        default=None,
        help="res50 | mobilev2 | res34: checked against the checkpoint (alias: --backbone, the original flag)",
    )
    ap.add_argument(
        "--train_mode",
        "--mode",
        dest="train_mode",
        default=None,
        help="0 | 1 | 2 | lnp | spec: checked against the checkpoint (alias: --mode, the original flag)",
    )
    ap.add_argument("--raw", action="store_true", help="input_dir holds raw photos: segment -> LNP in memory")
    ap.add_argument("--output_csv", default=None, help="default: next to the checkpoint")
    ap.add_argument("--threshold", default="0.5", help="0.5 (default), a number, or 'val' (the checkpoint's)")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--policy", default="skip", choices=("skip", "strict"))
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --output_csv")
    ap.add_argument(
        "--max_pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"refuse larger images (default {MAX_PIXELS}; 0: no limit)",
    )
    ap.add_argument("--no_progress", action="store_true")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.predict --arch res50 --train_mode 0 --model_path F --input_dir D [--raw]``.

    ``--backbone`` and ``--mode`` (the original DFIG script's flags) are aliases of ``--arch`` and
    ``--train_mode``, the names the training options, profiles and notebooks use.
    """
    ap = build_parser()
    a = ap.parse_args(argv)
    from dfig.clierrors import USER_ERRORS, fail

    try:
        df, dest = _run_cli(a)
    except (*USER_ERRORS, PipelineMismatchError) as e:
        return fail(e)
    s = summary(df)
    print(f"features: {df.attrs['pipeline']}")
    print(
        f"{s['n']} images scored ({s['skipped']} skipped): {s['pred_fake']} predicted fake, "
        f"{s['pred_real']} real at threshold {s['threshold']:.4g}; mean p_fake {s['mean_p_fake']:.4f}"
    )
    for p, r in df.attrs["skipped"][:20]:
        print(f"  SKIPPED {p}: {r}")
    for p, r in df.attrs.get("no_face", [])[:20]:
        print(f"  NO FACE {p}: {r}")
    if "metrics" in s:
        print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in s["metrics"].items()))
    for msg in df.attrs.get("input_warnings", []):
        print(f"WARNING: {msg}")
    print(f"predictions: {dest}")
    return 0


def _run_cli(a: argparse.Namespace) -> tuple[Any, Path]:
    """Check the input and the destination first, then score and write (for :func:`main`)."""
    try:
        thr: float | str = "val" if a.threshold == "val" else float(a.threshold)
    except ValueError:
        raise ValueError(f"--threshold {a.threshold!r}: give a number (e.g. 0.5) or 'val'") from None
    from dfig.stages.train import check_checkpoint_file

    check_checkpoint_file(a.model_path)
    if not Path(a.input_dir).is_dir():
        raise FileNotFoundError(f"--input_dir {a.input_dir}: no such folder (check the path)")
    dest = check_destination(
        a.output_csv or default_output_csv(a.model_path, a.input_dir, a.raw), a.input_dir, a.overwrite
    )
    df = predict_folder(
        a.model_path,
        a.input_dir,
        raw=a.raw,
        backbone=a.arch,
        mode=a.train_mode,
        batch_size=a.batch_size,
        device=a.device,
        threshold=thr,
        policy=a.policy,
        progress=not a.no_progress,
        max_pixels=a.max_pixels or None,
    )
    return df, write_predictions(df, dest, a.input_dir, overwrite=a.overwrite)


__all__ = ["build_parser", "check_destination", "default_output_csv", "main", "summary", "write_predictions"]


if __name__ == "__main__":
    sys.exit(main())
