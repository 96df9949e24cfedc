"""What the three GPU benchmarks share: the device, the images, the report header and the JSON file.

Agreed interface (benchmarks/device_check.sh): ``--device {cpu,cuda}`` (default cuda when available),
``--images DIR`` (a folder tree of face images; default the face sample), ``--json PATH``; the JSON
holds at least ``stage, device, gpu_name, torch, naive_img_s, ours_img_s, speedup, settings``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

from dfig import paths
from dfig.accel import cpu_flags, device_info
from dfig.data.layout import IMAGE_EXTS, list_images


def add_common_args(ap: argparse.ArgumentParser) -> None:
    """``--device``, ``--images``, ``--json`` (the interface every benchmark accepts)."""
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="default: cuda when available, else cpu",
    )
    ap.add_argument(
        "--images",
        default=None,
        help="folder tree of face images (default: the face sample, dfig.paths.sample_data_dir())",
    )
    ap.add_argument("--json", default=None, help="write the results here (JSON)")


def check_device(device: str) -> torch.device:
    """``torch.device(device)``; exits with a one-line error when CUDA is asked for but absent."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch.cuda.is_available() is False; use --device cpu")
    return torch.device(device)


def pick_images(root: str | os.PathLike[str] | None, n: int) -> list[Path]:
    """``n`` image files spread evenly over the sorted tree (real and fake alike); exits if too few."""
    folder = Path(root) if root else paths.sample_data_dir()
    if not folder.is_dir():
        raise SystemExit(
            f"error: image folder {folder} not found: pass --images DIR (or set DFIG_SAMPLE_DATA)"
        )
    files = [f for f in list_images(folder, IMAGE_EXTS) if f.is_file()]
    if len(files) < n:
        raise SystemExit(f"error: {folder} holds {len(files)} images, fewer than --n {n}")
    step = len(files) / n
    return [files[int(i * step)] for i in range(n)]


def header(stage: str, device: torch.device, **extra: Any) -> dict[str, Any]:
    """Print and return what the run executes on (GPU name or CPU model, torch, threads)."""
    info = device_info(device)
    where = info["gpu_name"] or info["cpu"]
    print(
        f"[{stage}] device {device} ({where}); CPU {info['cpu']}, {os.cpu_count()} cores, "
        f"torch {info['torch']}"
        + (f", CUDA {info['cuda']}" if info["cuda"] else "")
        + f", {torch.get_num_threads()} torch threads"
    )
    flags = cpu_flags()
    info["cpu_flags"] = flags
    print(
        f"  CPU flags: {' '.join(flags['flags']) or 'none of interest'}; torch CPU kernels "
        f"{flags['torch_capability']}, oneDNN {'on' if flags['mkldnn'] else 'off'}"
    )
    for k, v in extra.items():
        print(f"  {k}: {v}")
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finish(
    path: str | None,
    stage: str,
    info: dict[str, Any],
    naive: float,
    ours: float,
    settings: dict[str, Any],
    **more: Any,
) -> dict[str, Any]:
    """Build the result object (agreed keys first), print the headline, write ``path`` when given."""
    res = {
        "stage": stage,
        "device": info["device"],
        "gpu_name": info["gpu_name"],
        "cpu": info["cpu"],
        "torch": info["torch"],
        "cpu_flags": info.get("cpu_flags"),
        "naive_img_s": naive,
        "ours_img_s": ours,
        "speedup": ours / naive if naive > 0 else float("nan"),
        "settings": settings,
        **more,
    }
    print(
        f"[{stage}] naive {naive:.3f} img/s, ours {ours:.3f} img/s: speedup {res['speedup']:.2f}x "
        f"on {info['gpu_name'] or info['cpu']}"
    )
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(res, indent=2, default=float) + "\n")
        print(f"[{stage}] wrote {path}")
    return res
