"""Face segmentation: SAM (segment-anything) with point / box / automatic prompts, and labelled fallbacks.

Segmenters (``SEGMENTERS``, built by :func:`build_segmenter`) share one API:
``.segment(rgb HxWx3 uint8) -> SegResult(mask bool HxW, score float)`` and ``.name``.

- ``sam``: Segment Anything, one image-encoder pass per image (``SamPredictor.set_image``), then a
  prompt from ``PROMPTS``:

  - ``points`` (default; the original project's): two positive points at (x, y) = (128, 128) and
    (128, 236) of a 256x256 image, scaled to the image size; ``multimask_output=True``, the
    best-scoring mask's low-res logits go back in as ``mask_input`` for one more prediction with
    ``multimask_output=False``.
  - ``box``: the face box of an FFHQ-aligned crop (:data:`FACE_BOX`, scaled) with
    ``multimask_output=False``.
  - ``auto``: for unaligned photos. ``SamAutomaticMaskGenerator`` (single crop layer) proposes masks
    from a point grid; the largest one covering the image centre gives a box prompt. The generator
    reuses the embedding already computed for the image, so ``auto`` still costs ONE encoder pass;
    its extra cost is the mask decoder on ``points_per_side**2`` point prompts (default 16 x 16 here,
    SAM's own default 32 x 32 costs 4x more): on 2 CPU cores about 3x the encoder's time for vit_b
    (benchmarks/bench_sam.py). (A generator with ``crop_n_layers > 0`` would need one encoder pass per
    crop; it is not used.)

- ``prior`` (fallback): the aligned-face prior, an ellipse inscribed in :data:`FACE_BOX`.
- ``none`` (fallback): the whole image.

Fallbacks go through :func:`dfig.fallback.use_fallback` (refused in the ``paper`` profile). ``sam``
falls back to ``prior`` only when its weights are missing from a folder (the default
``pretrained/`` or a folder given as ``checkpoint``); a checkpoint FILE that is named but missing, or a
wrong file, is an error.

Geometry of an FFHQ-aligned face (the FFHQ/StyleGAN alignment scales the crop to about 4x the eye
distance, eyes on one line): eye centres at about (0.375, 0.47) and (0.625, 0.47) of the image, mouth
at (0.5, 0.71), chin at about 0.84, hairline at about 0.23 (checked on the mean of 300 images of the
face sample). :data:`FACE_BOX` ``= (0.18, 0.14, 0.82, 0.90)`` (x0, y0, x1, y1 as fractions of width and
height) spans cheek to cheek with a small margin and forehead to just below the chin; the prior is the
ellipse inscribed in it: centre (0.50, 0.52), semi-axes 0.32 W and 0.38 H.

:func:`segment_tree` runs a segmenter over a dataset tree (resumable, sharded, bad files reported);
``python -m dfig.segment`` is its CLI.

Modules: :mod:`~dfig.stages.segment.base` (constants, :class:`SegResult`, face geometry),
:mod:`~dfig.stages.segment.fallbacks`, :mod:`~dfig.stages.segment.prompts`, :mod:`~dfig.stages.segment.sam`,
:mod:`~dfig.stages.segment.build` (registry), :mod:`~dfig.stages.segment.output` (files written),
:mod:`~dfig.stages.segment.tree` (:func:`segment_tree`), :mod:`~dfig.stages.segment.cli` (``main``).
Every public name is importable from here.
"""

from dfig.stages.segment.base import (
    CSV_FIELDS,
    CSV_NAME,
    FACE_BOX,
    FACE_FORMATS,
    FACE_SUFFIXES,
    JPEG_QUALITY,
    SAM_MODEL_TYPES,
    SAM_POINTS_256,
    STAGE,
    Segmenter,
    SegResult,
    apply_mask,
    face_box,
    prior_mask,
)
from dfig.stages.segment.build import SEGMENTERS, build_segmenter
from dfig.stages.segment.cli import main
from dfig.stages.segment.fallbacks import PriorSegmenter, WholeImageSegmenter
from dfig.stages.segment.output import default_mask_dir, encode_face, write_face_and_mask
from dfig.stages.segment.prompts import PROMPTS, decode_prompts
from dfig.stages.segment.sam import (
    SAM_BATCH_SIZE,
    SAM_MIN_MASK_IOU,
    SamSegmenter,
    check_sam_precision,
    load_sam,
    mask_iou,
    sam_agreement,
    sam_batch_size,
    sam_input,
)
from dfig.stages.segment.tree import FACES_KIND, faces_signature, segment_stream, segment_tree

__all__ = [
    "encode_face",
    "SAM_BATCH_SIZE",
    "SAM_MIN_MASK_IOU",
    "sam_batch_size",
    "sam_input",
    "mask_iou",
    "check_sam_precision",
    "sam_agreement",
    "decode_prompts",
    "segment_stream",
    "write_face_and_mask",
    "SEGMENTERS",
    "PROMPTS",
    "FACE_BOX",
    "SAM_POINTS_256",
    "SAM_MODEL_TYPES",
    "FACE_FORMATS",
    "SegResult",
    "Segmenter",
    "SamSegmenter",
    "PriorSegmenter",
    "WholeImageSegmenter",
    "build_segmenter",
    "load_sam",
    "prior_mask",
    "face_box",
    "apply_mask",
    "default_mask_dir",
    "segment_tree",
    "main",
    "STAGE",
    "CSV_NAME",
    "CSV_FIELDS",
    "FACE_SUFFIXES",
    "JPEG_QUALITY",
    "FACES_KIND",
    "faces_signature",
]
