"""Issue 23's seed experiments on the face sample: does the spectral input's normalisation or position
move DFIG mode 0's validation AUC beyond the spread of the seeds?

    python benchmarks/exp_spectral.py OUT.jsonl B:0 B:1 B:2 A:0 ...   # variant:seed, one line each

Each job trains MobileNetV2 mode 0 with the ``sample`` profile's recipe (clean LNP tree
``work/sample/lnp``, centre region 176, crop 128, ``lnp_std``, Adam 1e-3 cosine, precise BN) for 3 epochs,
validation only, one thread, in its own process, and appends one JSON line to OUT: variant, seed, val
AUC per epoch, best val AUC, training loss per epoch, minutes and the load average at start and end
(results do not depend on them: the seed fixes everything on the CPU). Checkpoints go to a temporary
folder. docs/experiments_sample.md section 8 tabulates the lines. Needs ``run_all.py --profile sample
--only 02_lnp`` first.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def run_job(job: str, ckpt: str) -> dict:
    """Train one ``variant:seed`` in a child process. Returns: its JSON record."""
    variant, seed = job.split(":")
    kw = {**BASE, **VARIANTS[variant], "seed": int(seed), "name": f"exp_{variant}_s{seed}"}
    kw.update(dataroot=str(ROOT / "work/sample/lnp"), checkpoints_dir=ckpt)
    rec = {"variant": variant, "options": VARIANTS[variant], "seed": int(seed)}
    rec["load_start"] = round(os.getloadavg()[0], 2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)], capture_output=True, text=True, env=env)
    rec["load_end"] = round(os.getloadavg()[0], 2)
    found = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    rec.update(json.loads(found[-1][7:]) if found else {"error": p.stderr[-2000:]})
    rec["cpu"] = platform.processor() or platform.machine()
    return rec


def main(argv: list[str]) -> int:
    """Run the jobs one after the other, appending a line per job to ``argv[0]``."""
    out, jobs = Path(argv[0]), argv[1:]
    with tempfile.TemporaryDirectory() as ckpt:
        for job in jobs:
            rec = run_job(job, ckpt)
            with out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
