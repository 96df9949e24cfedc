"""SAM prompts: the original two points, the aligned-face box, the automatic prompt; batched decoding."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from dfig.stages.segment.base import SAM_POINTS_256, SegResult, face_box


class PromptTarget(Protocol):
    """What a prompt needs of the SAM wrapper (:class:`dfig.stages.segment.sam.SamSegmenter`, which
    sits above this module): the predictor with the image embedding set, the model, automatic options."""

    predictor: Any
    model: Any
    auto_options: Mapping[str, Any]


def _prompt_points(seg: PromptTarget, rgb: np.ndarray) -> SegResult:
    h, w = rgb.shape[:2]
    pts = np.array(SAM_POINTS_256, dtype=np.float64) * np.array([w / 256.0, h / 256.0])
    labels = np.ones(len(pts), dtype=np.int64)
    _, scores, logits = seg.predictor.predict(point_coords=pts, point_labels=labels, multimask_output=True)
    best = int(np.argmax(scores))
    masks, scores2, _ = seg.predictor.predict(
        point_coords=pts, point_labels=labels, mask_input=logits[best][None, :, :], multimask_output=False
    )
    return SegResult(masks[0].astype(bool), float(scores2[0]), {"first_pass_best": best})


def _prompt_box(seg: PromptTarget, rgb: np.ndarray) -> SegResult:
    box = face_box(*rgb.shape[:2])
    masks, scores, _ = seg.predictor.predict(box=box, multimask_output=False)
    return SegResult(masks[0].astype(bool), float(scores[0]), {"box": box.tolist()})


class _SharedEmbedding:
    """Stands in for the generator's own SamPredictor: reuses the embedding already set, no 2nd pass."""

    def __init__(self, predictor: Any, image_shape: tuple[int, ...]) -> None:
        self._p = predictor
        self._shape = tuple(image_shape)

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        if tuple(image.shape) != self._shape or not self._p.is_image_set:
            raise RuntimeError(
                "auto prompt: the generator asked for a crop; only crop_n_layers=0 is supported"
            )

    def reset_image(self) -> None:  # keep the embedding for the box prompt that follows
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


def prompt_auto(seg: PromptTarget, rgb: np.ndarray) -> SegResult:
    """The ``auto`` prompt: SAM's mask generator (reusing the set embedding) picks a box prompt.

    Arguments: ``seg`` with this image's embedding set; ``rgb`` the image. Returns its :class:`SegResult`.
    """
    from segment_anything import SamAutomaticMaskGenerator

    h, w = rgb.shape[:2]
    gen = SamAutomaticMaskGenerator(seg.model, crop_n_layers=0, **seg.auto_options)
    gen.predictor = _SharedEmbedding(seg.predictor, rgb.shape)
    anns = gen.generate(rgb)
    cy, cx = h // 2, w // 2
    central = [a for a in anns if a["segmentation"][cy, cx]]
    if central:
        pick, source = max(central, key=lambda a: a["area"]), "largest mask covering the centre"
    elif anns:

        def dist(a: Mapping[str, Any]) -> float:
            bx, by, bw, bh = a["bbox"]
            return (bx + bw / 2 - cx) ** 2 + (by + bh / 2 - cy) ** 2

        pick, source = min(anns, key=dist), "no mask covers the centre: mask whose box centre is nearest"
    else:
        pick, source = None, "no mask proposed: aligned-face box"
    if pick is not None:
        bx, by, bw, bh = pick["bbox"]
        box = np.array([bx, by, bx + bw, by + bh], dtype=np.float64)
    else:
        box = face_box(h, w)
    masks, scores, _ = seg.predictor.predict(box=box, multimask_output=False)
    return SegResult(
        masks[0].astype(bool),
        float(scores[0]),
        {"box": box.tolist(), "box_source": source, "proposals": len(anns)},
    )


#: Prompt name -> function(PromptTarget, rgb) -> SegResult (the image embedding is already set).
PROMPTS: dict[str, Callable[[PromptTarget, np.ndarray], SegResult]] = {
    "points": _prompt_points,
    "box": _prompt_box,
    "auto": prompt_auto,
}


def _predict_masks(dec: Any, feats: Any, image_pe: Any, sparse: Any, dense: Any) -> tuple[Any, Any]:
    """``MaskDecoder.predict_masks`` for one prompt per image: B embeddings with B prompts.

    (segment-anything's own version repeats ONE embedding over the prompts; here row i of the
    batch pairs embedding i with prompt i, the same arithmetic without the repeat.)
    """
    import torch

    b = feats.shape[0]
    tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0).unsqueeze(0).expand(b, -1, -1)
    tokens = torch.cat((tokens, sparse), dim=1)
    src = feats + dense
    pos = image_pe.expand(b, -1, -1, -1)
    _, c, h, w = src.shape
    hs, src = dec.transformer(src, pos, tokens)
    mask_tokens = hs[:, 1 : 1 + dec.num_mask_tokens, :]
    up = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack(
        [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1
    )
    _, c2, h2, w2 = up.shape
    masks = (hyper @ up.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
    return masks, dec.iou_prediction_head(hs[:, 0, :])


def _decode(
    model: Any, feats: Any, multimask: bool, points: Any = None, boxes: Any = None, mask_input: Any = None
) -> tuple[Any, Any]:
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    masks, iou = _predict_masks(model.mask_decoder, feats, model.prompt_encoder.get_dense_pe(), sparse, dense)
    sl = slice(1, None) if multimask else slice(0, 1)
    return masks[:, sl], iou[:, sl]


def decode_prompts(model: Any, feats: Any, sizes: list[tuple[Any, Any]], prompt: str) -> list[SegResult]:
    """Masks for the ``points`` or ``box`` prompt of every image at once (fp32 mask decoder).

    Arguments:
        model: the ``Sam``; feats: its embeddings ``B x 256 x 64 x 64``;
        sizes: per image ``(original (H, W), resized input (h, w))``;
        prompt: ``points`` (two points, multimask, then refined with the best low-res logits) or
            ``box`` (:data:`FACE_BOX`), exactly as :data:`PROMPTS` does them one image at a time.
    """
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    tf, dev = ResizeLongestSide(model.image_encoder.img_size), feats.device
    infos: list[dict[str, Any]]
    with torch.inference_mode():
        if prompt == "points":
            pts = [
                tf.apply_coords(np.array(SAM_POINTS_256) * np.array([w / 256.0, h / 256.0]), (h, w))
                for (h, w), _ in sizes
            ]
            coords = torch.as_tensor(np.stack(pts), dtype=torch.float, device=dev)
            labels = torch.ones(coords.shape[:2], dtype=torch.int, device=dev)
            low, iou = _decode(model, feats, True, points=(coords, labels))
            best = iou.argmax(dim=1)
            low, iou = _decode(
                model,
                feats,
                False,
                points=(coords, labels),
                mask_input=low[torch.arange(len(best), device=dev), best][:, None],
            )
            infos = [{"first_pass_best": int(b)} for b in best]
        elif prompt == "box":
            boxes = [face_box(h, w) for (h, w), _ in sizes]
            bt = torch.as_tensor(
                np.stack([tf.apply_boxes(b, s[0])[0] for b, s in zip(boxes, sizes)]),
                dtype=torch.float,
                device=dev,
            )
            low, iou = _decode(model, feats, False, boxes=bt)
            infos = [{"box": b.tolist()} for b in boxes]
        else:
            raise ValueError(f"batched decoding supports the points and box prompts, not {prompt!r}")
        out = []
        for i, (orig, inp) in enumerate(sizes):
            m = model.postprocess_masks(low[i : i + 1], tuple(inp), tuple(orig)) > model.mask_threshold
            out.append(SegResult(m[0, 0].cpu().numpy(), float(iou[i, 0]), infos[i]))
    return out


__all__ = ["PROMPTS", "PromptTarget", "prompt_auto", "decode_prompts"]
