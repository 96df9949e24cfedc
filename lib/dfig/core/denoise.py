"""Denoisers whose residual is the LNP: the CycleISP RGB denoiser and a classical fallback.

:class:`CycleISPDenoiser` rebuilds the CycleISP sRGB denoising network (``DenoiseNet``) with the
official key names, so the official ``sidd_rgb.pth`` loads with ``strict=True``:

- ``head.0``: conv3x3 3->64;
- ``body.0..3``: residual groups, each 8 dual-attention blocks (``body.g.body.0..7``) and a conv3x3
  (``body.g.body.8``), plus the group input;
- ``body.4``: conv3x3 64->64; ``body.5``: PReLU(64);
- ``tail.0``: conv3x3 64->3.

The original shares one PReLU module between every block and the body end, so its file stores the
same tensor under each block's ``body.1.weight`` and under ``body.5.weight``; here every block owns a
PReLU with the same key name, which loads the file unchanged (399 keys, 2,834,947 distinct parameters
in the original, 2,836,995 here). Input: RGB (or, in the original DFIG script, BGR) in [0, 1], no
normalisation. ``forward(x)`` returns the denoised image ``x + tail(body(head(x)))``;
``residual(x)`` returns the LNP ``x - forward(x) = -tail(body(head(x)))``. No downsampling: any size.

:class:`ClassicalDenoiser` (OpenCV non-local means) is the labelled fallback used when the CycleISP
file is absent in a non-paper run (see :func:`build_denoiser`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from dfig import weights
from dfig.fallback import use_fallback

CYCLEISP_WEIGHTS = "cycleisp_sidd_rgb"
N_FEATS, N_GROUPS, N_BLOCKS, REDUCTION = 64, 4, 8, 16
FLOP_PER_PIXEL = 5.62e6  # multiply-adds x 2 of every conv, per pixel (see ``cycleisp_flops``)


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class _SpatialConv(nn.Module):
    """Holds ``conv`` (2->1, 3x3, no bias) so that the key is ``SA.spatial.conv.weight``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialAttention(nn.Module):
    """Channel max and mean -> conv3x3 2->1 -> sigmoid -> scale the input."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = _SpatialConv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class ChannelAttention(nn.Module):
    """Global average pool -> conv1x1 C->C/r -> ReLU -> conv1x1 C/r->C -> sigmoid -> scale."""

    def __init__(self, channels: int = N_FEATS, reduction: int = REDUCTION) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class DualAttentionBlock(nn.Module):
    """conv-PReLU-conv, then spatial and channel attention branches, concat, conv1x1, + input."""

    def __init__(self, n_feats: int = N_FEATS) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(n_feats, n_feats), nn.PReLU(n_feats), _conv(n_feats, n_feats))
        self.SA = SpatialAttention()
        self.CA = ChannelAttention(n_feats)
        self.conv1x1 = nn.Conv2d(2 * n_feats, n_feats, 1)
        self.fused = False  # see forward_fused; set by CycleISPDenoiser.set_fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self.forward_fused(x)
        res = self.body(x)
        res = self.conv1x1(torch.cat([self.SA(res), self.CA(res)], dim=1))
        return res + x

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The same function with fewer passes over memory (the attention tail is memory-bound on CPU).

        With ``W = [Wa | Wb]`` the conv1x1 weight, ``s`` the spatial map and ``c`` the channel weights:
        ``conv1x1(cat[s*res, c*res]) = s * (Wa res) + (Wb diag(c)) res + b``; ``Wa``, ``Wb diag(c)`` and
        the channel mean of ``res`` (for ``s``) come from ONE batched GEMM on the NHWC view of ``res``,
        so the 128-channel concat and two full-size products are never built. Output channels_last.
        """
        res = self.body(x)
        n, c, h, w = res.shape
        rv = res.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view when res is channels_last
        ca = self.CA.conv_du(rv.mean(1).view(n, c, 1, 1)).view(n, 1, c)
        wab = self.conv1x1.weight.view(c, 2 * c)
        wa, wb = wab[:, :c], wab[:, c:]
        wt = torch.cat(
            [
                wa.t().expand(n, c, c),
                (wb.unsqueeze(0) * ca).transpose(1, 2),
                torch.full((n, c, 1), 1.0 / c, dtype=wab.dtype, device=wab.device),
            ],
            dim=2,
        )
        y = torch.bmm(rv, wt.to(rv.dtype))  # (n, hw, 2c+1): Wa res | Wb diag(c) res | channel mean
        pooled = torch.stack([rv.amax(-1), y[..., 2 * c]], 1).view(n, 2, h, w)
        s = torch.sigmoid(self.SA.spatial(pooled)).view(n, h * w, 1)
        out = torch.addcmul(y[..., c : 2 * c], y[..., :c], s)
        out += x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        out += self.conv1x1.bias
        return out.view(n, h, w, c).permute(0, 3, 1, 2)


class ResidualGroup(nn.Module):
    """``n_blocks`` dual-attention blocks and a conv3x3, plus the group input."""

    def __init__(self, n_feats: int = N_FEATS, n_blocks: int = N_BLOCKS) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[DualAttentionBlock(n_feats) for _ in range(n_blocks)], _conv(n_feats, n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class CycleISPDenoiser(nn.Module):
    """CycleISP sRGB denoiser (key-compatible with the official ``sidd_rgb.pth``)."""

    def __init__(self, n_feats: int = N_FEATS, n_groups: int = N_GROUPS, n_blocks: int = N_BLOCKS) -> None:
        super().__init__()
        self.head = nn.Sequential(_conv(3, n_feats))
        self.body = nn.Sequential(
            *[ResidualGroup(n_feats, n_blocks) for _ in range(n_groups)],
            _conv(n_feats, n_feats),
            nn.PReLU(n_feats),
        )
        self.tail = nn.Sequential(_conv(n_feats, 3))
        self.source: dict[str, Any] = {"method": "cycleisp", "weights": None}

    def set_fused(self, enabled: bool = True) -> CycleISPDenoiser:
        """Use :meth:`DualAttentionBlock.forward_fused` (same numbers to ~1e-6, faster on CPU)."""
        for m in self.modules():
            if isinstance(m, DualAttentionBlock):
                m.fused = enabled
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoised image ``x + tail(body(head(x)))`` (x: N x 3 x H x W in [0, 1])."""
        return x + self.tail(self.body(self.head(x)))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The LNP: what the denoiser removes, ``x - forward(x) = -tail(body(head(x)))``."""
        return -self.tail(self.body(self.head(x)))


def cycleisp_flops(height: int, width: int) -> float:
    """FLOPs (2 x multiply-adds of the convolutions) of one forward pass at ``height x width``."""
    c = N_FEATS
    conv3 = 2 * 9 * c * c
    per_block = 2 * conv3 + 2 * 2 * c * c  # two 3x3 convs + conv1x1 128->64
    per_px = 2 * 9 * 3 * c * 2 + N_GROUPS * (N_BLOCKS * per_block + conv3) + conv3
    return float(per_px) * height * width


# ---------------------------------------------------------------------------------------------
# loading


CheckpointMismatchError = weights.CheckpointMismatchError  # the one checkpoint error (dfig.weights)
CYCLEISP_HINT = (
    "Is this the CycleISP sRGB denoiser file sidd_rgb.pth? `python -m dfig.weights` says where to get it."
)


def load_cycleisp(
    path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu", verify: str = "size"
) -> CycleISPDenoiser:
    """Build :class:`CycleISPDenoiser` and load ``sidd_rgb.pth`` strictly (eval mode, on ``device``).

    ``path``: the file, a folder holding it, or ``None`` for the weights folder
    (:func:`dfig.weights.locate`; raises :class:`~dfig.weights.MissingWeightsError` with the download
    hint). ``model.source`` records the file and its SHA-256.
    """
    p = weights.locate(CYCLEISP_WEIGHTS, path, verify=verify)
    model = CycleISPDenoiser()
    sd = weights.load_checkpoint(p)
    weights.check_state_dict(model, sd, source=p, hint=CYCLEISP_HINT)
    model.load_state_dict(sd, strict=True)
    rec = (
        weights.weights_record(CYCLEISP_WEIGHTS, p) if verify != "none" else {"file": p.name, "path": str(p)}
    )
    model.source = {"method": "cycleisp", **rec}
    return model.eval().to(device)


# ---------------------------------------------------------------------------------------------
# classical fallback


#: The classical denoiser's default strength (NLM ``h``; bilateral uses ``4 h`` as its colour sigma). The one
#: place of this default: ``02_lnp``'s ``classical_h`` and ``python -m dfig.lnp --classical_h`` fall back to it.
CLASSICAL_H = 5.0


class ClassicalDenoiser:
    """OpenCV non-local means on the 3-channel image; ``residual(x) = x - NLM(x)``.

    Why this one: non-local means is a proper edge-preserving denoiser (patch self-similarity), so
    its residual is mostly noise and compression texture rather than edges, like a learned
    denoiser's; a Gaussian or median filter's residual is dominated by edges. ``cv2.fastNlMeansDenoising``
    on the 3-channel uint8 image uses one joint patch distance over the channels, so it does not depend
    on the channel order (BGR in compat mode, RGB in clean mode). With h=5, a 5x5 template and an 11x11
    search window it takes ~50 ms per 256x256 image on this 2-core machine (the 1000-image face sample
    in about a minute), versus ~200 ms for OpenCV's defaults (7/21) and ~185 ms for the Lab-space
    ``fastNlMeansDenoisingColored``. ``bilateral`` (~1 ms) is offered for very large sets.
    Inputs are expected on the 8-bit grid (x*255 integral), as images read from disk are.
    """

    METHODS = ("nlm", "bilateral")

    def __init__(
        self, method: str = "nlm", h: float = CLASSICAL_H, template: int = 5, search: int = 11
    ) -> None:
        if method not in self.METHODS:
            raise ValueError(f"classical method must be one of {self.METHODS}, got {method!r}")
        if not float(h) > 0:
            raise ValueError(f"classical denoiser strength h must be > 0 (default {CLASSICAL_H}), got {h!r}")
        self.method, self.h, self.template, self.search = method, float(h), int(template), int(search)
        self.source: dict[str, Any] = {"method": "classical", "classical": self.params()}

    def params(self) -> dict[str, Any]:
        """The parameters that define the residual (recorded; ``ClassicalDenoiser(**params())`` rebuilds it)."""
        return {"method": self.method, "h": self.h, "template": self.template, "search": self.search}

    def denoise_u8(self, img: np.ndarray) -> np.ndarray:
        """Denoise one HxWx3 uint8 image."""
        import cv2

        img = np.ascontiguousarray(img)
        if self.method == "nlm":
            return cv2.fastNlMeansDenoising(img, None, self.h, self.template, self.search)
        return cv2.bilateralFilter(img, 5, 4 * self.h, 5)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """LNP of a float batch N x 3 x H x W in [0, 1] (any device; computed on CPU)."""
        xs = x.detach().float().cpu().clamp(0, 1)
        u8 = (xs * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        den = np.stack([self.denoise_u8(im) for im in u8])
        out = xs - torch.from_numpy(den).permute(0, 3, 1, 2).float() / 255
        return out.to(x.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Denoised batch (``x - residual(x)``)."""
        return x - self.residual(x)

    def to(self, device: str | torch.device) -> ClassicalDenoiser:  # interface parity with nn.Module
        return self

    def eval(self) -> ClassicalDenoiser:
        return self


# ---------------------------------------------------------------------------------------------
# registry


def _classical(classical_h: float | None) -> ClassicalDenoiser:
    return ClassicalDenoiser(h=CLASSICAL_H if classical_h is None else classical_h)


def _build_cycleisp(
    checkpoint: str | os.PathLike[str] | None,
    device: str | torch.device,
    allow_fallback: bool | None,
    classical_h: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    try:
        model = load_cycleisp(checkpoint, device)
    except weights.MissingWeightsError as e:
        if checkpoint not in (None, ""):  # a file or folder the user named is used or is an error
            raise weights.MissingWeightsError(
                f"{e} (named by checkpoint={str(checkpoint)!r}: a named file is never replaced by a fallback; "
                "leave it out to use the weights folder, or the classical denoiser there)"
            ) from e
        rec = use_fallback(
            "lnp",
            "classical denoiser (OpenCV non-local means)",
            "CycleISP sidd_rgb.pth",
            str(e).split(". ")[0],
            allowed=allow_fallback,
        )
        den = _classical(classical_h)
        record = {**den.source, "fallback": rec}
        den.source = record
        return den, record
    return model, dict(model.source)


def _build_classical(
    checkpoint: str | os.PathLike[str] | None,
    device: str | torch.device,
    allow_fallback: bool | None,
    classical_h: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    den = _classical(classical_h)
    return den, dict(den.source)


DENOISERS: dict[str, Callable[..., tuple[Any, dict[str, Any]]]] = {
    "cycleisp": _build_cycleisp,
    "classical": _build_classical,
}


def build_denoiser(
    name: str = "cycleisp",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    allow_fallback: bool | None = None,
    classical_h: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build a denoiser by registry name; returns ``(denoiser, record)``.

    Arguments: ``name`` a key of :data:`DENOISERS`; ``checkpoint`` the CycleISP file or folder;
    ``classical_h`` the classical denoiser's strength (``None``: :data:`CLASSICAL_H`), used by
    ``classical`` and by ``cycleisp``'s fallback, recorded as ``record["classical"]["h"]``.

    ``cycleisp`` without its weights file goes through :func:`dfig.fallback.use_fallback` (refused
    when fallbacks are not allowed, e.g. the paper profile) and returns the classical denoiser; the
    record (method, weights file + SHA-256, or the fallback record) belongs in the stage's outputs.
    A wrong or corrupt file always raises (never a silent fallback).
    """
    if name not in DENOISERS:
        raise KeyError(f"unknown denoiser {name!r}; choose one of {', '.join(DENOISERS)}")
    return DENOISERS[name](checkpoint, device, allow_fallback, classical_h=classical_h)


__all__ = [
    "CycleISPDenoiser",
    "ClassicalDenoiser",
    "CLASSICAL_H",
    "DualAttentionBlock",
    "ResidualGroup",
    "CheckpointMismatchError",
    "DENOISERS",
    "build_denoiser",
    "load_cycleisp",
    "cycleisp_flops",
    "FLOP_PER_PIXEL",
    "CYCLEISP_WEIGHTS",
]
