"""Issue 23's seed experiments on the face sample: does the spectral input's normalisation or position
move DFIG mode 0's validation AUC beyond the spread of the seeds?

    python benchmarks/exp_spectral.py B:0 B:1 B:2 A:0 ...            # variant:seed, 3 epochs each
    python benchmarks/exp_spectral.py --epochs 8 B:0 ...             # the profile's full schedule
    python benchmarks/exp_spectral.py                                # only rebuild the summary table

Each job trains MobileNetV2 mode 0 with the ``sample`` profile's recipe (clean LNP tree
``work/sample/lnp``, centre region 176, crop 128, ``lnp_std``, Adam 1e-3 cosine, precise BN) for 3 epochs
(``--epochs``: another schedule), validation only, one thread, in its own process, and appends one JSON
line to ``reports/sample/experiments/spectral.jsonl``: variant, options, seed, epochs, val AUC per epoch,
best val AUC, training loss per epoch, minutes and the load average at start and end (results do not
depend on them: the seed fixes everything on the CPU). After each job it rewrites the summary table
``reports/sample/tables/experiments_spectral.{csv,md}`` (:mod:`dfig.report.experiments`: mean, spread and
the adoption decision per variant), which the sample paper prints. Checkpoints go to a temporary
folder. Needs ``run_all.py --profile sample --only 02_lnp`` first.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile

from dfig import paths
from dfig.report import experiments

VARIANTS = {
    "B": {},  # the sample profile: spec_norm log
    "A": {"spec_norm": "freq"},  # (a) per-frequency standardisation
    "C": {"spec_coords": True},  # (b) frequency-coordinate channels
    "F": {"center_region": 128},  # (b) spectra of the fixed centre region (the crop is the whole region)
}
BASE = {
    "arch": "mobilev2",
    "train_mode": 0,
    "epochs": 3,
    "load_size": 0,
    "center_region": 176,
    "crop_size": 128,
    "eval_crop_size": 128,
    "batch_size": 32,
    "lr": 1e-3,
    "lr_policy": "cosine",
    "earlystop_metric": "auc",
    "normalize": "lnp_std",
    "spec_norm": "log",
    "bn_recalibrate": 4,
    "channels_last": True,
    "cache": "auto",
    "num_threads": 1,
    "evaluate_test": False,
    "progress": False,
    "profile": "sample",
    "device": "cpu",
}
CHILD = r"""
import csv, json, sys, time
from dfig.stages.train import TrainOptions, train
t = time.time()
r = train(TrainOptions(**json.loads(sys.argv[1])))
rows = list(csv.DictReader(open(r["paths"]["log_csv"])))
print("RESULT " + json.dumps({
    "best_epoch": r["best_epoch"], "best_val_auc": r["best_val_metrics"].get("roc_auc"),
    "val_auc": [float(x["val_auc"]) for x in rows], "train_loss": [float(x["train_loss"]) for x in rows],
    "minutes": (time.time() - t) / 60}))
"""


def run_job(job: str, ckpt: str, epochs: int) -> dict:
    """Train one ``variant:seed`` for ``epochs`` in a child process. Returns: its JSON record."""
    variant, seed = job.split(":")
    kw = {**BASE, **VARIANTS[variant], "seed": int(seed), "name": f"exp_{variant}_s{seed}", "epochs": epochs}
    kw.update(dataroot=str(paths.work_dir("sample") / "lnp"), checkpoints_dir=ckpt)
    rec = {"variant": variant, "options": VARIANTS[variant], "seed": int(seed), "epochs": epochs}
    rec["load_start"] = round(os.getloadavg()[0], 2)
    env = {k: v for k, v in os.environ.items() if k not in ("DFIG_NOTEBOOK", "DFIG_PARAMS")}
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)], capture_output=True, text=True, env=env)
    rec["load_end"] = round(os.getloadavg()[0], 2)
    found = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    rec.update(json.loads(found[-1][7:]) if found else {"error": p.stderr[-2000:]})
    rec["cpu"] = platform.processor() or platform.machine()
    return rec


CAPTION = (
    "Seed experiments on the spectral input of DFIG mode 0 (MobileNetV2, sample recipe, validation only; "
    "benchmarks/exp_spectral.py): best validation ROC-AUC per seed, mean, spread (max - min), and the "
    "decision: adopted only when the mean exceeds the reference's by more than either spread."
)


def main(argv: list[str]) -> int:
    """Run the jobs one after the other, appending a line per job, then rewrite the summary table."""
    os.environ.update(DFIG_PROFILE="sample", DFIG_NOTEBOOK="benchmarks/exp_spectral.py")
    epochs = BASE["epochs"]
    if argv[:1] == ["--epochs"]:
        epochs, argv = int(argv[1]), argv[2:]
    out = paths.reports_dir("sample") / "experiments" / "spectral.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as ckpt:
        for job in argv:
            rec = run_job(job, ckpt, epochs)
            with out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)
            experiments.write_summary(out, "experiments_spectral", CAPTION)
    if out.exists():
        print(experiments.write_summary(out, "experiments_spectral", CAPTION)["md"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
