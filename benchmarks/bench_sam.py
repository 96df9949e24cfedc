"""Seconds per image for SAM on CPU, split into image encoder vs prompt decoding.

    python benchmarks/bench_sam.py [--model_type vit_b] [--checkpoint FILE] [--n 3] [--prompt points]

Without ``--checkpoint`` the model has random weights (fixed seed): the cost is the same as with the
official file, the masks are meaningless. Images: the first N of the face sample's val split
(alternating real/fake). Confirms that each image costs exactly one image-encoder pass.
Prints one line per image and a JSON summary (``--json FILE`` also writes it). Wall-clock seconds
depend on what else runs on the machine; ``cpu_s`` (CPU time of all threads) much less so.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dfig import paths
from dfig import segment as S
from dfig.data import load_rgb


def _images(n: int) -> list[Path]:
    root = paths.sample_data_dir() / "val"
    if not root.is_dir():
        raise SystemExit(f"face sample not found at {paths.sample_data_dir()} (set DFIG_SAMPLE_DATA)")
    real, fake = sorted((root / "real").glob("*.jpg")), sorted((root / "fake").glob("*.jpg"))
    both = [p for pair in zip(real, fake) for p in pair]
    return both[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model_type", default="vit_b", choices=S.SAM_MODEL_TYPES)
    ap.add_argument("--checkpoint", default=None, help="official SAM file (default: random weights)")
    ap.add_argument("--prompt", default="points", choices=tuple(S.PROMPTS))
    ap.add_argument("--n", type=int, default=3, help="number of face-sample images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the summary here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    if a.checkpoint:
        seg, rec = S.build_segmenter("sam", model_type=a.model_type, checkpoint=a.checkpoint, prompt=a.prompt,
                                     device=a.device)
        weights = rec["weights"]["file"]
    else:
        from segment_anything import sam_model_registry

        torch.manual_seed(0)
        seg = S.SamSegmenter(sam_model_registry[a.model_type]().to(a.device), prompt=a.prompt,
                             model_type=a.model_type)
        weights = "random (seed 0)"
    build_s = time.perf_counter() - t0
    print(f"SAM {a.model_type}, prompt {a.prompt}, weights {weights}, device {a.device}, "
          f"torch threads {torch.get_num_threads()}; model built in {build_s:.1f} s")

    rows = []
    for p in _images(a.n):
        rgb = np.asarray(load_rgb(p))
        before = seg.encoder_passes
        t, c = time.perf_counter(), time.process_time()
        res = seg.segment(rgb)
        total, cpu = time.perf_counter() - t, time.process_time() - c
        passes = seg.encoder_passes - before
        rows.append({"image": f"{p.parent.name}/{p.name}", **seg.last_timing, "total_s": total,
                     "cpu_s": cpu, "encoder_passes": passes, "mask_area": float(res.mask.mean()), "score": res.score})
        print(f"  {rows[-1]['image']}: encoder {seg.last_timing['encoder_s']:.2f} s, "
              f"decode {seg.last_timing['decode_s']:.2f} s, total {total:.2f} s (CPU time of all threads {cpu:.1f} s), encoder passes {passes}")

    summary = {
        "model_type": a.model_type, "prompt": a.prompt, "weights": weights, "device": a.device,
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "n_images": len(rows), "build_s": build_s,
        "encoder_s_median": statistics.median(r["encoder_s"] for r in rows),
        "decode_s_median": statistics.median(r["decode_s"] for r in rows),
        "total_s_median": statistics.median(r["total_s"] for r in rows),
        "cpu_s_median": statistics.median(r["cpu_s"] for r in rows),
        "one_encoder_pass_per_image": all(r["encoder_passes"] == 1 for r in rows),
        "images": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "images"}, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["one_encoder_pass_per_image"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
