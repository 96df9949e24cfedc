"""LNP extraction over an image tree: the denoiser's residual at full resolution (no resize).

The LNP of an image ``x`` (values in [0, 1]) is ``r = x - denoiser(x)`` (for CycleISP
``-tail(body(head(x)))``, see :mod:`dfig.core.denoise`). Two save modes:

``compat`` (``<stem>.png``) reproduces the original DFIG script byte for byte: the image is read with
OpenCV, so the RGB denoiser receives **BGR**; the residual is clamped to [0, 1], converted to uint8 as
``skimage.img_as_ubyte`` does (``rint(255 r)``), multiplied by 255 **in uint8** (wraparound: a value
``v`` becomes ``(256 - v) % 256``, so 0 stays 0 and 1..255 become 255..1) and written with
``cv2.imwrite``/``imencode`` as PNG. Because both reading and writing use OpenCV's BGR order, the
channels on disk keep their colours. Negative residuals are lost (clamped to 0). Read back with
:func:`read_lnp` as RGB ``uint8 / 255`` in [0, 1] - the values the original classifier saw.

``clean`` (``<stem>.npy``) keeps the signed residual: images read as RGB (:func:`dfig.data.load_rgb`,
any mode, EXIF orientation), ``r`` stored as float16, H x W x 3, **RGB** order, in image units
(a pixel value of 1.0 = full scale; typical |r| < 0.1). float16 keeps ~3 significant digits, far
below the 8-bit quantisation step (1/255) of the compat mode. :func:`read_lnp` returns it as float32.

:func:`extract_tree` mirrors ``{split}/{class}`` (or any tree / a flat folder), skips outputs that
exist (resumable: every file is written atomically, so an existing output is complete), splits work
with ``shard=(k, n)``, reports bad inputs by name, batches same-size images, and writes
``dfig_stage.json`` with the method, weights or fallback record, save mode, counts and the input
tree's own stage meta. CLI: ``python -m dfig.lnp --input_dir MASKED --output_dir LNP``.

Modules: :mod:`~dfig.stages.lnp.files` (save modes, reading inputs), :mod:`~dfig.stages.lnp.extract`
(the denoiser on a batch, precision check), :mod:`~dfig.stages.lnp.tree` (:func:`extract_tree`),
:mod:`~dfig.stages.lnp.cli` (``main``). Every public name is importable from here.
"""

from dfig.accel import PRECISION_CHOICES, PRECISIONS
from dfig.stages.lnp.cli import main
from dfig.stages.lnp.extract import (
    LNP_MIN_CORR,
    LNP_MIN_PNG_IDENTICAL,
    check_lnp_precision,
    lnp_agreement,
    lnp_batch,
    prepare,
    tune_cpu_allocator,
)
from dfig.stages.lnp.files import (
    CHANNEL_ORDER,
    MAX_BATCH_PIXELS,
    SAVE_MODES,
    SUFFIX,
    VALUE_SCALE,
    clean_npy_bytes,
    compat_encode,
    compat_png_bytes,
    lnp_to_file,
    read_input,
    read_inputs,
    read_lnp,
)
from dfig.stages.lnp.tree import LNP_KIND, extract_tree, lnp_signature

__all__ = [
    "SAVE_MODES",
    "SUFFIX",
    "PRECISIONS",
    "compat_encode",
    "compat_png_bytes",
    "clean_npy_bytes",
    "lnp_to_file",
    "read_lnp",
    "read_input",
    "read_inputs",
    "prepare",
    "LNP_MIN_CORR",
    "LNP_MIN_PNG_IDENTICAL",
    "lnp_agreement",
    "check_lnp_precision",
    "PRECISION_CHOICES",
    "tune_cpu_allocator",
    "MAX_BATCH_PIXELS",
    "lnp_batch",
    "extract_tree",
    "main",
    "CHANNEL_ORDER",
    "VALUE_SCALE",
    "LNP_KIND",
    "lnp_signature",
]
