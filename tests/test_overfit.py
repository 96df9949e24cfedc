"""The training step can fit a small training set, for every fusion mode and input (issue 23).

Each test memorises random labels of a few fixed crops (no augmentation) through the options the
profiles use (``dfig.stages.train.build_model`` + the training transform + ``train_step``): a clean-LNP
like signed array scaled by ``normalize="lnp_std"``, log or per-frequency standardised spectra, and an
RGB photo with ImageNet normalisation for the plain-RGB baseline. A defect that keeps the loss at
chance (input scale, spectral range, the attention block, gradient flow through the FFT) fails here.
Afterwards precise BN (``recalibrate_bn``) must make eval mode agree with what was learnt.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from dfig.data.transforms import build_transform
from dfig.stages.train import (
    TrainOptions,
    augment_options,
    build_model,
    fit_spec_stats,
    recalibrate_bn,
    train_step,
)

N_IMAGES, BATCH, SIZE, MAX_EPOCHS = 32, 16, 32, 60


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(rgb: bool) -> list[np.ndarray | Image.Image]:
    """Random images: signed float32 arrays of std 0.02 (a clean LNP) or uint8 RGB photos."""
    rng = np.random.default_rng(3)
    if rgb:
        return [
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(N_IMAGES)
        ]
    return [rng.normal(0.0, 0.02, (SIZE, SIZE, 3)).astype(np.float32) for _ in range(N_IMAGES)]


def _overfit(opts: TrainOptions, rgb: bool = False) -> tuple[list[float], float]:
    """Train on fixed crops with random labels, two shuffled batches per epoch, until an epoch's mean
    loss is < 0.1; return (mean loss per epoch, eval-mode loss after precise BN)."""
    torch.manual_seed(opts.seed)
    tf = build_transform(augment_options(opts, for_eval=True), train=False, normalize=opts.normalize)
    x = torch.stack([tf(img) for img in _inputs(rgb)])
    y = torch.tensor([0.0, 1.0] * (N_IMAGES // 2))[torch.randperm(N_IMAGES)]
    model = build_model(opts).train()
    fit_spec_stats(model, torch.utils.data.TensorDataset(x, y), opts, torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    losses: list[float] = []
    while len(losses) < MAX_EPOCHS and (not losses or losses[-1] >= 0.1):
        batches = torch.randperm(N_IMAGES).split(BATCH)
        steps = [float(train_step(model, (x[b], y[b]), optimizer, torch.device("cpu"))) for b in batches]
        losses.append(sum(steps) / len(steps))
    recalibrate_bn(model, [(x[b], y[b]) for b in torch.arange(N_IMAGES).split(BATCH)], "cpu", max_batches=2)
    with torch.no_grad():
        eval_loss = float(torch.nn.functional.binary_cross_entropy_with_logits(model.eval()(x), y))
    return losses, eval_loss


def _opts(**kw: object) -> TrainOptions:
    base = dict(
        dataroot="unused",
        arch="mobilev2",
        load_size=0,
        crop_size=SIZE,
        batch_size=BATCH,
        lr=1e-3,
        normalize="lnp_std",
        spec_norm="log",
    )
    return TrainOptions(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [0, 1, 2, "lnp", "spec"])
def test_every_mode_fits_fixed_lnp_crops(mode: int | str) -> None:
    losses, eval_loss = _overfit(_opts(train_mode=mode))
    assert losses[0] > 0.4, f"mode {mode}: first loss {losses[0]:.3f} is not near chance"
    assert losses[-1] < 0.1, (
        f"mode {mode}: loss {losses[-1]:.3f} after {len(losses)} epochs (every 5th: {losses[::5]})"
    )
    assert eval_loss < 0.3, f"mode {mode}: eval-mode loss {eval_loss:.3f} after precise BN"


def test_rgb_baseline_fits_fixed_crops() -> None:
    losses, eval_loss = _overfit(_opts(train_mode="lnp", normalize="imagenet"), rgb=True)
    assert losses[-1] < 0.1, f"RGB: loss {losses[-1]:.3f} after {len(losses)} epochs"
    assert eval_loss < 0.3


@pytest.mark.parametrize("mode", [0, 1])
def test_per_frequency_standardisation_and_coordinates_fit(mode: int) -> None:
    losses, eval_loss = _overfit(_opts(train_mode=mode, spec_norm="freq", spec_coords=True))
    assert losses[-1] < 0.1, f"mode {mode} freq+coords: loss {losses[-1]:.3f} after {len(losses)} epochs"
    assert eval_loss < 0.3
