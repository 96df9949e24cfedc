"""``python -m dfig.segment``: the command line of :func:`dfig.stages.segment.segment_tree`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfig.accel import DEFAULT_PRECISION, PRECISION_CHOICES
from dfig.data.images import BAD_FILE_POLICIES, BadImageError
from dfig.stages.segment.base import CSV_NAME, FACE_FORMATS, SAM_MODEL_TYPES
from dfig.stages.segment.build import SEGMENTERS, build_segmenter
from dfig.stages.segment.output import default_mask_dir
from dfig.stages.segment.prompts import PROMPTS
from dfig.stages.segment.tree import segment_tree
from dfig.tree import parse_shard
from dfig.weights import MissingWeightsError, WrongWeightsError


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m dfig.segment``. Returns the parser."""
    ap = argparse.ArgumentParser(
        prog="python -m dfig.segment",
        description="Face masks with SAM (or a labelled fallback) over a dataset tree.",
    )
    ap.add_argument("--input_dir", required=True, help="raw images, {split}/{class}/* or a flat folder")
    ap.add_argument("--output_dir", required=True, help="masked faces (mirrors the input tree)")
    ap.add_argument(
        "--segmenter",
        default="sam",
        choices=tuple(SEGMENTERS),
        help="sam (default) or a fallback: prior (aligned-face ellipse), none (whole image)",
    )
    ap.add_argument("--model_type", default="vit_h", choices=SAM_MODEL_TYPES)
    ap.add_argument(
        "--checkpoint", default=None, help="SAM file or folder (default: pretrained/ or $DFIG_WEIGHTS)"
    )
    ap.add_argument(
        "--verify",
        default="size",
        choices=("none", "size", "hash"),
        help="how the SAM file is checked (none: a non-official file, e.g. fine-tuned)",
    )
    ap.add_argument("--prompt", default="points", choices=tuple(PROMPTS))
    ap.add_argument(
        "--face_format",
        default="png",
        choices=FACE_FORMATS,
        help="png (lossless, default) or jpg (the original: cv2 JPEG quality 95)",
    )
    ap.add_argument(
        "--mask_dir", default=None, help="default: <parent>/masks for .../faces, else <output_dir>_masks"
    )
    ap.add_argument("--shard", default="0/1", help="K/N: this process takes every N-th file from K")
    ap.add_argument("--policy", default="skip", choices=BAD_FILE_POLICIES, help="bad input files")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISION_CHOICES,
        help="SAM encoder: auto = bf16/fp16 on CUDA if the startup mask check passes, else fp32",
    )
    ap.add_argument(
        "--batch_size", type=int, default=None, help="SAM images per encoder pass (default: 8 CUDA, 1 CPU)"
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the faces, masks and records already in --output_dir first (needed to "
        "change the segmenter, its weights or the face format there)",
    )
    ap.add_argument("--no_progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    """``python -m dfig.segment``: segment a dataset tree (as the original SAM.py was used)."""
    a = build_parser().parse_args(argv)
    from dfig.clierrors import USER_ERRORS, fail, output_error
    from dfig.fallback import FallbackNotAllowed

    try:
        seg, rec = build_segmenter(
            a.segmenter,
            model_type=a.model_type,
            checkpoint=a.checkpoint,
            prompt=a.prompt,
            device=a.device,
            verify=a.verify,
            precision=a.precision,
            batch_size=a.batch_size,
        )
    except (FallbackNotAllowed, MissingWeightsError, WrongWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    w = rec.get("weights")
    print(
        f"segmenter: {rec['name']}"
        + (f" ({w['path']}, sha256 {str(w['sha256'])[:16]})" if w else "")
        + (f"  FALLBACK: {rec['fallback']['reason']}" if rec.get("fallback") else "")
    )
    try:
        report = segment_tree(
            a.input_dir,
            a.output_dir,
            seg,
            record=rec,
            face_format=a.face_format,
            mask_dir=a.mask_dir,
            policy=a.policy,
            shard=parse_shard(a.shard),
            progress=not a.no_progress,
            overwrite=a.overwrite,
        )
    except (BadImageError, *USER_ERRORS) as e:  # a read-only or full output folder too: one line
        return fail(output_error(e, a.output_dir, "--output_dir"))
    print(report.summary())
    out = Path(a.output_dir)
    print(
        f"faces: {out}  masks: {Path(a.mask_dir) if a.mask_dir else default_mask_dir(out.resolve())}  "
        f"table: {out / CSV_NAME}"
    )
    return 0


__all__ = ["build_parser", "main"]
