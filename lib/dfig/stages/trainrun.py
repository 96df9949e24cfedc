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
from dfig.core.models.backbones import IMAGENET_WEIGHTS
from dfig.fallback import use_fallback


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


#: TrainOptions fields the run sets itself (from the notebook context), not notebook parameters;
#: every other field is a ``04_train`` notebook parameter of the same name and default
RUN_FIELDS: tuple[str, ...] = (
    "name",
    "dataroot",
    "classes",
    "pretrained",
    "device",
    "profile",
    "checkpoints_dir",
    "allow_incomplete",
)


def notebook_option_names() -> tuple[str, ...]:
    """The :class:`~dfig.stages.train.TrainOptions` fields the ``04_train`` notebook (and a profile's
    ``04_train`` keys) set by name: all fields but :data:`RUN_FIELDS`.

    Returns: the field names, in ``TrainOptions`` order.
    """
    import dataclasses

    from dfig.stages.train import TrainOptions

    return tuple(f.name for f in dataclasses.fields(TrainOptions) if f.name not in RUN_FIELDS)


def options_from_params(ctx: Any, run: str, dataroot: Path, pretrained_path: str | None) -> Any:
    """:class:`~dfig.stages.train.TrainOptions` from the training notebook's parameters.

    Arguments: ``ctx`` the notebook context (``params``, ``device``, ``profile``); ``run`` the run name;
    ``dataroot`` the tree; ``pretrained_path`` the resolved backbone weights (or None). Returns: the
    options: every parameter named like a field is passed as is; fields absent from the parameters
    keep the ``TrainOptions`` default (the one place defaults live).
    """
    from dfig.notebook import allow_incomplete_default
    from dfig.stages.train import TrainOptions

    P = ctx.params
    kw = {k: P[k] for k in notebook_option_names() if k in P}
    allow = P.get("allow_incomplete")
    return TrainOptions(
        **kw,
        name=run,
        dataroot=str(dataroot),
        classes="face",
        pretrained=pretrained_path,
        device=ctx.device,
        profile=ctx.profile,
        allow_incomplete=allow_incomplete_default() if allow is None else bool(allow),
    )


def run_training(ctx: Any, run: str, dataroot: Path) -> dict[str, Any]:
    """Train run ``run`` on ``dataroot`` with the notebook's parameters; write metrics + predictions.

    Arguments: ``ctx`` the notebook context, ``run`` the run name, ``dataroot`` the tree. Returns: the
    training summary plus ``log`` (the per-epoch log as a DataFrame).
    """
    from dfig.stages.train import train

    P = ctx.params
    opts = options_from_params(ctx, run, dataroot, None)
    pre_path, pre_rec = resolve_pretrained(opts.arch, P.get("pretrained"))
    opts.pretrained = pre_path
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
        "arch": opts.arch,
        "train_mode": str(opts.train_mode),
        "tag": P.get("tag", ""),
        "features": P.get("features", "lnp"),
        "spectra_channels": opts.spectra_channels,
        "pretrained_used": pre_rec["pretrained"],
        "pretrained_provenance": pre_rec.get("provenance"),
        "options": result.get("options", {}),
        "fallbacks": [r for r in [pre_rec.get("fallback")] if r],
    }
    io.save_metrics(meta, f"train_{run}")
    return {**result, "log": log}


__all__ = ["RUN_FIELDS", "notebook_option_names", "options_from_params", "resolve_pretrained", "run_training"]
