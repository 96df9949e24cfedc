"""Training images/s of the DFIG detector: plain fp32 vs dfig's fast settings, in one run.

    python benchmarks/bench_train.py [--arch res50] [--train_mode 0] [--crop_size 224] [--steps 30]
        [--batch_size 64] [--warmup 5] [--workers W] [--device cuda|cpu] [--images DIR] [--json F]

Both runs use the training code itself (:func:`dfig.stages.train.train_step`: forward, BCE loss, backward,
Adam step) on the training transform of :mod:`dfig.data` (resize 256, random crop, flip, ImageNet
normalisation) over JPEG faces from ``--images`` (decoded every step, as in training), with a freshly
built detector (random weights, seed 0) each:

- ``naive``: fp32, NCHW, ``cudnn.benchmark`` off, DataLoader without workers or pinned memory
  (``TrainOptions`` defaults);
- ``ours``: ``amp`` (bf16 autocast where supported, else fp16 + GradScaler; see
  :func:`dfig.stages.train.amp_precision`), ``channels_last``, ``cudnn.benchmark`` (CUDA), DataLoader with
  ``--workers`` persistent workers (default :func:`dfig.accel.loader_workers`: 0 on CPU) and pinned
  memory (CUDA), ``non_blocking`` copies.

``--warmup`` steps (cudnn autotuning, worker start) are not timed; then ``--steps`` steps are. Also
checked: the spectra come out float32 under the autocast used.
"""

from __future__ import annotations

import argparse
import time

import torch
from benchcommon import add_common_args, check_device, finish, header, pick_images, sync

from dfig.accel import autocast, loader_workers
from dfig.data.layout import Sample
from dfig.stages.train import amp_precision, make_scaler, train_step


def dataset(files: list, crop: int):
    """An ImageDataset over ``files`` (label 1 when a folder is named fake) with the training transform."""
    from dfig.data import AugmentOptions, ImageDataset, build_transform

    samples = [
        Sample(
            f,
            int(any(p.lower() in ("fake", "1_fake") for p in f.parts)),
            "train",
            "fake" if any(p.lower() in ("fake", "1_fake") for p in f.parts) else "real",
        )
        for f in files
    ]
    tf = build_transform(AugmentOptions(load_size=256, crop_size=crop), train=True, normalize="imagenet")
    return ImageDataset(samples, tf, precheck=False)


def run(a: argparse.Namespace, ds, dev: torch.device, fast: bool, workers: int) -> dict:
    """``warmup`` + ``steps`` training steps; returns timings and settings."""
    from dfig.core.models import build_detector

    torch.backends.cudnn.benchmark = fast and dev.type == "cuda"
    torch.manual_seed(0)
    model = build_detector(a.arch, a.train_mode).to(dev)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = make_scaler(dev, fast)
    total = (a.warmup + a.steps) * a.batch_size
    g = torch.Generator().manual_seed(0)
    sampler = torch.utils.data.RandomSampler(ds, num_samples=total, generator=g)
    pin = fast and dev.type == "cuda"
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=a.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        drop_last=True,
        prefetch_factor=4 if workers else None,
    )
    it = iter(loader)
    for _ in range(a.warmup):
        train_step(model, next(it), opt, dev, scaler, amp=fast, channels_last=fast)
    sync(dev)
    t = time.perf_counter()
    for _ in range(a.steps):
        loss = train_step(model, next(it), opt, dev, scaler, amp=fast, channels_last=fast)
    sync(dev)
    sec = time.perf_counter() - t
    return {
        "img_s": a.steps * a.batch_size / sec,
        "seconds": sec,
        "final_loss": float(loss),
        "precision": amp_precision(dev, fast),
        "channels_last": fast,
        "cudnn_benchmark": fast and dev.type == "cuda",
        "workers": workers,
        "pin_memory": pin,
        "persistent_workers": workers > 0,
        "grad_scaler": scaler is not None,
    }


def spectra_dtype(a: argparse.Namespace, dev: torch.device) -> str:
    from dfig.core.models import build_detector

    m = build_detector(a.arch, a.train_mode).to(dev)
    with torch.no_grad(), autocast(dev, amp_precision(dev, True)):
        amp, phase = m.spectra(torch.randn(2, 3, 32, 32, device=dev))
    return f"{amp.dtype}/{phase.dtype}".replace("torch.", "")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="res50", choices=("res50", "res34", "mobilev2"))
    ap.add_argument("--train_mode", default="0", help="0 | 1 | 2 | lnp | spec")
    ap.add_argument("--crop_size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--n_images", type=int, default=512, help="distinct images drawn from --images")
    ap.add_argument(
        "--workers", type=int, default=None, help="ours: loader workers (default: 0 CPU, up to 8 CUDA)"
    )
    add_common_args(ap)
    a = ap.parse_args(argv)
    from dfig.stages.train import parse_mode

    a.train_mode = parse_mode(a.train_mode)
    dev = check_device(a.device)
    files = pick_images(a.images, min(a.n_images, a.batch_size * (a.steps + a.warmup)))
    info = header(
        "train",
        dev,
        model=f"{a.arch} mode {a.train_mode}, crop {a.crop_size}, batch {a.batch_size}",
        images=f"{len(files)} from {files[0].parent.parent.parent}",
    )
    ds = dataset(files, a.crop_size)
    workers = loader_workers(dev) if a.workers is None else a.workers
    naive = run(a, ds, dev, fast=False, workers=0)
    print(f"  naive: {naive}")
    ours = run(a, ds, dev, fast=True, workers=workers)
    print(f"  ours:  {ours}")
    sd = spectra_dtype(a, dev)
    print(f"  spectra under {ours['precision']} autocast: {sd} (must be float32)")
    settings = {
        "arch": a.arch,
        "train_mode": str(a.train_mode),
        "crop_size": a.crop_size,
        "batch_size": a.batch_size,
        "steps": a.steps,
        "warmup": a.warmup,
        "n_images": len(files),
        "naive": naive,
        "ours": ours,
    }
    return finish(a.json, "train", info, naive["img_s"], ours["img_s"], settings, spectra_dtype_under_amp=sd)


if __name__ == "__main__":
    main()
