"""Inference with a trained detector on a folder of LNPs or of raw photos (``python -m dfig.predict``).

Two inputs:

- an LNP folder (``raw=False``): files made by ``dfig.stages.lnp`` (``.png`` compat / ``.npy`` clean), or face
  images for a detector trained on images (mode ``"lnp"`` on RGB faces);
- raw photos (``raw=True``): segmentation -> LNP -> classification in one go, in memory. The feature
  pipeline is rebuilt EXACTLY as recorded in the checkpoint's ``"features"`` (the ``dfig_stage.json``
  of the tree it was trained on, with its nested ``"input"`` stages): the segmenter and its prompt (or
  the recorded fallback), the face format (PNG lossless / cv2 JPEG q95), the denoiser (CycleISP file
  with the same SHA-256, or the classical fallback with the same parameters), the save mode (compat:
  BGR into the denoiser, ``clamp -> uint8 -> x255`` wraparound via :func:`dfig.stages.lnp.compat_encode`;
  clean: float16 signed residual). A component that was real in training but is unavailable now is
  an error, never a silent substitute.

Sizes, crops and normalisation come from the checkpoint's stored training options (eval transform
of :mod:`dfig.stages.train`). Labels are read from the folder structure when every file sits under a
``real``/``fake`` (or ``0_real``/``1_fake``) folder. The CSV is written atomically and never into the
input folder: by default next to the checkpoint (``predict_<folder>[_raw].csv``, a name no training
artefact has); an existing file is never replaced unless ``overwrite`` (``--overwrite``).

Inputs are screened before scoring (:func:`screen_inputs`): images larger than ``max_pixels`` are
refused by their header, before decoding (named skip, or an error under ``strict``); images smaller
than the model's crop and inputs that do not look like what the detector was trained on (raw photos
scored as LNPs without ``--raw``, a face tree for an LNP detector) give an :class:`InputMismatchWarning`
and are listed in ``df.attrs``.
"""

from dfig.stages.predict.cli import (
    build_parser,
    check_destination,
    default_output_csv,
    main,
    summary,
    write_predictions,
)
from dfig.stages.predict.pipeline import (
    FEATURE_STAGES,
    MAX_PIXELS,
    RAW_DATA_STAGES,
    FeaturePipeline,
    InputMismatchWarning,
    PipelineMismatchError,
    build_feature_pipeline,
    stage_chain,
)
from dfig.stages.predict.scoring import (
    INPUT_EXTS,
    file_reader,
    inference_dataset,
    label_of,
    load_for_inference,
    predict_folder,
    score_dataset,
)
from dfig.stages.predict.screen import (
    describe_expected,
    image_size,
    input_kind_warnings,
    screen_inputs,
)

__all__ = [
    "FEATURE_STAGES",
    "INPUT_EXTS",
    "MAX_PIXELS",
    "RAW_DATA_STAGES",
    "FeaturePipeline",
    "InputMismatchWarning",
    "PipelineMismatchError",
    "build_feature_pipeline",
    "build_parser",
    "check_destination",
    "default_output_csv",
    "describe_expected",
    "file_reader",
    "image_size",
    "inference_dataset",
    "input_kind_warnings",
    "label_of",
    "load_for_inference",
    "main",
    "predict_folder",
    "score_dataset",
    "screen_inputs",
    "stage_chain",
    "summary",
    "write_predictions",
]
