"""SAM images/s: the original per-image loop (rebuild + load + one image) vs dfig's batched path, one run.

    python benchmarks/bench_sam.py [--model_type vit_h] [--checkpoint FILE] [--n 32] [--naive_n 3]
        [--batch_size B] [--precision auto] [--prompt points] [--device cuda|cpu] [--images DIR] [--json F]

- ``naive`` (the original SAM.py): for every image, build SAM with ``sam_model_registry[type](checkpoint=F)``
  (the whole checkpoint is read again), move it to the device, read the JPEG, ``SamPredictor.set_image``,
  the two-point prompt in fp32, write the masked face and the mask. Timed on ``--naive_n`` images.
- ``ours``: the model is built and loaded ONCE (:func:`dfig.stages.segment.load_sam`; not in the timing, printed);
  :func:`dfig.stages.segment.segment_stream` decodes and resizes in DataLoader workers (pinned memory on CUDA),
  the encoder runs on ``--batch_size`` images per forward pass (still one pass per image) under the
  precision chosen by the startup fidelity check (``auto``: bf16/fp16 autocast on CUDA only when every
  mask has IoU >= 0.99 with fp32), prompts are decoded batched, faces/masks are encoded and written by
  background threads. A warm-up batch (it runs the check) is not timed; then all ``--n`` images are.

Without ``--checkpoint`` the weights are random (seed 0), written once to a temporary file so that the
naive loop still reads a full checkpoint per image (the masks are meaningless; the cost is real). Also
printed: the IoU of our masks with the naive masks on the naive images, and encoder passes per image.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchcommon import add_common_args, check_device, finish, header, pick_images, sync

from dfig.accel import DEFAULT_PRECISION, PRECISION_CHOICES, loader_workers
from dfig.data import load_rgb
from dfig.stages import segment as S


def naive_one(
    model_type: str, ckpt: Path, path: Path, out: Path, device: torch.device, prompt: str
) -> np.ndarray:
    """The original loop body: rebuild + load SAM, one image, fp32, write face + mask. Returns the mask."""
    from segment_anything import sam_model_registry

    sam = sam_model_registry[model_type](checkpoint=str(ckpt)).to(device)
    seg = S.SamSegmenter(sam, prompt=prompt, model_type=model_type, precision="fp32", batch_size=1)
    rgb = np.asarray(load_rgb(path))
    mask = seg.segment(rgb).mask
    S.write_face_and_mask(rgb, mask, out / f"{path.stem}.png", out / f"{path.stem}_mask.png")
    return mask


def run_ours(seg: S.SamSegmenter, files: list[Path], out: Path, workers: int) -> dict[Path, np.ndarray]:
    """dfig's path over ``files``: loader workers, batched encoder + prompts, background writes."""
    from concurrent.futures import ThreadPoolExecutor

    masks: dict[Path, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futs = []
        for path, rgb, res in S.segment_stream(files, seg, workers=workers):
            if isinstance(res, str):
                raise SystemExit(f"error: {path}: {res}")
            masks[path] = res.mask
            futs.append(
                pool.submit(
                    S.write_face_and_mask,
                    rgb,
                    res.mask,
                    out / f"{path.stem}.png",
                    out / f"{path.stem}_mask.png",
                )
            )
        for f in futs:
            f.result()
    return masks


def weights_file(a: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    if a.checkpoint:
        return Path(a.checkpoint), Path(a.checkpoint).name
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    path = tmp / f"random_sam_{a.model_type}.pth"
    torch.save(sam_model_registry[a.model_type]().state_dict(), path)
    return path, f"random (seed 0; no --checkpoint), {path.stat().st_size / 1e9:.2f} GB temporary file"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model_type", default="vit_h", choices=S.SAM_MODEL_TYPES)
    ap.add_argument("--checkpoint", default=None, help="SAM .pth of --model_type (default: random weights)")
    ap.add_argument("--n", type=int, default=32, help="images for our path")
    ap.add_argument("--naive_n", type=int, default=3, help="images for the naive loop (each rebuilds SAM)")
    ap.add_argument(
        "--batch_size", type=int, default=None, help="images per encoder pass (default: 8 CUDA, 1 CPU)"
    )
    ap.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISION_CHOICES)
    ap.add_argument("--prompt", default="points", choices=("points", "box"))
    ap.add_argument(
        "--workers", type=int, default=None, help="decoding workers (default: 0 CPU, up to 8 CUDA)"
    )
    add_common_args(ap)
    a = ap.parse_args(argv)
    dev = check_device(a.device)
    files = pick_images(a.images, max(a.n, a.naive_n))
    ours_files, naive_files = files[: a.n], files[: min(a.naive_n, len(files))]
    workers = loader_workers(dev) if a.workers is None else a.workers
    info = header(
        "sam",
        dev,
        model=f"SAM {a.model_type}, prompt {a.prompt}",
        images=f"{len(files)} from {files[0].parent.parent}",
    )
    with tempfile.TemporaryDirectory(prefix="bench_sam_") as td:
        tmp = Path(td)
        ckpt, wdesc = weights_file(a, tmp)
        print(f"  weights: {wdesc}")
        (tmp / "naive").mkdir()
        (tmp / "ours").mkdir()
        naive_masks, naive_s = {}, []
        for p in naive_files:
            sync(dev)
            t = time.perf_counter()
            naive_masks[p] = naive_one(a.model_type, ckpt, p, tmp / "naive", dev, a.prompt)
            sync(dev)
            naive_s.append(time.perf_counter() - t)
            print(f"  naive {p.name}: {naive_s[-1]:.2f} s (rebuild + load + 1 image)")
        t = time.perf_counter()
        seg = S.SamSegmenter(
            S.load_sam(a.model_type, ckpt, str(dev)),
            prompt=a.prompt,
            model_type=a.model_type,
            precision=a.precision,
            batch_size=a.batch_size,
        )
        build_s = time.perf_counter() - t
        warm = ours_files[: seg.batch_size]
        run_ours(seg, warm, tmp / "ours", workers)  # startup check + autotuning, untimed
        print(
            f"  ours: built once in {build_s:.1f} s; batch {seg.batch_size}, workers {workers}; "
            f"precision {seg.precision_record}"
        )
        passes0 = seg.encoder_passes
        sync(dev)
        t = time.perf_counter()
        masks = run_ours(seg, ours_files, tmp / "ours", workers)
        sync(dev)
        ours_s = time.perf_counter() - t
        passes = (seg.encoder_passes - passes0) / len(ours_files)
    ious = [S.mask_iou(naive_masks[p], masks[p]) for p in naive_masks if p in masks]
    naive_ips, ours_ips = len(naive_s) / sum(naive_s), len(ours_files) / ours_s
    print(
        f"  ours: {len(ours_files)} images in {ours_s:.2f} s, {passes:.2f} encoder passes per image; "
        f"mask IoU with naive: min {min(ious) if ious else float('nan'):.4f}"
    )
    settings = {
        "model_type": a.model_type,
        "weights": wdesc,
        "prompt": a.prompt,
        "n": len(ours_files),
        "naive_n": len(naive_s),
        "batch_size": seg.batch_size,
        "workers": workers,
        "precision_requested": a.precision,
        "pinned_memory": dev.type == "cuda",
    }
    return finish(
        a.json,
        "sam",
        info,
        naive_ips,
        ours_ips,
        settings,
        precision=seg.precision_record,
        build_s=build_s,
        naive_s_per_image=naive_s,
        naive_s_median=statistics.median(naive_s),
        ours_s=ours_s,
        encoder_passes_per_image=passes,
        mask_iou_vs_naive_min=min(ious) if ious else None,
        mask_iou_vs_naive_mean=float(np.mean(ious)) if ious else None,
    )


if __name__ == "__main__":
    main()
