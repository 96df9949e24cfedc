"""Figures of the notebooks and the paper. Each function returns a matplotlib Figure (saved by
:func:`dfig.io.save_figure` as PDF + PNG with its provenance); titles carry the profile label, which
says "SYNTHETIC data" when the data are synthetic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))  # headless by default; Jupyter sets its own
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from dfig.core.spectra import amplitude_phase, phase_to_display, to_display  # noqa: E402
from dfig.data.images import load_rgb  # noqa: E402
from dfig.data.layout import IMAGE_EXTS, LNP_EXTS, SPLITS, discover, mirror_path  # noqa: E402

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "font.size": 9, "axes.titlesize": 9})


def _pick(root: Path, exts: tuple[str, ...], n: int, split: str | None = None, seed: int = 0) -> list[Any]:
    """Up to ``n`` samples per class of ``split`` (first split present if None), seeded."""
    for s in [split] if split else SPLITS:
        try:
            samples = discover(root, splits=(s,), exts=exts)[s]
        except FileNotFoundError:
            continue
        rng = np.random.default_rng(seed)
        out = []
        for cls in ("real", "fake"):
            sel = [x for x in samples if x.cls == cls]
            idx = rng.choice(len(sel), size=min(n, len(sel)), replace=False) if sel else []
            out += [sel[i] for i in sorted(idx)]
        return out
    raise FileNotFoundError(f"{root}: no {split or 'split'} folders with real/fake images")


def _find(root: Path, ref: Path, ref_root: Path, exts: tuple[str, ...]) -> Path | None:
    for e in exts:
        p = mirror_path(ref, ref_root, root, e)
        if p.exists():
            return p
    return None


def lnp_display(lnp: np.ndarray) -> np.ndarray:
    """An LNP (float HxWx3) as an image: centred on its median, stretched to the 1-99 percentiles."""
    a = lnp.astype(np.float64) - np.median(lnp)
    s = np.percentile(np.abs(a), 99) or 1.0
    return np.clip(0.5 + 0.5 * a / s, 0, 1)


def _off(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def segmentation_examples(raw: Path, faces: Path, masks: Path, n: int = 4, title: str = "") -> plt.Figure:
    """Per example: the photo, the mask outline over it, the masked face."""
    picks = _pick(faces, IMAGE_EXTS, (n + 1) // 2)
    fig, axes = plt.subplots(3, len(picks), figsize=(1.6 * len(picks), 5.2), squeeze=False)
    for j, s in enumerate(picks):
        src = _find(raw, s.path, faces, IMAGE_EXTS)
        mask_p = _find(masks, s.path, faces, (".png",))
        photo = np.asarray(load_rgb(src)) if src else None
        face = np.asarray(load_rgb(s.path))
        if photo is not None:
            axes[0, j].imshow(photo)
            if mask_p is not None:
                axes[1, j].imshow(photo)
                axes[1, j].contour(np.asarray(load_rgb(mask_p))[..., 0] > 127, colors="lime", linewidths=0.8)
        axes[2, j].imshow(face)
        axes[0, j].set_title(f"{s.cls}", color="tab:red" if s.label else "tab:blue")
        for i in range(3):
            _off(axes[i, j])
    for i, lab in enumerate(("photo", "mask", "masked face")):
        axes[i, 0].set_ylabel(lab)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def lnp_examples(faces: Path, lnp: Path, n: int = 3, title: str = "") -> plt.Figure:
    """Per example: the masked face and its LNP (display-stretched)."""
    from dfig.data.images import read_lnp

    picks = _pick(lnp, LNP_EXTS, n)
    fig, axes = plt.subplots(2, len(picks), figsize=(1.7 * len(picks), 3.8), squeeze=False)
    for j, s in enumerate(picks):
        face = _find(faces, s.path, lnp, IMAGE_EXTS)
        if face is not None:
            axes[0, j].imshow(np.asarray(load_rgb(face)))
        axes[1, j].imshow(lnp_display(read_lnp(s.path)))
        axes[0, j].set_title(s.cls, color="tab:red" if s.label else "tab:blue")
        _off(axes[0, j])
        _off(axes[1, j])
    axes[0, 0].set_ylabel("face")
    axes[1, 0].set_ylabel("LNP")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_examples(
    raw: Path,
    faces: Path,
    lnp: Path,
    split: str = "test",
    n_per_class: int = 2,
    seed: int = 0,
    title: str = "",
) -> plt.Figure:
    """The paper's feature figure: Original / Face / LNP / LNP amplitude / LNP phase, per example."""
    from dfig.data.images import read_lnp

    picks = _pick(lnp, LNP_EXTS, n_per_class, split=split, seed=seed)
    cols = ("original", "face", "LNP", "amplitude spectrum", "phase spectrum")
    fig, axes = plt.subplots(len(picks), 5, figsize=(8.5, 1.75 * len(picks)), squeeze=False)
    for i, s in enumerate(picks):
        face = _find(faces, s.path, lnp, IMAGE_EXTS)
        photo = _find(raw, face, faces, IMAGE_EXTS) if face is not None else None
        arr = read_lnp(s.path)
        amp, ph = amplitude_phase(torch.from_numpy(arr).permute(2, 0, 1)[None].float(), channels=1)
        imgs = [
            np.asarray(load_rgb(photo)) if photo else None,
            np.asarray(load_rgb(face)) if face else None,
            lnp_display(arr),
            to_display(amp),
            phase_to_display(ph),
        ]
        for j, im in enumerate(imgs):
            ax = axes[i, j]
            if im is not None:
                ax.imshow(im, cmap={3: "magma", 4: "twilight"}.get(j))
            _off(ax)
            if i == 0:
                ax.set_title(cols[j])
        axes[i, 0].set_ylabel(s.cls, color="tab:red" if s.label else "tab:blue")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mean_spectra(means: dict[str, Any], title: str = "") -> plt.Figure:
    """Mean LNP amplitude spectrum of real and fake, and the log ratio fake/real."""
    real, fake = means["real"], means["fake"]
    ratio = np.log(fake + 1e-12) - np.log(real + 1e-12)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, im, t in (
        (axes[0], to_display(real), f"real (n={means['n']['real']})"),
        (axes[1], to_display(fake), f"fake (n={means['n']['fake']})"),
    ):
        ax.imshow(im, cmap="magma")
        ax.set_title(t)
        _off(ax)
    v = float(np.percentile(np.abs(ratio), 99.5)) or 1.0
    h = axes[2].imshow(ratio, cmap="coolwarm", vmin=-v, vmax=v)
    axes[2].set_title("log(fake / real)")
    _off(axes[2])
    fig.colorbar(h, ax=axes[2], fraction=0.046)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(log: pd.DataFrame, title: str = "") -> plt.Figure:
    """Train/val loss and val accuracy / AUC per epoch (from the run's log.csv).

    A run that logged a single epoch has no curve: each value is drawn as a point, its value in the
    legend, on an axis showing that one epoch, and the panel says so.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    series = [
        (a, "train_loss", "train loss", "o-"),
        (a, "val_loss", "val loss", "s-"),
        (b, "val_acc", "val accuracy", "o-"),
        (b, "val_auc", "val ROC-AUC", "^-"),
        (b, "val_ap", "val AP", "v-"),
    ]
    single = len(log) == 1
    for ax, k, lab, style in series:
        if k in log:
            ax.plot(
                log["epoch"], log[k], style, label=f"{lab} {float(log[k].iloc[0]):.3f}" if single else lab
            )
    b.axhline(0.5, color="grey", lw=0.8, ls=":")
    b.set_ylim(0.3, 1.02)
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        if single:
            e = float(log["epoch"].iloc[0])
            ax.set_xlim(e - 1, e + 1)
            ax.set_xticks([e])
            ax.set_title("one epoch logged: values, not a curve", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def metrics_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The run's val and test metrics side by side (for display in the notebook)."""
    rows = {
        k.replace("_metrics", ""): v
        for k, v in result.items()
        if k.endswith("_metrics") and isinstance(v, dict) and v
    }
    return pd.DataFrame(rows)


#: line styles of the ROC/PR figure: colour, dash and marker all change from one run to the next
_COLOURS = plt.get_cmap("tab10").colors
_DASHES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def curve_style(i: int) -> dict[str, Any]:
    """The ``i``-th run's line style: no two of the first 40 share colour, dash and marker together.

    Arguments: ``i``, the run's index. Returns: keyword arguments for ``Axes.plot``.
    """
    return {
        "color": _COLOURS[i % len(_COLOURS)],
        "ls": _DASHES[i % len(_DASHES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "markevery": (0.02 + 0.04 * (i % 8), 0.3),
        "ms": 4,
        "lw": 1.2,
    }


def roc_pr_curves(runs: dict[str, Any], title: str = "") -> plt.Figure:
    """Test ROC and precision-recall curves of every run (fake = positive class).

    Runs are split into two rows when both kinds exist: the paper's models (``*_mode<k>``) beside the
    classical peers (runs whose ``family`` is ``peer``, labelled "peer" in the legend), and the
    ablations; each run has its own colour, dash and marker (markers at staggered positions, so that
    two identical curves stay visible).
    """
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    def is_peer(n: str) -> bool:
        return getattr(runs[n], "family", "") == "peer"

    main = [n for n in runs if n.rsplit("_", 1)[-1].startswith("mode")] + [n for n in runs if is_peer(n)]
    groups = [g for g in (main, [n for n in runs if n not in main]) if g]
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 4.2 * len(groups)), squeeze=False)
    for names, (a, b) in zip(groups, axes):
        for i, name in enumerate(names):
            y, p = runs[name].test["label"].to_numpy(), runs[name].test["p_fake"].to_numpy()
            fpr, tpr, _ = roc_curve(y, p)
            prec, rec, _ = precision_recall_curve(y, p)
            st = curve_style(i)
            label = f"{name} (classical peer)" if is_peer(name) else name
            a.plot(fpr, tpr, label=f"{label} ({auc(fpr, tpr):.3f})", **st)
            b.plot(rec, prec, label=label, **st)
        a.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        a.set_xlabel("false positive rate (real called fake)")
        a.set_ylabel("true positive rate (fake caught)")
        models = "models and classical peers" if any(map(is_peer, main)) else "models"
        kind = (models if names is main else "ablations") if len(groups) > 1 else "all runs"
        a.set_title(f"ROC (AUC), {kind}")
        a.legend(fontsize=7, loc="lower right")
        b.set_xlabel("recall")
        b.set_ylabel("precision")
        b.set_title(f"precision-recall, {kind}")
        b.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrices(runs: dict[str, Any], title: str = "") -> plt.Figure:
    """Test confusion matrices at threshold 0.5, one panel per run."""
    from sklearn.metrics import confusion_matrix

    n = len(runs)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.3 * rows), squeeze=False)
    for ax, (name, r) in zip(axes.flat, runs.items()):
        y, p = r.test["label"].to_numpy(), r.test["p_fake"].to_numpy()
        cm = confusion_matrix(y, (p >= 0.5).astype(int), labels=[0, 1])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="black")
        ax.set_xticks([0, 1], ["real", "fake"])
        ax.set_yticks([0, 1], ["real", "fake"])
        ax.set_title(name, fontsize=7)
        ax.set_xlabel("predicted")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def robustness(df: pd.DataFrame, title: str = "") -> plt.Figure:
    """ROC-AUC and accuracy per perturbation."""
    fig, ax = plt.subplots(figsize=(6, 3))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["roc_auc"], 0.4, label="ROC-AUC")
    ax.bar(x + 0.2, df["acc"], 0.4, label="accuracy")
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax.set_xticks(x, df["perturbation"], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = [
    "confusion_matrices",
    "curve_style",
    "feature_examples",
    "lnp_display",
    "lnp_examples",
    "mean_spectra",
    "metrics_frame",
    "robustness",
    "roc_pr_curves",
    "segmentation_examples",
    "training_curves",
]
