"""One training run as the training notebook does it: parameters -> TrainOptions -> train -> reports.

Keeps the notebook thin. Resolves ``pretrained="imagenet"`` to the official file of the backbone
(through :mod:`dfig.weights`), falling back loudly to training from scratch when it is absent (never
in the paper profile); copies the per-image predictions into ``reports/<profile>/predictions/`` and
writes ``reports/<profile>/metrics/train_<run>.json`` with everything the evaluation needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dfig import io, paths
from dfig.fallback import use_fallback

#: official ImageNet files per backbone, in order of preference (names in dfig.weights.WEIGHTS)
IMAGENET_WEIGHTS: dict[str, tuple[str, ...]] = {
    "res50": ("resnet50",),
    "res34": ("resnet34",),
    "mobilev2": ("mobilenetv2_c5e733a8", "mobilenet_v2"),
}


def resolve_pretrained(arch: str, pretrained: str) -> tuple[str | None, dict[str, Any]]:
    """``imagenet`` -> the path of the backbone's official file, or ``None`` + a fallback record."""
    if pretrained in ("", "none", None):
        return None, {"pretrained": "none (from scratch, by choice)"}
    if pretrained != "imagenet":
        return pretrained, {"pretrained": str(pretrained)}
    from dfig import weights

    tried = []
    for name in IMAGENET_WEIGHTS[arch]:
        try:
            path = weights.locate(name)
            return str(path), {"pretrained": name, "provenance": weights.describe(path)}
        except FileNotFoundError as e:
            tried.append(str(e).splitlines()[0])
    rec = use_fallback(
        "train",
        "random initialisation (training from scratch)",
        f"ImageNet weights for {arch} ({' or '.join(IMAGENET_WEIGHTS[arch])})",
        "; ".join(tried),
    )
    return None, {"pretrained": "none (fallback: official file absent)", "fallback": rec}


def options_from_params(ctx: Any, run: str, dataroot: Path, pretrained_path: str | None) -> Any:
    """Map the training notebook's parameters onto :class:`dfig.stages.train.TrainOptions`."""
    from dfig.notebook import allow_incomplete_default
    from dfig.stages.train import TrainOptions

    P = ctx.params
    load = int(P.get("load_size", 256))
    allow = P.get("allow_incomplete")
    kw = dict(
        name=run,
        dataroot=str(dataroot),
        classes="face",
        arch=P["arch"],
        train_mode=P["train_mode"],
        spectra_channels=int(P.get("spectra_channels", 1)),
        batch_size=int(P["batch_size"]),
        lr=float(P["lr"]),
        loadSize=load or 256,
        no_resize=load == 0,
        cropSize=int(P["crop_size"]),
        blur_prob=float(P.get("blur_prob", 0.0)),
        jpg_prob=float(P.get("jpg_prob", 0.0)),
        niter=int(P["epochs"]),
        earlystop_epoch=int(P.get("earlystop_epoch", 5)),
        pretrained=pretrained_path,
        stem_init=P.get("stem_init", "random"),
        spec_norm=P.get("spec_norm", "none"),
        seed=int(P.get("seed", 0)),
        workers=int(P.get("workers", 0)),
        device=ctx.device,
        profile=ctx.profile,
        max_minutes=float(P["max_minutes"]) if P.get("max_minutes") else None,
        progress=True,
        allow_incomplete=allow_incomplete_default() if allow is None else bool(allow),
    )
    return TrainOptions(**{**kw, **dict(P.get("extra_options") or {})})


def run_training(ctx: Any, run: str, dataroot: Path) -> dict[str, Any]:
    """Train run ``run`` on ``dataroot`` with the notebook's parameters; write metrics + predictions."""
    from dfig.stages.train import train

    P = ctx.params
    pre_path, pre_rec = resolve_pretrained(P["arch"], str(P.get("pretrained", "imagenet")))
    opts = options_from_params(ctx, run, dataroot, pre_path)
    result = train(opts)
    pred_dir = paths.predictions_dir(ctx.profile)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for split, src in result.get("predictions", {}).items():
        dest = pred_dir / f"{run}_{split}.csv"
        io.copy_predictions_csv(src, dest)  # paths portable: no machine path in reports/
        io.record_provenance(dest)
    log = pd.read_csv(result["paths"]["log_csv"])
    meta = {
        **{k: v for k, v in result.items() if k not in ("options",)},
        "arch": P["arch"],
        "train_mode": str(P["train_mode"]),
        "tag": P.get("tag", ""),
        "features": P.get("features", "lnp"),
        "spectra_channels": int(P.get("spectra_channels", 1)),
        "pretrained_used": pre_rec["pretrained"],
        "pretrained_provenance": pre_rec.get("provenance"),
        "options": result.get("options", {}),
        "fallbacks": [r for r in [pre_rec.get("fallback")] if r],
    }
    io.save_metrics(meta, f"train_{run}")
    return {**result, "log": log}
