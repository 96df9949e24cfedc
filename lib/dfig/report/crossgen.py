"""Other generators: every trained run and classical peer scored on fakes of a generator it never saw.

A folder of fakes from another generator (e.g. ``../shared/data/faces-crossgen-sample/boredhumans/fake``)
is paired with the real photos of the profile's ``test`` split, in two versions (:func:`prepare_folders`):

- ``raw``: the files as found (``work/<profile>/crossgen_<generator>_raw/test/{real,fake}``, links to
  the files, never copies); real and fake may then differ in size and JPEG history, which a detector
  can score on alone (Grommelt et al. 2024);
- ``harmonised``: both classes given one history by :mod:`dfig.data.harmonize` (one resize to 256 px,
  one JPEG encode at quality 75), in ``work/<profile>/crossgen_<generator>_harmonised``.

:func:`score_folders` scores every run of :func:`dfig.report.evaluate.load_runs` on each folder: a
training run through the feature pipeline recorded in its checkpoint (as ``predict --raw``; runs with
the same pipeline and central region share one feature extraction), a peer with its saved model
(``peer.joblib``) on the features it was fitted on. Rows carry metrics with 95% bootstrap intervals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dfig import io, paths

#: the stage name recorded in a raw pairing tree's ``dfig_stage.json``
PAIR_STAGE = "crossgen_pairs"
#: the two versions of every generator's folder, in table order
VERSIONS = ("raw", "harmonised")
RAW_HISTORY = "raw: as found (real and fake may differ in size and JPEG history)"


def _images(folder: Path) -> list[Path]:
    from dfig.data.layout import IMAGE_EXTS

    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def pair_tree(reals: Path, fakes: Path, dest: Path) -> Path:
    """``dest/test/{real,fake}``: links to the images of ``reals`` and ``fakes`` (never copies, never
    written into the inputs), with a ``dfig_stage.json`` naming both sources and the counts.

    Arguments: the two image folders and the destination tree. Returns ``dest``.
    """
    counts = {}
    for cls, src in (("real", reals), ("fake", fakes)):
        out = dest / "test" / cls
        out.mkdir(parents=True, exist_ok=True)
        files = _images(src)
        for f in files:
            link = out / f.name
            if not link.is_symlink():
                link.symlink_to(f.resolve())
        counts[cls] = len(files)
    src = {"real": paths.portable(reals), "fake": paths.portable(fakes)}
    io.update_stage_meta(dest, lambda old: {**old, "stage": PAIR_STAGE, "sources": src, "test": counts})
    return dest


def prepare_folders(profile: str, reals: Path, fake_dirs: Sequence[str]) -> list[dict[str, Any]]:
    """The raw and harmonised test folders of each generator in ``fake_dirs`` (absent ones skipped, said).

    Arguments: ``profile``; ``reals`` the real photos they are paired with (the test split's ``real``);
    ``fake_dirs`` folders of fakes (portable or absolute paths). Returns one dict per folder made:
    ``{"generator", "version", "root", "history"}`` (raw first, then harmonised, per generator).
    """
    from dfig.data.harmonize import harmonize_note, harmonize_tree

    out = []
    for d in fake_dirs:
        fakes = paths.resolve(d)
        if not fakes.is_dir():
            print(f"cross-generator: {d} not found, skipped (a folder of fake images of another generator)")
            continue
        gen = fakes.parent.name if fakes.name in ("fake", "1_fake") else fakes.name
        raw = pair_tree(reals, fakes, paths.work_dir(profile) / f"crossgen_{gen}_raw")
        harm = paths.work_dir(profile) / f"crossgen_{gen}_harmonised"
        harmonize_tree(raw, harm, progress=False)
        out.append({"generator": gen, "version": "raw", "root": raw, "history": RAW_HISTORY})
        out.append({"generator": gen, "version": "harmonised", "root": harm, "history": harmonize_note(harm)})
    return out


def _as_array(x: Any) -> np.ndarray:
    """What a reader returned, as the peers read a feature file: PNG/PIL in [0, 1], arrays as they are."""
    from PIL import Image

    return np.asarray(x, dtype=np.float32) / 255.0 if isinstance(x, Image.Image) else np.asarray(x)


class _Features:
    """Features of one folder's files, extracted once per (recorded pipeline, central region) and shared
    by every run (and peer) that needs them."""

    def __init__(self, files: list[Path], device: str) -> None:
        self.files, self.device, self.cache = files, device, {}

    def get(self, ck: dict[str, Any], region: int | None) -> dict[Path, Any]:
        from dfig.stages.predict import build_feature_pipeline, stage_chain
        from dfig.stages.train import region_reader

        key = json.dumps([stage_chain(ck.get("features")), region], sort_keys=True, default=str)
        if key not in self.cache:
            read = region_reader(build_feature_pipeline(ck.get("features"), self.device).from_path, region)
            self.cache[key] = {p: read(p) for p in self.files}
        return self.cache[key]


def _score_trained(runs: dict[str, Any], samples: list[Any], feats: _Features) -> dict[str, np.ndarray]:
    """P(fake) of each training run's best checkpoint on ``samples`` (NaN for a file it could not read)."""
    from dfig.stages.predict import inference_dataset, load_for_inference, score_dataset

    out = {}
    for name, run in runs.items():
        ckpt = paths.checkpoints_dir() / name / "model_epoch_best.pth"
        if run.family == "peer" or not ckpt.exists():
            continue
        model, ck, opts = load_for_inference(ckpt, device=feats.device)
        cache = feats.get(ck, opts.center_region)
        ds = inference_dataset(samples, opts, cache.__getitem__, "skip")
        p, idx = score_dataset(model, ds, opts, 32, feats.device, False)
        out[name] = np.full(len(samples), np.nan)
        out[name][np.asarray(idx, dtype=int)] = p
    return out


def _score_peers(runs: dict[str, Any], samples: list[Any], feats: _Features) -> dict[str, np.ndarray]:
    """P(fake) of each saved peer: on the photos (``source`` photos) or on the features of the DFIG run
    whose feature tree the peer was fitted on (that run's recorded pipeline)."""
    from dfig.stages.lnp import read_lnp
    from dfig.stages.peers import load_fitted, score_arrays
    from dfig.stages.predict import load_for_inference

    out, files = {}, feats.files
    for name, run in runs.items():
        model_path = run.meta.get("model_path")
        if run.family != "peer" or not model_path or not paths.resolve(model_path).exists():
            continue
        blob = load_fitted(paths.resolve(model_path))
        if blob["source"] == "photos":
            out[name] = score_arrays(blob, [read_lnp(f) for f in files])
            continue
        tree = Path(str(run.meta.get("dataroot", ""))).name
        like = [
            c
            for r in runs.values()
            if r.family != "peer"
            and r.meta.get("features") == tree
            and (c := paths.checkpoints_dir() / r.name / "model_epoch_best.pth").exists()
        ]
        ckpt = like[0] if like else None
        if ckpt is None:
            print(f"cross-generator: {name} skipped (no trained run on its feature tree {tree!r})")
            continue
        _, ck, opts = load_for_inference(ckpt, device=feats.device)
        cache = feats.get(ck, opts.center_region)
        out[name] = score_arrays(blob, [_as_array(cache[f]) for f in files])
    return out


def _row(
    run: Any, folder: dict[str, Any], y: np.ndarray, p: np.ndarray, n_boot: int, seed: int
) -> dict[str, Any]:
    from dfig.core.metrics import metrics_with_ci

    ok = ~np.isnan(p)
    m = metrics_with_ci(y[ok], p[ok], 0.5, n_boot=n_boot, seed=seed, metrics=("roc_auc", "ap"))
    return {
        "generator": folder["generator"],
        "version": folder["version"],
        "history": folder["history"],
        "run": run.name,
        "family": run.family,
        "n_real": int((y[ok] == 0).sum()),
        "n_fake": int((y[ok] == 1).sum()),
        **{k: m[k] for k in ("acc", "real_acc", "fake_acc", "ap", "ap_lo", "ap_hi")},
        **{k: m[k] for k in ("roc_auc", "roc_auc_lo", "roc_auc_hi")},
    }


def score_folders(
    runs: dict[str, Any],
    folders: list[dict[str, Any]],
    device: str = "cpu",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every run and peer on every folder of :func:`prepare_folders`: one row per (folder, run).

    Arguments: ``runs`` from :func:`dfig.report.evaluate.load_runs` (current profile); ``folders``;
    ``device``; ``n_boot``/``seed`` of the bootstrap intervals. Returns columns ``generator, version,
    history, run, family, n_real, n_fake, acc, real_acc, fake_acc, ap(_lo, _hi), roc_auc(_lo, _hi)``
    (at threshold 0.5); bad files are skipped and not counted in ``n_real``/``n_fake``.
    """
    from dfig.data.images import check_files
    from dfig.data.layout import discover

    rows = []
    for folder in folders:
        samples = discover(folder["root"], splits=("test",))["test"]
        good = set(check_files([s.path for s in samples], policy="skip"))
        samples = [s for s in samples if s.path in good]
        y = np.array([s.label for s in samples])
        feats = _Features([s.path for s in samples], device)
        scores = {**_score_trained(runs, samples, feats), **_score_peers(runs, samples, feats)}
        rows += [_row(runs[name], folder, y, p, n_boot, seed) for name, p in scores.items()]
    return pd.DataFrame(rows)


def wide_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per (generator, run): ROC-AUC and accuracy raw and harmonised side by side, for the paper."""
    if not len(long):
        return long
    keep = ["roc_auc", "roc_auc_lo", "roc_auc_hi", "acc", "n_real", "n_fake"]
    w = long.pivot_table(
        index=["generator", "run", "family"], columns="version", values=keep, aggfunc="first"
    )
    w.columns = [f"{v}_{k}" for k, v in w.columns]
    order = {n: i for i, n in enumerate(dict.fromkeys(long["run"]))}
    w = w.reset_index().sort_values(
        ["generator", "run"], key=lambda c: c.map(order) if c.name == "run" else c
    )
    return w.reset_index(drop=True)


__all__ = [
    "PAIR_STAGE",
    "RAW_HISTORY",
    "VERSIONS",
    "pair_tree",
    "prepare_folders",
    "score_folders",
    "wide_table",
]
