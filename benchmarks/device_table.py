"""The device check's table: per stage images/s, speed-up, and the projected wall time of the paper profile.

    python benchmarks/device_table.py OUTDIR [--epochs 30]

Reads OUTDIR/bench_{sam,lnp,train}.json (benchmarks/bench_*.py --json), OUTDIR/versions.json and the
run_all manifest of the stand-in profile (OUTDIR/reports/<profile>/manifest.json), prints one table
and writes OUTDIR/device_check.json.

Projection of the ``paper`` profile on the 140k set (100k/20k/20k train/val/test), from the measured
"ours" throughputs (stand-in weights cost what the official ones cost):

- segmentation: 140,000 photos through SAM once (the no-SAM variant does no SAM pass);
- LNP: 140,000 faces through CycleISP three times (compat, no-SAM faces, clean);
- training: 19 runs x ``epochs`` x (100,000 training images + 20,000 validation images at a third of a
  training step each: forward only). ``epochs`` defaults to 30: the recipe's early stopping (patience 5,
  lr/10 twice, stop below min_lr) ends ~15 epochs after the last improvement, and the improvement phase
  of the CNNDetection recipe is typically 10-20 epochs. The benchmark trains ResNet-50 mode 0 at 224 px,
  the heaviest backbone: for MobileNetV2 and ResNet-34 runs this is an upper bound;
- robustness (05_evaluate, all 20,000 test photos x 7 perturbations) again through SAM and CycleISP.

The paper reports 3-4 h per model on one RTX 2080 (not the same card: a ratio, not a like-for-like race).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dfig import io

N_TOTAL, N_TRAIN, N_VAL, N_TEST = 140_000, 100_000, 20_000, 20_000
N_TRAIN_RUNS = 19
N_LNP_PASSES = 3
N_PERTURBATIONS = 7
PAPER_HOURS_PER_MODEL = (3.0, 4.0)
DEFAULT_EPOCHS = 30
STAGES = ("sam", "lnp", "train")


def _load(p: Path) -> dict[str, Any] | None:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rate(b: dict[str, Any] | None, key: str = "ours_img_s") -> float | None:
    v = (b or {}).get(key)
    return float(v) if isinstance(v, int | float) and v > 0 else None


def projection(bench: dict[str, dict[str, Any] | None], epochs: int = DEFAULT_EPOCHS) -> dict[str, Any]:
    """Projected hours of the paper profile per stage from the measured ``ours_img_s`` (None where unmeasured).

    Arguments: ``bench`` = {"sam"|"lnp"|"train": benchmark JSON or None}, ``epochs`` per training run.
    Returns {stage: {images, hours, how}} plus ``total_hours`` and the assumptions.
    """
    sam, lnp, tr = (_rate(bench.get(s)) for s in STAGES)

    def h(n: float, rate: float | None) -> float | None:
        return None if rate is None else n / rate / 3600

    train_imgs = N_TRAIN_RUNS * epochs * (N_TRAIN + N_VAL / 3)
    per_model = h(epochs * (N_TRAIN + N_VAL / 3), tr)
    rob = N_TEST * N_PERTURBATIONS
    rows = {
        "sam": {"images": N_TOTAL, "hours": h(N_TOTAL, sam), "how": "140,000 photos through SAM once"},
        "lnp": {
            "images": N_LNP_PASSES * N_TOTAL,
            "hours": h(N_LNP_PASSES * N_TOTAL, lnp),
            "how": "140,000 faces through CycleISP x3 (compat, no-SAM, clean)",
        },
        "train": {
            "images": train_imgs,
            "hours": h(train_imgs, tr),
            "hours_per_model": per_model,
            "how": f"{N_TRAIN_RUNS} runs x {epochs} epochs x (100k train + 20k val / 3), ResNet-50 rate",
        },
        "robustness": {
            "images": rob,
            "hours": None if sam is None or lnp is None else h(rob, sam) + h(rob, lnp),
            "how": "20,000 test photos x 7 perturbations through SAM + CycleISP",
        },
    }
    hours = [r["hours"] for r in rows.values()]
    return {
        **rows,
        "total_hours": None if None in hours else sum(hours),
        "epochs": epochs,
        "paper_hours_per_model": list(PAPER_HOURS_PER_MODEL),
        "paper_card": "RTX 2080",
        "paper_training_hours": [x * N_TRAIN_RUNS for x in PAPER_HOURS_PER_MODEL],
    }


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def format_table(bench: dict[str, dict[str, Any] | None], proj: dict[str, Any]) -> str:
    """The printed table: stage, naive / ours images/s, speed-up, projected paper-profile hours."""
    lines = [
        f"{'stage':<11} {'naive img/s':>11} {'ours img/s':>10} {'speed-up':>8} {'paper-profile work':<62} {'hours':>7}"
    ]
    for s in (*STAGES, "robustness"):
        b = bench.get(s) or {}
        p = proj[s]
        lines.append(
            f"{s:<11} {_f(_rate(b, 'naive_img_s'), '{:.3g}'):>11} {_f(_rate(b), '{:.3g}'):>10} "
            f"{_f(b.get('speedup'), '{:.2f}x'):>8} {p['how']:<62} {_f(p['hours']):>7}"
        )
    lo, hi = proj["paper_hours_per_model"]
    lines += [
        f"{'total':<11} {'':>11} {'':>10} {'':>8} {'paper profile on the 140k set (projected)':<62} "
        f"{_f(proj['total_hours']):>7}",
        f"training per model: {_f(proj['train']['hours_per_model'])} h projected here ({proj['epochs']} epochs) "
        f"vs {lo:.0f}-{hi:.0f} h reported by the paper on one {proj['paper_card']} "
        f"({proj['paper_training_hours'][0]:.0f}-{proj['paper_training_hours'][1]:.0f} h for 19 models)",
    ]
    for st in STAGES:  # what each rate was measured with (a CPU check's vit_b at 64 px is no paper setting)
        sets = (bench.get(st) or {}).get("settings") or {}
        if sets:
            lines.append(f"  {st} measured with: " + ", ".join(f"{k}={v}" for k, v in list(sets.items())[:6]))
    return "\n".join(lines)


def standin_run(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """What the stand-in profile run recorded: status, seconds, runs, stand-ins listed."""
    if not manifest:
        return {"status": "not run"}
    runs = manifest.get("runs", [])
    return {
        "profile": manifest.get("profile"),
        "status": manifest.get("status"),
        "total_seconds": manifest.get("total_seconds"),
        "n_runs": len(runs),
        "failed": [r["run"] for r in runs if r.get("status") != "ok"],
        "standins": manifest.get("standins", []),
        "fallbacks": manifest.get("fallbacks", []),
        "device": manifest.get("device", {}),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: print the table and write OUTDIR/device_check.json; exit 1 when the stand-in profile failed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs per training run (projection)")
    ap.add_argument("--profile", default="paper-standin", help="the stand-in profile that ran")
    ap.add_argument("--wall_seconds", type=float, default=None, help="the whole check's wall time")
    ap.add_argument("--phases", nargs="*", default=[], metavar="NAME=SECONDS", help="seconds per phase")
    args = ap.parse_args(argv)
    phases = {k: float(v) for k, v in (x.split("=", 1) for x in args.phases)}
    out = Path(args.outdir)
    bench = {s: _load(out / f"bench_{s}.json") for s in STAGES}
    proj = projection(bench, args.epochs)
    run = standin_run(_load(out / "reports" / args.profile / "manifest.json"))
    versions = _load(out / "versions.json") or {}
    table = format_table(bench, proj)
    gpu = next((b.get("gpu_name") for b in bench.values() if b and b.get("gpu_name")), None)
    print(
        f"device: {gpu or versions.get('gpu') or 'cpu'}; "
        f"torch {versions.get('torch_build') or versions.get('torch', '?')}; "
        f"python {versions.get('python', '?')}"
    )
    print(table)
    print(
        f"stand-in profile {args.profile}: {run.get('status')}, {run.get('n_runs', 0)} notebook runs in "
        f"{_f(run.get('total_seconds'), '{:.0f}')} s; stand-ins listed: "
        f"{', '.join(str(s.get('weights')) for s in run.get('standins', [])) or 'none'}"
    )
    if phases:
        print(
            "seconds per phase: "
            + ", ".join(f"{k} {v:.0f}" for k, v in phases.items())
            + f"; total {_f(args.wall_seconds, '{:.0f}')} (budget on one H100: 480)"
        )
    result = {
        "versions": versions,
        "bench": bench,
        "projection": proj,
        "standin_run": run,
        "wall_seconds": args.wall_seconds,
        "phase_seconds": phases,
        "table": table,
    }
    io.save_json(result, out / "device_check.json")
    missing = [f"bench_{s}.json" for s in STAGES if bench[s] is None]
    if missing:
        print(f"not measured (no {', '.join(missing)}): their rows show '-'")
    return 0 if run.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
