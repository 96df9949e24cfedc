"""Benchmark LNP extraction: the reference scripts' way vs dfig.stages.lnp's path, on the same images.

    python benchmarks/bench_lnp.py [--n 6] [--batch B] [--size 256] [--device cpu|cuda] [--checkpoint F]
        [--images DIR] [--compile] [--json F]

One process, one set of images (``n`` images spread over ``--images``, default the face sample, when
``--size 256``; else generated ``size x size`` images), one CycleISP network: ``--checkpoint`` (e.g.
``sidd_rgb.pth``) or random weights (the tail rescaled so that the residual has a realistic magnitude,
std ~0.02, which makes the compat fidelity check meaningful). Timed per image: float conversion, the
network, compat PNG encoding. ``--batch`` defaults to 3 on CPU and 16 (extract_tree's) on CUDA.

- ``naive``: batch 1, fp32, NCHW, ``torch.no_grad()`` only, ``forward`` then ``x - y`` (as the
  reference LNP scripts run);
- ``ours``: :func:`dfig.stages.lnp.prepare` + :func:`dfig.stages.lnp.lnp_batch` - ``inference_mode``, channels_last,
  fused attention blocks (``DualAttentionBlock.forward_fused``), batches of ``--batch``, and (CPU) the
  allocator setting of :func:`dfig.stages.lnp.tune_cpu_allocator`, which is process-wide: it is switched off
  for the naive runs and on for ours (``--breakdown`` adds naive+allocator and ours-without-allocator);
- ``bf16`` (CPU) / ``bf16``, or ``fp16`` without bf16 support (CUDA) autocast: used only if it passes
  :func:`dfig.stages.lnp.check_lnp_precision` (residual correlation with fp32 >= 0.999 and compat PNG
  identical on >= 99% of pixels) and is faster;
- ``compiled`` (``--compile``): ``torch.compile`` with inductor freezing (minutes of compile on 2 cores);
- the classical fallback (non-local means) on the same images.

Also printed: achieved GFLOP/s (``cycleisp_flops``, ~5.62 MFLOP per pixel) against a 3x3 conv peak
measured in the same run (64->64 channels, the batch and size of ours, fp32 and - on CUDA - the
reduced dtype; ``peak_fraction`` uses the peak of the precision ours ran in), and the load average (other processes on a shared machine skew timings;
naive and ours are interleaved round by round so that both see the same load).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from benchcommon import add_common_args, check_device, finish, header, pick_images

from dfig.accel import reduced_precision
from dfig.core.denoise import ClassicalDenoiser, CycleISPDenoiser, cycleisp_flops, load_cycleisp
from dfig.stages.lnp import (
    check_lnp_precision,
    compat_encode,
    lnp_agreement,
    lnp_batch,
    prepare,
    tune_cpu_allocator,
)


def load_images(n: int, size: int, seed: int = 0, images: str | None = None) -> tuple[list[np.ndarray], str]:
    """``n`` BGR uint8 images: from ``images`` / the face sample (read with cv2, as compat mode) when
    they are ``size`` x ``size``, else generated ones. The files (if any) are in ``load_images.files``."""
    load_images.files = []
    import cv2

    try:
        files = pick_images(images, n)
    except SystemExit:
        files = []
    if files:
        imgs = [cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files]
        imgs = [im for im in imgs if im is not None and im.shape[:2] == (size, size)]
        if len(imgs) == n:
            load_images.files = files
            return imgs, f"{n} images from {files[0].parent.parent.name}/ ({size}x{size})"
    rng = np.random.default_rng(seed)
    imgs = []
    for _ in range(n):
        base = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), size / 16)
        base = (base - base.min()) / (np.ptp(base) + 1e-6) * 200 + 20
        imgs.append(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8))
    return imgs, f"generated {size}x{size} (seed {seed})"


def random_cycleisp(sample: np.ndarray, seed: int = 0, target_std: float = 0.02) -> CycleISPDenoiser:
    """CycleISP with seeded random weights; tail rescaled so the residual std is ``target_std``."""
    torch.manual_seed(seed)
    m = CycleISPDenoiser().eval()
    x = torch.from_numpy(sample[:64, :64].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        s = float(m.residual(x).std())
    with torch.no_grad():
        m.tail[0].weight.mul_(target_std / max(s, 1e-8))
        m.tail[0].bias.mul_(target_std / max(s, 1e-8))
    return m


def naive_one(model: torch.nn.Module, img: np.ndarray, device: torch.device) -> np.ndarray:
    """The reference scripts' loop body: batch 1, fp32, NCHW, no_grad, forward then x - y."""
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).to(device)
    with torch.no_grad():
        y = model(x)
        r = x - y
    return r[0].permute(1, 2, 0).cpu().numpy()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def conv_peak(
    size: int, device: torch.device, reps: int = 3, batch: int = 1, precisions: tuple[str, ...] = ("fp32",)
) -> dict[str, float]:
    """GFLOP/s of a 3x3 conv 64->64 on ``batch x 64 x size x size`` in both memory formats and each
    precision (autocast); keys ``<fmt>`` for fp32, ``<fmt>_<precision>`` otherwise."""
    from dfig.accel import autocast

    out = {}
    with torch.inference_mode():
        for prec in precisions:
            for fmt in ("channels_last", "nchw"):
                conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
                x = torch.rand(batch, 64, size, size, device=device)
                if fmt == "channels_last":
                    conv = conv.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, prec):
                    conv(x)
                    sync(device)
                    t = time.perf_counter()
                    for _ in range(reps):
                        conv(x)
                    sync(device)
                key = fmt if prec == "fp32" else f"{fmt}_{prec}"
                out[key] = 2 * 9 * 64 * 64 * size * size * batch * reps / (time.perf_counter() - t) / 1e9
    return out


def fidelity(ref: list[np.ndarray], test: list[np.ndarray]) -> dict[str, float]:
    """Residual correlation and share of identical compat PNG pixels between two runs (lnp_agreement)."""
    return lnp_agreement(np.stack(ref), np.stack(test))


def pipeline(
    files: list[Path],
    naive_model: torch.nn.Module,
    ours_model: torch.nn.Module,
    dev: torch.device,
    batch: int,
    precision: str,
) -> dict[str, float]:
    """End to end from image files to compat PNG files: a naive per-file loop vs :func:`dfig.stages.lnp.extract_tree`
    (loader workers decode ahead, background threads encode and write; worker start-up included)."""
    import shutil
    import tempfile

    import cv2

    from dfig.io import atomic_write_bytes
    from dfig.stages.lnp import compat_png_bytes, extract_tree

    with tempfile.TemporaryDirectory(prefix="bench_lnp_") as td:
        inp, naive_out = Path(td) / "in" / "x", Path(td) / "naive"
        inp.mkdir(parents=True)
        for i, f in enumerate(files):  # a temporary copy (the tree walker resolves links)
            shutil.copyfile(f, inp / f"{i:05d}{f.suffix}")
        sync(dev)
        t = time.perf_counter()
        for f in sorted(inp.iterdir()):
            r = naive_one(naive_model, cv2.imread(str(f), cv2.IMREAD_COLOR), dev)
            atomic_write_bytes(naive_out / f"{f.stem}.png", compat_png_bytes(r))
        naive_s = time.perf_counter() - t
        t = time.perf_counter()
        rep = extract_tree(
            Path(td) / "in",
            Path(td) / "ours",
            ours_model,
            batch_size=batch,
            device=dev,
            precision=precision,
            progress=False,
        )
        sync(dev)
        ours_s = time.perf_counter() - t
        same = np.mean(
            [
                np.mean(
                    cv2.imread(str(naive_out / f"{f.stem}.png"), cv2.IMREAD_UNCHANGED)
                    == cv2.imread(str(Path(td) / "ours" / "x" / f"{f.stem}.png"), cv2.IMREAD_UNCHANGED)
                )
                for f in inp.iterdir()
            ]
        )
    n = len(files)
    out = {
        "n": n,
        "naive_img_s": n / naive_s,
        "ours_img_s": n / ours_s,
        "speedup": naive_s / ours_s,
        "precision": precision,
        "done": rep.done,
        "png_identical": float(same),
    }
    print(
        f"files -> compat PNG files ({n} images, decode + network + encode + write): naive {out['naive_img_s']:.2f} "
        f"img/s, extract_tree {out['ours_img_s']:.2f} img/s ({out['speedup']:.2f}x); identical PNG values "
        f"{100 * same:.3f}%"
    )
    return out


def native_bf16() -> bool:
    """Whether the CPU advertises bf16 instructions (Linux /proc/cpuinfo; False when unknown)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def passes(f: dict[str, float]) -> bool:
    return bool(f["passed"])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6, help="images per method")
    ap.add_argument(
        "--batch", type=int, default=None, help="batch size of our path (default: 3 CPU, 16 CUDA)"
    )
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--checkpoint", default=None, help="CycleISP sidd_rgb.pth (default: random weights)")
    ap.add_argument("--rounds", type=int, default=2, help="naive/ours alternate this many times")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on CPU)")
    ap.add_argument("--no_amp", action="store_true", help="skip the bf16/fp16 autocast trial")
    ap.add_argument(
        "--pipeline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time files -> PNG files end to end (default: on CUDA)",
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also time naive with the allocator setting and ours without it",
    )
    add_common_args(ap)
    args = ap.parse_args(argv)

    dev = check_device(args.device)
    if args.batch is None:
        args.batch = 16 if dev.type == "cuda" else 3
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    imgs, source = load_images(args.n, args.size, images=args.images)
    flops = cycleisp_flops(args.size, args.size)
    load0 = os.getloadavg()
    info = header("lnp", dev, images=source, cpu_capability=torch.backends.cpu.get_cpu_capability())
    print(
        f"images: {source}; device {dev} ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}); load avg {load0[0]:.2f}"
    )
    wdesc = f"{Path(args.checkpoint).name}" if args.checkpoint else "random weights (seed 0)"
    print(
        f"CycleISP: {flops / 1e9:.0f} GFLOP per {args.size}x{args.size} image "
        f"({flops / args.size**2 / 1e6:.2f} MFLOP/pixel), {wdesc}"
    )

    if args.checkpoint:
        naive_model = load_cycleisp(args.checkpoint, device=dev, verify="none").eval()
    else:
        naive_model = random_cycleisp(imgs[0]).to(dev)
    ours_model = CycleISPDenoiser()
    ours_model.load_state_dict(naive_model.state_dict())
    ours_model = prepare(ours_model, dev)

    def run_naive(sel: list[np.ndarray]) -> list[np.ndarray]:
        out = [naive_one(naive_model, im, dev) for im in sel]
        for r in out:
            compat_encode(r)
        return out

    def run_ours(sel: list[np.ndarray], precision: str = "fp32", model=None) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i in range(0, len(sel), args.batch):
            out += list(lnp_batch(model or ours_model, sel[i : i + args.batch], dev, precision))
        for r in out:
            compat_encode(r)
        return out

    # reduced precision (autocast): fidelity check first, on one batch against fp32
    methods = {"naive": run_naive, "ours": run_ours}
    tuned = {"naive": False, "ours": True}
    if args.breakdown and dev.type == "cpu":
        methods.update({"naive_alloc": run_naive, "ours_noalloc": run_ours})
        tuned.update({"naive_alloc": True, "ours_noalloc": False})
    amp = None
    if not args.no_amp:
        amp = reduced_precision(dev)
        k = 1 if dev.type == "cpu" else min(args.batch, len(imgs))
        rec, _ = check_lnp_precision(ours_model, imgs[:k], dev, "auto", candidate=amp)  # also warms up
        f_amp = dict(rec["agreement"])
        sync(dev)
        t0 = time.perf_counter()
        run_ours(imgs[:k])
        sync(dev)
        t1 = time.perf_counter()
        run_ours(imgs[:k], amp)
        sync(dev)
        t2 = time.perf_counter()
        f_amp["trial_speed_vs_fp32"] = (t1 - t0) / (t2 - t1)
        print(
            f"{amp} autocast vs fp32 ({k} image): corr {f_amp['corr']:.6f}, compat PNG identical "
            f"{100 * f_amp['png_identical']:.2f}% -> fidelity {'PASS' if passes(f_amp) else 'FAIL'}; "
            f"trial speed {f_amp['trial_speed_vs_fp32']:.2f}x fp32"
        )
        if passes(f_amp) and f_amp["trial_speed_vs_fp32"] > 1.0:
            methods["ours_" + amp] = lambda sel: run_ours(sel, amp)
            tuned["ours_" + amp] = True
        else:
            why = "fails the fidelity check" if not passes(f_amp) else "slower than fp32"
            if dev.type == "cpu" and not native_bf16():
                why += "; no avx512_bf16/amx_bf16 in /proc/cpuinfo, so bf16 is emulated"
            print(f"  {amp} not used ({why})")

    # warm-up (oneDNN primitive creation, cudnn autotune), then naive / ours interleaved round by round
    run_naive(imgs[:1])
    run_ours(imgs[: min(args.batch, len(imgs))])
    times = dict.fromkeys(methods, 0.0)
    res: dict[str, list[np.ndarray]] = {k: [] for k in methods}
    chunks = np.array_split(np.arange(len(imgs)), max(1, args.rounds))
    for idx in chunks:
        sel = [imgs[i] for i in idx]
        for name, fn in methods.items():
            if dev.type == "cpu":
                tune_cpu_allocator(tuned[name])
            sync(dev)
            t = time.perf_counter()
            res[name] += fn(sel)
            sync(dev)
            times[name] += time.perf_counter() - t
    ips = {k: len(imgs) / v for k, v in times.items()}
    fid_ours = fidelity(res["naive"], res["ours"])
    results: dict = {
        "images": source,
        "n": len(imgs),
        "size": args.size,
        "batch": args.batch,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "gflop_per_image": flops / 1e9,
        "img_s": ips,
        "naive_img_s": ips["naive"],
        "ours_fp32_img_s": ips["ours"],
        "fidelity_ours_vs_naive": fid_ours,
    }
    best = "ours"
    if amp is not None:
        results["amp"] = {
            "dtype": amp,
            **f_amp,
            "passes_fidelity": passes(f_amp),
            "img_s": ips.get("ours_" + amp),
            "timed": "ours_" + amp in ips,
        }
        if "ours_" + amp in ips and ips["ours_" + amp] > ips["ours"]:
            best = "ours_" + amp
        results["amp"]["used"] = best != "ours"
    results["ours_img_s"] = ips[best]
    results["ours_method"] = best
    results["speedup"] = ips[best] / ips["naive"]

    if args.pipeline is None:
        args.pipeline = dev.type == "cuda"
    if args.pipeline and load_images.files:
        prec = "fp32" if best in ("ours", "naive") else best.removeprefix("ours_")
        results["pipeline"] = pipeline(load_images.files, naive_model, ours_model, dev, args.batch, prec)

    if args.compile:
        import torch._inductor.config as ic

        ic.freezing = True

        class _Res(torch.nn.Module):
            def __init__(self, m: torch.nn.Module) -> None:
                super().__init__()
                self.m = m

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.m.residual(x)

        class _Compiled(torch.nn.Module):  # lnp_batch calls .residual
            def __init__(self, f: torch.nn.Module) -> None:
                super().__init__()
                self.f = f

            def residual(self, x: torch.Tensor) -> torch.Tensor:
                return self.f(x)

        cm = _Compiled(torch.compile(_Res(ours_model)))
        t = time.perf_counter()
        with torch.inference_mode():
            run_ours(imgs[: args.batch], model=cm)
        compile_s = time.perf_counter() - t
        run_ours(imgs, model=cm)  # any recompilation (shapes, guards) happens here, untimed
        t = time.perf_counter()
        out = run_ours(imgs, model=cm)
        c_ips = len(imgs) / (time.perf_counter() - t)
        f = fidelity(res["ours"], out)
        results["compiled"] = {
            "img_s": c_ips,
            "compile_s": compile_s,
            "speedup_vs_naive": c_ips / ips["naive"],
            **f,
        }
        print(
            f"torch.compile: {c_ips:.3f} img/s ({c_ips / ips['naive']:.2f}x naive) after {compile_s:.0f} s "
            f"compiling; corr {f['corr']:.6f}"
        )

    if dev.type == "cpu":
        tune_cpu_allocator(True)  # the peak without page-fault overhead
        peak = conv_peak(args.size, dev)
    else:
        peak = conv_peak(
            args.size, dev, reps=20, batch=args.batch, precisions=("fp32", reduced_precision(dev))
        )
    cls = ClassicalDenoiser()
    k = len(imgs)
    t = time.perf_counter()
    for im in imgs:
        r = cls.residual(torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255)
        compat_encode(r[0].permute(1, 2, 0).numpy())
    cls_ips = k / (time.perf_counter() - t)
    load1 = os.getloadavg()
    results.update({"conv_peak_gflops": peak, "classical_img_s": cls_ips, "loadavg": [load0[0], load1[0]]})
    used = "fp32" if best in ("ours", "naive") else best.removeprefix("ours_")
    keys = ("channels_last", "nchw") if used == "fp32" else (f"channels_last_{used}", f"nchw_{used}")
    peak_prec = used if any(k_ in peak for k_ in keys) else "fp32"  # CPU: the peak is measured in fp32
    pk = max([peak[k_] for k_ in keys if k_ in peak] or peak.values())
    print(
        f"\n{'method':<34}{'img/s':>9}{'GFLOP/s':>10}{'% of conv peak':>16}  (peak in {peak_prec}: {pk:.0f} GFLOP/s)"
    )
    labels = {"naive": "naive (b1, fp32, NCHW, no_grad)", "ours": f"ours (b{args.batch}, fp32, CL, fused)"}
    labels.update(
        {"naive_alloc": "naive + allocator setting", "ours_noalloc": "ours without allocator setting"}
    )
    if amp is not None:
        labels["ours_" + amp] = f"ours (b{args.batch}, {amp} autocast)"
    for name in ips:
        g = ips[name] * flops / 1e9
        print(f"{labels[name]:<34}{ips[name]:>9.3f}{g:>10.1f}{100 * g / pk:>15.0f}%")
    print(f"{'classical fallback (NLM)':<34}{cls_ips:>9.2f}")
    print(f"speedup ours/naive: {results['speedup']:.2f}x with {best} (goal >= 3x)")
    print(
        f"conv peak (3x3 64->64, 1x64x{args.size}x{args.size}, fp32): "
        + ", ".join(f"{k}: {v:.1f} GFLOP/s" for k, v in peak.items())
    )
    print(
        f"ours vs naive: corr {fid_ours['corr']:.7f}, compat PNG identical {100 * fid_ours['png_identical']:.3f}%, "
        f"max |diff| {fid_ours['max_abs_diff']:.2e}"
    )
    print(f"load average during the run: {load0[0]:.2f} -> {load1[0]:.2f} (on {os.cpu_count()} CPUs)")
    g_ours = results["ours_img_s"] * flops / 1e9
    settings = {
        "n": len(imgs),
        "size": args.size,
        "batch": args.batch,
        "weights": wdesc,
        "ours_method": best,
        "precision": used,
        "channels_last": True,
        "fused_blocks": True,
        "images": source,
    }
    more = {k: v for k, v in results.items() if k not in ("naive_img_s", "ours_img_s", "speedup", "device")}
    return finish(
        args.json,
        "lnp",
        info,
        results["naive_img_s"],
        results["ours_img_s"],
        settings,
        gflops=g_ours,
        peak_gflops=pk,
        peak_fraction=g_ours / pk,
        peak_precision=peak_prec,
        **more,
    )


if __name__ == "__main__":
    main()
