"""``python -m dfig.lnp``: the command line of :func:`dfig.stages.lnp.extract_tree`."""

from __future__ import annotations

import argparse
from pathlib import Path

from dfig.accel import DEFAULT_PRECISION, PRECISION_CHOICES
from dfig.data.images import BAD_FILE_POLICIES
from dfig.io import STAGE_META
from dfig.stages.lnp.files import SAVE_MODES
from dfig.stages.lnp.tree import extract_tree
from dfig.tree import parse_shard


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m dfig.lnp``. Returns the parser."""
    from dfig.core.denoise import CLASSICAL_H, DENOISERS

    ap = argparse.ArgumentParser(prog="python -m dfig.lnp", description="Extract LNPs over an image tree.")
    ap.add_argument("--input_dir", required=True, help="masked faces (or any image tree)")
    ap.add_argument("--output_dir", required=True, help="where the LNP tree is written (mirrored paths)")
    ap.add_argument(
        "--save_mode",
        choices=SAVE_MODES,
        default="compat",
        help="compat: original PNG arithmetic (BGR in); clean: signed float16 .npy (RGB)",
    )
    ap.add_argument("--denoiser", choices=list(DENOISERS), default="cycleisp")
    ap.add_argument(
        "--classical_h",
        type=float,
        default=None,
        help=f"strength h > 0 of the classical denoiser (classical, or cycleisp's fallback; default {CLASSICAL_H})",
    )
    ap.add_argument("--checkpoint", default=None, help="sidd_rgb.pth (file or folder; default pretrained/)")
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--shard", default="0/1", help="K/N: process every N-th file starting at K")
    ap.add_argument("--policy", choices=BAD_FILE_POLICIES, default="skip", help="bad input files")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=DEFAULT_PRECISION,
        help="auto: fp32 on CPU; on CUDA bf16/fp16 autocast if the startup fidelity check passes",
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: 0 on CPU, up to 8 on CUDA)"
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the LNPs and record already in --output_dir first (needed to change the "
        "save mode, denoiser or its parameters there)",
    )
    ap.add_argument("--no_progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    """``python -m dfig.lnp --input_dir MASKED --output_dir LNP [...]``."""
    from dfig.core.denoise import build_denoiser
    from dfig.fallback import FallbackNotAllowed

    args = build_parser().parse_args(argv)
    from dfig.clierrors import USER_ERRORS, fail, output_error

    try:
        parse_shard(args.shard)
        if not Path(args.input_dir).is_dir():
            raise FileNotFoundError(f"--input_dir {args.input_dir}: no such folder (check the path)")
        denoiser, record = build_denoiser(
            args.denoiser, checkpoint=args.checkpoint, device=args.device, classical_h=args.classical_h
        )
    except (FallbackNotAllowed, *USER_ERRORS) as e:
        return fail(e)
    how = record.get("method")
    if record.get("classical"):
        how += f" (h={record['classical']['h']:g})"
    if record.get("fallback"):
        how += " (FALLBACK instead of CycleISP: " + record["fallback"]["reason"] + ")"
    elif record.get("file"):
        how += f" ({record['file']}, sha256 {str(record.get('sha256'))[:12]})"
    print(
        f"LNP: {args.input_dir} -> {args.output_dir}  save_mode={args.save_mode}  denoiser={how}  "
        f"shard={args.shard}  device={args.device}",
        flush=True,
    )
    try:
        report = extract_tree(
            args.input_dir,
            args.output_dir,
            denoiser,
            save_mode=args.save_mode,
            batch_size=args.batch_size,
            shard=args.shard,
            policy=args.policy,
            device=args.device,
            progress=not args.no_progress,
            precision=args.precision,
            record=record,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except USER_ERRORS as e:
        return fail(output_error(e, args.output_dir, "--output_dir"))
    print(report.summary())
    print(f"stage record: {Path(args.output_dir) / STAGE_META}")
    return 0


__all__ = ["build_parser", "main"]
