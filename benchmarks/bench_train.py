"""Training images/s of the DFIG detector: plain fp32 vs dfig's fast settings, in one run.

    python benchmarks/bench_train.py [--arch A] [--train_mode 0] [--crop_size C] [--steps S]
        [--batch_size B] [--warmup W] [--workers W] [--orig_workers W] [--threads T]
        [--device cuda|cpu] [--images DIR] [--json F]

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

On ``--device cpu`` (the default without CUDA) it compares instead, at the sample recipe (MobileNetV2
mode 0, 128 px random crops + flip, batch 32, from scratch, fp32; defaults when not given):

- ``original``: the original DFIG trainer's way (CNNDetection's loop): every step opens and decodes
  each image with PIL and runs torchvision ``RandomCrop``/``RandomHorizontalFlip``/``ToTensor``/
  ``Normalize`` in a DataLoader (``--orig_workers``, default 0: the 2 cores run the model), NCHW;
- ``ours``: :class:`dfig.data.cache.CachedDataset` (decoded once; its one-off build time is printed
  apart), crops and flips from RAM, ``channels_last`` model and input, torch threads = cores
  (:func:`dfig.accel.configure_cpu`).

The configurations are timed in ``--rounds`` alternating rounds (a change of the machine's load hits
them alike) and the median images/s of each is reported. It also times ``ours`` on a resident random batch (``model_only``: the data path's cost removed), counts
the FLOPs of one step (3 x the forward counted by ``torch.utils.flop_counter``; the FFT of the spectra
is not counted) and measures a dense 3x3 convolution's GFLOP/s as this CPU's practical peak in the same run,
then prints the achieved GFLOP/s, the ratio and what limits it.
"""

from __future__ import annotations

import argparse
import os
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


# ---------------------------------------------------------------------------------------------
# CPU: the original trainer's loop vs ours


class PilFolder(torch.utils.data.Dataset):
    """The original loop's dataset: open + decode with PIL on every access, then ``transform``."""

    def __init__(self, samples: list[Sample], transform) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        s = self.samples[i]
        with Image.open(s.path) as im:
            return self.transform(im.convert("RGB")), float(s.label)


def labelled(files: list) -> list[Sample]:
    """``Sample``s for ``files`` (label 1 when a parent folder is named fake)."""
    out = []
    for f in files:
        fake = any(p.lower() in ("fake", "1_fake") for p in f.parts)
        out.append(Sample(f, int(fake), "train", "fake" if fake else "real"))
    return out


def original_dataset(samples: list[Sample], crop: int) -> PilFolder:
    """CNNDetection's training transform in torchvision (the images are 256 px: no resize)."""
    from torchvision import transforms as T

    from dfig.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    tf = T.Compose(
        [
            T.RandomCrop(crop, pad_if_needed=True),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return PilFolder(samples, tf)


def cached_dataset(samples: list[Sample], crop: int):
    """Ours: the training transform served from :class:`dfig.data.cache.CachedDataset`."""
    from dfig.data import AugmentOptions, build_transform
    from dfig.data.cache import CachedDataset

    tf = build_transform(AugmentOptions(load_size=256, crop_size=crop), train=True, normalize="imagenet")
    return CachedDataset(samples, tf)


class StepTimer:
    """A fresh model, optimiser and loader for one configuration; :meth:`run` times ``n`` steps."""

    def __init__(
        self, a: argparse.Namespace, ds, channels_last: bool, workers: int = 0, resident: bool = False
    ) -> None:
        from dfig.accel import fast_cpu_model
        from dfig.core.models import build_detector

        torch.manual_seed(0)
        self.model = fast_cpu_model(build_detector(a.arch, a.train_mode), channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.channels_last, self.batch_size = channels_last, a.batch_size
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10**9)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=a.batch_size, sampler=sampler, num_workers=workers, drop_last=True
        )
        self.it = iter(loader)
        self.fixed = next(self.it) if resident else None
        self.rates: list[float] = []
        self.run(a.warmup, record=False)

    def run(self, n: int, record: bool = True) -> None:
        """``n`` training steps (data loading included unless resident); records images/s."""
        t = time.perf_counter()
        for _ in range(n):
            batch = self.fixed if self.fixed is not None else next(self.it)
            self.loss = train_step(
                self.model, batch, self.opt, torch.device("cpu"), channels_last=self.channels_last
            )
        if record and n:
            self.rates.append(n * self.batch_size / (time.perf_counter() - t))

    def result(self) -> dict:
        r = sorted(self.rates)
        return {
            "img_s": r[len(r) // 2],
            "img_s_best": r[-1],
            "rounds": len(r),
            "final_loss": float(self.loss),
        }


def interleaved(a: argparse.Namespace, timers: dict[str, StepTimer]) -> dict[str, dict]:
    """Time the configurations in alternating rounds (a load change hits all alike); median img/s each."""
    per_round = max(1, a.steps // a.rounds)
    for _ in range(a.rounds):
        for t in timers.values():
            t.run(per_round)
    return {k: t.result() for k, t in timers.items()}


def step_flops(a: argparse.Namespace) -> int:
    """FLOPs of one training step per batch: 3 x the forward FLOPs (backward = 2 x forward).

    The forward is counted with ``torch.utils.flop_counter`` (the FFT of the spectra is not counted).
    Its backward formulas ignore the groups of depthwise convolutions (they count MobileNetV2's
    backward about 20x too high), hence the usual 3 x forward convention.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from dfig.core.models import build_detector

    model = build_detector(a.arch, a.train_mode)
    x = torch.randn(a.batch_size, 3, a.crop_size, a.crop_size)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return 3 * int(fc.get_total_flops())


def conv_peak(seconds: float = 2.0) -> float:
    """GFLOP/s of a dense 3x3 convolution (256 -> 256 channels, 28x28, batch 32, channels_last, fp32)."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(32, 256, 28, 28).contiguous(memory_format=torch.channels_last)
    flops = 2 * 32 * 256 * 28 * 28 * 256 * 9
    best = float("inf")
    with torch.inference_mode():
        conv(x)
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def cpu_compare(a: argparse.Namespace, files: list, info: dict) -> dict:
    """(a) the original loop vs (b) ours on the CPU; the GFLOP/s against the conv peak; the limit."""
    from dfig.accel import configure_cpu

    threads = configure_cpu(a.threads)
    samples = labelled(files)
    t = time.perf_counter()
    ds = cached_dataset(samples, a.crop_size)
    build_s = time.perf_counter() - t
    timers = {
        "original": StepTimer(a, original_dataset(samples, a.crop_size), False, workers=a.orig_workers),
        "ours": StepTimer(a, ds, True),
        "ours_nchw": StepTimer(a, ds, False),
        "model_only": StepTimer(a, ds, True, resident=True),
    }
    res = interleaved(a, timers)
    orig, ours, nchw, resident = (res[k] for k in ("original", "ours", "ours_nchw", "model_only"))
    print(f"  (a) original loop (PIL + torchvision per step, NCHW, {a.orig_workers} workers): {orig}")
    print(f"  (b) ours (cache, channels_last, {threads['threads']} threads): {ours}")
    print(f"      cache built once in {build_s:.2f} s ({len(ds)} images, {ds.nbytes / 2**20:.0f} MB)")
    print(
        f"      cache + NCHW: {nchw['img_s']:.1f} img/s; model only (resident batch): {resident['img_s']:.1f}"
    )
    flops = step_flops(a) / a.batch_size
    peak = conv_peak(a.peak_seconds)
    gf = {
        k: flops * r["img_s"] / 1e9 for k, r in (("original", orig), ("ours", ours), ("model_only", resident))
    }
    print(
        f"  FLOPs fwd+bwd (3 x fwd) {flops / 1e9:.3f} GFLOP/image; achieved GFLOP/s: original {gf['original']:.1f}, "
        f"ours {gf['ours']:.1f}, model only {gf['model_only']:.1f}; dense 3x3 conv peak {peak:.1f} "
        f"({100 * gf['ours'] / peak:.0f}% of it)"
    )
    ratio = ours["img_s"] / orig["img_s"]
    limit = limits(ratio, ours, resident, gf["model_only"], peak)
    print(f"  ratio ours/original {ratio:.2f}x (goal >= 3x). {limit}")
    settings = {
        "arch": a.arch, "train_mode": str(a.train_mode), "crop_size": a.crop_size,
        "batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup, "n_images": len(files),
        "orig_workers": a.orig_workers, "rounds": a.rounds, "threads": threads, "load_average": os.getloadavg(),
        "original": orig, "ours": ours, "ours_nchw": nchw, "model_only": resident,
        "cache_build_seconds": build_s, "cache_mb": ds.nbytes / 2**20,
    }  # fmt: skip
    return finish(
        a.json, "train-cpu", info, orig["img_s"], ours["img_s"], settings,
        gflop_per_image=flops / 1e9, gflops=gf, conv_peak_gflops=peak, limit=limit,
    )  # fmt: skip


def limits(ratio: float, ours: dict, resident: dict, model_gflops: float, peak: float) -> str:
    """One line: what bounds ``ours`` (the data path, or the network's own FLOP/s on this CPU)."""
    data_share = 1 - ours["img_s"] / resident["img_s"]
    line = (
        f"Data path costs {100 * max(data_share, 0):.0f}% of ours; the network alone runs at "
        f"{100 * model_gflops / peak:.0f}% of the conv peak"
    )
    if ratio >= 3:
        return line + "."
    return (
        line + ": the limit is the network's own step on this CPU (MobileNetV2's depthwise and 1x1 "
        "convolutions on small maps, BatchNorm and ReLU6 are memory-bound, far from the dense-conv "
        "peak), and other processes sharing the cores (see the load average), not the data path."
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--arch", default=None, choices=("res50", "res34", "mobilev2"), help="CPU mobilev2, CUDA res50"
    )
    ap.add_argument("--train_mode", default="0", help="0 | 1 | 2 | lnp | spec")
    ap.add_argument("--crop_size", type=int, default=None, help="default: CPU 128, CUDA 224")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per configuration (CPU 24, CUDA 30)")
    ap.add_argument("--rounds", type=int, default=6, help="CPU: alternating timing rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (CPU 2, CUDA 5)")
    ap.add_argument("--batch_size", type=int, default=None, help="default: CPU 32, CUDA 64")
    ap.add_argument("--n_images", type=int, default=512, help="distinct images drawn from --images")
    ap.add_argument(
        "--workers", type=int, default=None, help="ours: loader workers (default: 0 CPU, up to 8 CUDA)"
    )
    ap.add_argument("--orig_workers", type=int, default=0, help="CPU: the original loop's loader workers")
    ap.add_argument("--threads", type=int, default=0, help="CPU: torch threads for ours (0 = one per core)")
    ap.add_argument("--peak_seconds", type=float, default=2.0, help="CPU: time spent measuring the conv peak")
    add_common_args(ap)
    a = ap.parse_args(argv)
    from dfig.stages.train import parse_mode

    a.train_mode = parse_mode(a.train_mode)
    dev = check_device(a.device)
    cpu = dev.type == "cpu"
    for name, on_cpu, on_gpu in (
        ("arch", "mobilev2", "res50"), ("crop_size", 128, 224), ("steps", 24, 30),
        ("warmup", 2, 5), ("batch_size", 32, 64),
    ):  # fmt: skip
        if getattr(a, name) is None:
            setattr(a, name, on_cpu if cpu else on_gpu)
    files = pick_images(a.images, min(a.n_images, a.batch_size * (a.steps + a.warmup)))
    info = header(
        "train",
        dev,
        model=f"{a.arch} mode {a.train_mode}, crop {a.crop_size}, batch {a.batch_size}",
        images=f"{len(files)} from {files[0].parent.parent.parent}",
        load_average=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )
    if cpu:
        return cpu_compare(a, files, info)
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
