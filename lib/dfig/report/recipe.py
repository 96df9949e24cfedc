"""The paper's setup section from the records (never typed by hand): the training recipe from the options
the runs recorded, the data counts from the manifest, the denoiser's strength from the LNP stage record.

Each training run records its :class:`~dfig.stages.train.TrainOptions` (``options`` in
``metrics/train_<run>.json``) and how it ended (``stopped_by``, ``best_epoch``). :func:`run_facts` turns
one run's record into one phrase per setting (:data:`SETTINGS`); :func:`recipe_facts` groups the runs
that share a phrase, and :func:`recipe_text` writes the sentence the paper prints: a setting all runs share
is stated once, a setting where runs differ names the runs of each value. The ``paper`` profile's text
therefore states the original recipe (Adam 1e-4, early stopping on validation accuracy) because its runs
record it, and the ``sample`` profile states what its runs did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: how each early-stopping metric is named in the text
METRIC_NAMES = {"acc": "accuracy", "auc": "ROC-AUC", "ap": "AP", "loss": "loss"}
#: how each input normalisation is named in the text
NORMALIZE_NAMES = {
    "imagenet": "ImageNet mean/std",
    "lnp_std": "a fixed LNP standard deviation",
    "none": "none",
}
#: how each recorded ``stopped_by`` is named
STOP_NAMES = {
    "epochs": "at the last epoch",
    "early_stop": "by early stopping",
    "max_minutes": "by the time guard",
}


def _g(x: Any) -> str:
    return "none" if x is None else f"{float(x):g}"


def _defaults() -> dict[str, Any]:
    """The TrainOptions defaults: what a run used for a setting its record predates (as resuming does)."""
    from dataclasses import asdict

    from dfig.stages.train import TrainOptions

    return asdict(TrainOptions(name="", dataroot=""))


def _schedule(o: dict[str, Any]) -> str:
    metric = METRIC_NAMES.get(str(o.get("earlystop_metric", "acc")), str(o.get("earlystop_metric")))
    if o.get("lr_policy") == "cosine":
        warm = int(o.get("warmup_epochs") or 0)
        after = f" after {warm} warm-up epochs" if warm else ""
        return f"cosine decay to {_g(o.get('min_lr', 0))} over the {o.get('epochs')} epochs{after}"
    return (
        f"divided by 10 when validation {metric} has not improved by {_g(o.get('earlystop_delta', 0))} for "
        f"{o.get('earlystop_epoch')} epochs; training stops when it falls below {_g(o.get('min_lr', 0))}"
    )


def _epochs(o: dict[str, Any], meta: dict[str, Any]) -> str:
    guard = o.get("max_minutes")
    text = f"at most {o.get('epochs')} epochs" + (f" (a {_g(guard)}-minute guard)" if guard else "")
    stopped = meta.get("stopped_by")
    if stopped:
        text += f"; ran {meta.get('epochs')}, stopped {STOP_NAMES.get(stopped, stopped)}"
    return text


def _view(o: dict[str, Any]) -> str:
    region = f"the central {o['center_region']} px region, " if o.get("center_region") else ""
    load = (
        "at native resolution" if not o.get("load_size") else f"shorter side resized to {o['load_size']} px"
    )
    flips = "" if o.get("no_flip") else " and flips"
    crop = (
        f"random {o.get('crop_size')} px crops{flips} for training"
        if not o.get("no_crop")
        else "whole images"
    )
    ev = o.get("eval_crop_size") or o.get("crop_size")
    return f"{region}{load}; {crop}, the centre {ev} px for validation and test"


def _augment(o: dict[str, Any]) -> str:
    parts = []
    if float(o.get("blur_prob") or 0) > 0:
        lo, hi = o.get("blur_sig", (0, 3))
        parts.append(f"Gaussian blur (p {_g(o['blur_prob'])}, sigma {_g(lo)}-{_g(hi)})")
    if float(o.get("jpg_prob") or 0) > 0:
        lo, hi = o.get("jpg_qual", (30, 100))
        parts.append(f"JPEG (p {_g(o['jpg_prob'])}, quality {lo}-{hi})")
    return " and ".join(parts) or "none"


def _pretrained(o: dict[str, Any], meta: dict[str, Any]) -> str:
    used = str(meta.get("pretrained_used") or "")
    if used:
        return "from scratch" if used.startswith("none") else f"ImageNet-pretrained ({used})"
    return "ImageNet-pretrained" if o.get("pretrained") else "from scratch"


#: the settings the text states, in order: (name, phrase of one run's options and record)
SETTINGS: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Any]], str]], ...] = (
    (
        "optimiser",
        lambda o, m: f"Adam (beta1 {_g(o.get('beta1', 0.9))}, weight decay {_g(o.get('weight_decay', 0))})",
    ),
    ("learning rate", lambda o, m: _g(o.get("lr"))),
    ("schedule", lambda o, m: _schedule(o)),
    ("epochs", _epochs),
    (
        "epoch tested",
        lambda o, m: (
            f"the best validation {METRIC_NAMES.get(str(o.get('earlystop_metric')), o.get('earlystop_metric'))}"
        ),
    ),
    ("batch", lambda o, m: str(o.get("batch_size"))),
    ("input", lambda o, m: _view(o)),
    ("augmentation", lambda o, m: _augment(o)),
    ("normalisation", lambda o, m: NORMALIZE_NAMES.get(str(o.get("normalize")), str(o.get("normalize")))),
    ("backbone", _pretrained),
)


def run_facts(meta: dict[str, Any]) -> dict[str, str]:
    """One phrase per :data:`SETTINGS` name for one run (its ``train_<run>.json``, or ``{"options": ...}``).

    Per-run results (``stopped_by``, ``epochs`` run) are stated only when the record holds them.
    """
    o = {
        **_defaults(),
        **{k: v for k, v in (meta.get("options") or {}).items() if v is not None or k == "pretrained"},
    }
    return {name: fn(o, meta) for name, fn in SETTINGS}


def recipe_facts(metas: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """``{setting: {phrase: [runs]}}`` over the runs of ``metas`` (``{run: record}``) that recorded their
    ``options``, phrases in the order of their most common first."""
    out: dict[str, dict[str, list[str]]] = {}
    for run, meta in metas.items():
        if not meta.get("options"):
            continue
        for name, phrase in run_facts(meta).items():
            out.setdefault(name, {}).setdefault(phrase, []).append(run)
    return {k: dict(sorted(v.items(), key=lambda kv: -len(kv[1]))) for k, v in out.items()}


def _runs(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _method(rec: dict[str, Any], key: str) -> str:
    v = rec.get(key)
    return str((v or {}).get("method", "unknown")) if isinstance(v, dict) else str(v or "unknown")


def tree_phrase(tree: str, stages: dict[str, Any]) -> str:
    """What a feature tree is, from its stage record: segmenter, denoiser and strength, LNP save mode."""
    rec = stages.get(tree) or {}
    if rec.get("stage") == "lnp":
        seg = _method(rec.get("input") or {}, "segmenter")
        den = f"{_method(rec, 'denoiser')} ({denoiser_strength(rec)})"
        return f"{tree} = LNP of segmenter {seg}, denoiser {den}, save mode {rec.get('save_mode', 'unknown')}"
    if rec.get("stage") == "segmentation":
        return f"{tree} = RGB faces/photos of segmenter {_method(rec, 'segmenter')} (no LNP)"
    return f"{tree} (no stage record)"


def recipe_text(metas: dict[str, dict[str, Any]], stages: dict[str, Any] | None = None) -> str:
    """The training recipe as the paper prints it, one clause per setting.

    Arguments: ``metas`` ``{run: train_<run>.json}`` (or ``{"options": ...}`` per run); ``stages`` the
    stage records by tree (:func:`dfig.report.manifest.stage_records`): when given, the feature tree of each
    run is stated too (:func:`tree_phrase`). A setting shared
    by every run is stated once; otherwise the most common value is stated ("... for the other runs")
    after the others with the runs that used them. Returns ``""`` when no run recorded its options.
    """
    facts = recipe_facts(metas)
    if not facts:
        return ""
    if stages is not None:  # the feature tree each run read (the runs of an ablation differ here)
        trees: dict[str, list[str]] = {}
        for run in [r for v in facts["learning rate"].values() for r in v]:
            trees.setdefault(tree_phrase(str(metas[run].get("features") or "lnp"), stages), []).append(run)
        facts["features"] = dict(sorted(trees.items(), key=lambda kv: -len(kv[1])))
    clauses = []
    for name, values in facts.items():
        phrases = list(values.items())
        if len(phrases) == 1:
            clauses.append(f"{name.capitalize()}: {phrases[0][0]}")
            continue
        (common, _), rest = phrases[0], phrases[1:]
        others = "; ".join(f"{p} ({_runs(r)})" for p, r in rest)
        clauses.append(f"{name.capitalize()}: {others}; {common} (the other runs)")
    n = sum(len(r) for r in facts["learning rate"].values())
    return f"Training ({n} run{'s' if n != 1 else ''}, as recorded): " + ". ".join(clauses) + "."


#: the columns of the counts table: one per split, then the skipped files
COUNT_SPLITS = ("train", "val", "test")


def counts_rows(man: dict[str, Any]) -> list[list[str]]:
    """The counts table: one row per data tree with recorded per-split counts (the manifest's
    ``data_counts``: the photos read, then each stage's tree), ``real / fake`` per split, skipped files.

    Arguments: the manifest. Returns rows of strings (``-`` for a split the tree lacks).
    """
    rows = []
    for tree, rec in (man.get("data_counts") or {}).items():
        per = rec.get("per_split") if isinstance(rec, dict) else None
        if tree == "raw" and isinstance(rec, dict) and "per_split" not in rec:
            per = rec  # the synthetic set: {split: {real, fake}}
        if not per:
            continue
        cells = [f"{per[s]['real']} / {per[s]['fake']}" if s in per else "-" for s in COUNT_SPLITS]
        skipped = rec.get("skipped", rec.get("failed", "-")) if tree != "raw" else "-"
        rows.append([tree, *cells, str(skipped)])
    return rows


def denoiser_strength(record: dict[str, Any]) -> str:
    """The denoiser's strength as recorded (the classical fallback's parameters; CycleISP has none)."""
    den = record.get("denoiser") if isinstance(record.get("denoiser"), dict) else {}
    classical = den.get("classical") or {}
    if not classical:
        return "n/a (learned denoiser)" if den.get("method") else "unknown"
    return ", ".join(f"{k} {v}" for k, v in classical.items())


__all__ = [
    "COUNT_SPLITS",
    "counts_rows",
    "denoiser_strength",
    "METRIC_NAMES",
    "NORMALIZE_NAMES",
    "SETTINGS",
    "STOP_NAMES",
    "recipe_facts",
    "recipe_text",
    "run_facts",
    "tree_phrase",
]
