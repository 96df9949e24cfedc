"""Features of the classical peers: the residual's 2-D and 1-D log spectra and its statistics, and the
log-DCT spectrum of the grey image (Frank et al. 2020).

Computed on the central region of each image of a feature tree (as training's ``center_region``);
see :mod:`dfig.stages.peers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dfig.runlog import RunReport

#: feature kinds of :func:`features`
FEATURE_KINDS: tuple[str, ...] = ("spec2d", "spec1d", "stats", "dct")
#: default side of the central region kept before the features (px; as ``--center_region`` in training)
DEFAULT_CROP = 128
#: default pooled size of the 2-D spectrum and number of radial bins of the 1-D spectrum
DEFAULT_BINS = {"spec2d": 32, "spec1d": 32}
_EPS = 1e-12


def center_crop_array(img: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``size x size`` region of an HxWxC array, as training's ``dfig.data.transforms.center_region``.

    Arguments: ``img`` HxWxC array; ``size`` side in px (``None``/0: unchanged). Returns the region;
    an image smaller than ``size`` on either side passes unchanged (as in training).
    """
    from dfig.data.transforms import center_region

    return np.asarray(center_region(np.asarray(img), size))


def residual_of(img: np.ndarray, highpass: bool = False, sigma: float = 1.0) -> np.ndarray:
    """The residual the features are computed on, float64 HxWx3, zero mean per channel.

    Arguments: ``img`` HxWx3 (an LNP as :func:`dfig.stages.lnp.read_lnp` returns it, or an image in [0, 1]);
    ``highpass`` subtract a Gaussian blur (``sigma`` px) first (for raw image trees). Returns the residual.
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if highpass:
        from scipy.ndimage import gaussian_filter

        x = x - gaussian_filter(x, sigma=(sigma, sigma, 0), mode="reflect")
    return x - x.mean(axis=(0, 1), keepdims=True)


def log_power(grey: np.ndarray) -> np.ndarray:
    """Centred (``fftshift``) 2-D log power spectrum ``log(|F|^2 + eps)`` of an HxW array."""
    f = np.fft.fftshift(np.fft.fft2(grey))
    return np.log(np.abs(f) ** 2 + _EPS)


def _pool2d(a: np.ndarray, bins: int) -> np.ndarray:
    h, w = a.shape
    if h < bins or w < bins:
        raise ValueError(
            f"a {h}x{w} crop is smaller than the {bins}x{bins} spectrum bins: use a larger crop or fewer bins"
        )
    rows = np.array_split(np.arange(h), bins)
    cols = np.array_split(np.arange(w), bins)
    r = np.add.reduceat(a, [i[0] for i in rows], axis=0) / np.array([len(i) for i in rows])[:, None]
    return np.add.reduceat(r, [j[0] for j in cols], axis=1) / np.array([len(j) for j in cols])[None, :]


def _radial(lp: np.ndarray, bins: int) -> np.ndarray:
    """Mean of the (centred) 2-D log spectrum over rings of normalised radius; empty rings interpolated."""
    h, w = lp.shape
    fy, fx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    r = np.hypot(fy, fx) / np.sqrt(0.5)  # 0 at DC, 1 at the corner (Nyquist on both axes)
    idx = np.minimum((r * bins).astype(int), bins - 1).ravel()
    s = np.bincount(idx, lp.ravel(), bins)
    n = np.bincount(idx, minlength=bins)
    centres = (np.arange(bins) + 0.5) / bins
    have = n > 0
    return np.interp(centres, centres[have], s[have] / n[have])


def _band_energy(grey: np.ndarray) -> list[float]:
    """Shares of the residual's power in radial bands and along the axes, and the Nyquist cross."""
    h, w = grey.shape
    p = np.abs(np.fft.fft2(grey)) ** 2
    p[0, 0] = 0.0
    total = p.sum() + _EPS
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    r = np.hypot(fy, fx) / 0.5
    bands = [
        float(p[(r >= a) & (r < b)].sum() / total)
        for a, b in ((0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 2))
    ]
    axes = float((p[0, :].sum() + p[:, 0].sum()) / total)
    nyq = float((p[h // 2, :].sum() + p[:, w // 2].sum()) / total) if h > 1 and w > 1 else 0.0
    half = float(p[np.abs(fy) == 0.25].sum() / total + p[:, np.abs(fx[0]) == 0.25].sum() / total)
    return [*bands, axes, nyq, half]


def log_dct(grey: np.ndarray) -> np.ndarray:
    """``log(|DCT-II(grey)| + eps)``: the orthonormal 2-D DCT of an HxW array, every coefficient kept
    (Frank et al., ICML 2020, "Leveraging Frequency Analysis for Deep Fake Image Recognition")."""
    from scipy.fft import dctn

    return np.log(np.abs(dctn(np.asarray(grey, dtype=np.float64), norm="ortho")) + _EPS)


def _stats(res: np.ndarray) -> np.ndarray:
    from scipy.stats import kurtosis, skew

    out: list[float] = []
    chans = [res[:, :, c].ravel() for c in range(res.shape[2])]
    for c in chans:
        sd = float(c.std())
        out += [
            sd,
            float(np.abs(c).mean()),
            float(skew(c)) if sd > 0 else 0.0,
            float(kurtosis(c)) if sd > 0 else 0.0,
            *np.percentile(c, [1, 99]).tolist(),
        ]
    for i in range(len(chans)):
        for j in range(i + 1, len(chans)):
            denom = chans[i].std() * chans[j].std()
            out.append(float((chans[i] * chans[j]).mean() / denom) if denom > 0 else 0.0)
    grey = res.mean(axis=2)
    lap = grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    out += [float(np.log(grey.var() + _EPS)), float(np.log(lap.var() + _EPS) - np.log(grey.var() + _EPS))]
    return np.asarray(out + _band_energy(grey))


def feature_vector(
    kind: str,
    img: np.ndarray,
    crop: int | None = DEFAULT_CROP,
    bins: int | None = None,
    highpass: bool = False,
) -> np.ndarray:
    """One image's feature vector.

    Arguments: ``kind`` one of :data:`FEATURE_KINDS`; ``img`` HxWx3 array; ``crop`` central region kept
    (:func:`center_crop_array`); ``bins`` spectrum bins (default :data:`DEFAULT_BINS`); ``highpass`` see
    :func:`residual_of`. Returns a 1-D float64 array whose length depends only on ``kind`` and ``bins``
    (``dct``: on the crop's size, one log-magnitude per DCT coefficient of the grey image).
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    if kind == "dct":  # the grey image itself (not a zero-mean residual), every coefficient
        img = np.asarray(center_crop_array(img, crop), dtype=np.float64)
        return log_dct(img.mean(axis=2) if img.ndim == 3 else img).ravel()
    res = residual_of(center_crop_array(img, crop), highpass=highpass)
    if kind == "stats":
        return _stats(res)
    lp = log_power(res.mean(axis=2))
    nb = int(bins or DEFAULT_BINS[kind])
    return _pool2d(lp, nb).ravel() if kind == "spec2d" else _radial(lp, nb)


def features(
    kind: str,
    arrays: Sequence[np.ndarray],
    crop: int | None = DEFAULT_CROP,
    bins: int | None = None,
    highpass: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Feature matrix (N x D) of ``arrays`` (each HxWx3); arguments as :func:`feature_vector`."""
    from dfig.progress import tqdm

    rows = [
        feature_vector(kind, a, crop, bins, highpass)
        for a in tqdm(arrays, desc=f"features {kind}", disable=not progress)
    ]
    if len({r.shape for r in rows}) > 1:  # dct: one coefficient per pixel of the (cropped) image
        sizes = sorted({tuple(np.shape(a)[:2]) for a in arrays})
        raise ValueError(
            f"{kind} features of images of different sizes {sizes[:3]} cannot be compared: "
            "give a crop (the peers' `crop`, e.g. 128) so that every image has the same size"
        )
    return np.stack(rows) if rows else np.zeros((0, 0))


def sample_features(
    kind: str,
    samples: Sequence[Any],
    reader: Callable[[Any], np.ndarray] | None = None,
    policy: str = "skip",
    progress: bool = False,
    **kw: Any,
) -> tuple[np.ndarray, np.ndarray, list[Any], RunReport]:
    """Read ``samples`` (``dfig.data.layout.Sample``) and compute their features, skipping bad files.

    Arguments: ``reader`` path -> HxWx3 array (default :func:`dfig.stages.lnp.read_lnp`); ``policy`` ``skip``
    (bad files counted and named in the report) or ``strict`` (raise); ``kw`` as :func:`feature_vector`.
    Returns ``(X, y, kept samples, report)``.
    """
    from dfig.data.images import BAD_FILE_POLICIES, BadImageError
    from dfig.progress import tqdm

    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    if reader is None:
        from dfig.data.images import read_lnp as reader
    rep, rows, kept = RunReport(f"peer features {kind}"), [], []
    for s in tqdm(samples, desc=f"features {kind}", disable=not progress, unit="img"):
        try:
            arr = reader(s.path)
        except BadImageError as e:
            if policy == "strict":
                raise
            rep.fail(e.path, e.reason)
            continue
        rows.append(feature_vector(kind, arr, **kw))
        kept.append(s)
    rep.done = len(kept)
    X = np.stack(rows) if rows else np.zeros((0, 0))
    return X, np.array([s.label for s in kept], dtype=np.int64), kept, rep


__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_CROP",
    "FEATURE_KINDS",
    "center_crop_array",
    "feature_vector",
    "features",
    "log_dct",
    "log_power",
    "residual_of",
    "sample_features",
]
