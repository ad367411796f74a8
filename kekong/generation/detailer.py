"""The detailer (A1111's ADetailer): after an image is generated, find its faces or hands, repaint each
region (inpaint, only masked: cropped with padding, scaled to the model's native size, feathered mask)
and paste it back. Everything outside the feathered masks stays as generated.

Regions: mediapipe face detection (short or full range) boxes, or mediapipe hands' landmark boxes
grown by HAND_MARGIN; filtered by size ratio, the k largest or most confident kept, sorted left to
right, each mask moved (x/y offset), dilated or eroded, optionally merged (and inverted), as ADetailer
does. Detections are repainted one after another, each on the result of the one before; the n-th pass
(0-based) uses the image's seed + n, as ADetailer's tabs do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from kekong.detail_spec import DetailSpec
from kekong.errors import ParameterError
from kekong.io import encode_image
from kekong.prompt.syntax import extract_loras
from kekong.request import GenerationRequest, InpaintFill

log = logging.getLogger(__name__)
HAND_MARGIN = 0.25  # a hand's landmark box grown by this fraction of its size each way (landmarks are joints)
_SEP = re.compile(r"\s*\[SEP\]\s*")


@dataclass
class Region:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    confidence: float

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


# -- finding regions ----------------------------------------------------------------------------------


def find_regions(image: np.ndarray, spec: DetailSpec) -> list[Region]:
    """Faces or hands in an RGB image, at or above the confidence threshold."""
    return [r for r in _detect(image, spec) if r.confidence >= spec.ad_confidence]


def _detect(image: np.ndarray, spec: DetailSpec) -> list[Region]:
    h, w = image.shape[:2]
    if spec.finds == "face":
        result = _face_detector(1 if spec.ad_model == "mediapipe_face_full" else 0, spec.ad_confidence).process(image)
        regions = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            x0, y0 = box.xmin * w, box.ymin * h
            regions.append(Region((x0, y0, x0 + box.width * w, y0 + box.height * h), float(detection.score[0])))
        return regions
    result = _hand_detector(spec.ad_confidence).process(image)
    regions = []
    for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or [], strict=False):
        points = np.array([(lm.x * w, lm.y * h) for lm in landmarks.landmark])
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        grow = HAND_MARGIN * max(x1 - x0, y1 - y0)
        regions.append(Region((x0 - grow, y0 - grow, x1 + grow, y1 + grow), float(handedness.classification[0].score)))
    return regions


_DETECTORS: dict[tuple, object] = {}


def _face_detector(selection: int, confidence: float):
    from kekong.detect.mp_models import Solution

    key = ("face", selection, round(confidence, 3))
    if key not in _DETECTORS:
        import mediapipe as mp

        _DETECTORS[key] = Solution(lambda: mp.solutions.face_detection.FaceDetection(
            model_selection=selection, min_detection_confidence=confidence))
    return _DETECTORS[key]


def _hand_detector(confidence: float):
    from kekong.detect.mp_models import Solution

    key = ("hand", round(confidence, 3))
    if key not in _DETECTORS:
        import mediapipe as mp

        _DETECTORS[key] = Solution(lambda: mp.solutions.hands.Hands(
            static_image_mode=True, max_num_hands=8, model_complexity=1, min_detection_confidence=confidence))
    return _DETECTORS[key]


# -- masks, as ADetailer makes them ---------------------------------------------------------------------


def select(regions: list[Region], spec: DetailSpec, shape: tuple[int, int]) -> list[Region]:
    """Size-ratio filter, the k largest / most confident, then left to right."""
    area = shape[0] * shape[1]
    kept = [r for r in regions if spec.ad_mask_min_ratio <= r.area / area <= spec.ad_mask_max_ratio]
    if spec.ad_mask_k:
        key = (lambda r: r.area) if spec.ad_mask_filter_method == "Area" else (lambda r: r.confidence)
        kept = sorted(kept, key=key, reverse=True)[: spec.ad_mask_k]
    return sorted(kept, key=lambda r: r.box[0])


def masks_for(regions: list[Region], spec: DetailSpec, shape: tuple[int, int]) -> list[np.ndarray]:
    """One uint8 mask (255 = repaint) per region: the box, offset, dilated/eroded, merged/inverted."""
    h, w = shape
    masks = []
    for region in regions:
        mask = np.zeros((h, w), np.uint8)
        x0, y0, x1, y1 = (round(v) for v in region.box)
        x0, y0 = x0 + spec.ad_x_offset, y0 - spec.ad_y_offset  # y offset is upwards, as in ADetailer
        x1, y1 = x1 + spec.ad_x_offset, y1 - spec.ad_y_offset
        mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 255
        value = spec.ad_dilate_erode
        if value:
            kernel = np.ones((abs(value), abs(value)), np.uint8)
            mask = cv2.dilate(mask, kernel) if value > 0 else cv2.erode(mask, kernel)
        if mask.any():
            masks.append(mask)
    if masks and spec.ad_mask_merge_invert != "None":
        merged = np.maximum.reduce(masks)
        masks = [255 - merged if spec.ad_mask_merge_invert == "Merge and Invert" else merged]
    return [m for m in masks if m.any()]


def prompts(text: str, default: str) -> list[str]:
    """ADetailer's `[SEP]`-separated prompts: empty ones take the image's, [PROMPT] is replaced by it."""
    parts = _SEP.split(text)
    return [p.replace("[PROMPT]", default) if p else default for p in parts]


# -- repainting -------------------------------------------------------------------------------------------

Run = Callable[[GenerationRequest], list]  # generation.pipeline.generate, passed in (no import cycle)


def _data_uri(image: np.ndarray) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(encode_image(image, "PNG", compress_level=1)).decode()


def pass_request(request: GenerationRequest, spec: DetailSpec, n: int, seed: int, image: np.ndarray,
                 mask: np.ndarray, prompt: str, negative: str) -> GenerationRequest:
    """The inpaint request that repaints one region: the image's settings, the detailer's mask and
    strength, no hires pass, one image at the native size (or ADetailer's own). Its one control unit, when
    the pass names one (ad_controlnet_module / _model), reads the init image, so its detector runs on the
    only-masked crop, as ADetailer's unit does."""
    size = (spec.ad_inpaint_width, spec.ad_inpaint_height) if spec.ad_use_inpaint_width_height else (None, None)
    fields = request.model_dump(exclude={"detail", "controls", "enable_hr", "batch_size", "batch_count",
                                         "init_image", "mask", "width", "height", "repose"})
    fields["loras"] = [*fields["loras"], *({"path": name, "weight": weight}
                                           for name, weight in extract_loras(request.prompt)[1])]  # <lora:…> tags
    fields.update(
        prompt=prompt, negative_prompt=negative, seed=(seed + n) % 2**32, init_image=_data_uri(image),
        mask=_data_uri(mask), mask_invert=False, mask_blur=spec.ad_mask_blur,
        inpaint_only_masked=spec.ad_inpaint_only_masked, only_masked_padding=spec.ad_inpaint_only_masked_padding,
        denoising_strength=spec.ad_denoising_strength, inpainting_fill=InpaintFill.ORIGINAL, resize_mode=0,
        width=size[0], height=size[1], steps=spec.ad_steps if spec.ad_use_steps else request.steps,
        cfg_scale=spec.ad_cfg_scale if spec.ad_use_cfg_scale else request.cfg_scale, controls=unit_for(spec))
    return GenerationRequest(**fields)


def unit_for(spec: DetailSpec) -> list[dict]:
    """The pass's control unit (none, or one on the crop)."""
    if spec.unit_module is None:
        return []
    model = None if spec.ad_controlnet_model == "None" else spec.ad_controlnet_model
    return [{"module": spec.unit_module, "model": model, "weight": spec.ad_controlnet_weight,
             "start": spec.ad_controlnet_guidance_start, "end": spec.ad_controlnet_guidance_end}]


def detail_image(image: np.ndarray, request: GenerationRequest, seed: int, prompt: str, negative: str,
                 run: Run) -> tuple[np.ndarray, list[int]]:
    """The image with every detailer pass of the request applied; (image, regions repainted per pass)."""
    counts = []
    for n, spec in enumerate(request.detail):
        found = select(find_regions(image, spec), spec, image.shape[:2])
        masks = masks_for(found, spec, image.shape[:2])
        positive, negatives = prompts(spec.ad_prompt, prompt), prompts(spec.ad_negative_prompt, negative)
        done = 0
        for j, mask in enumerate(masks):
            text = positive[min(j, len(positive) - 1)]
            if text.strip() == "[SKIP]":
                continue
            sub = pass_request(request, spec, n, seed, image, mask, text, negatives[min(j, len(negatives) - 1)])
            image = run(sub)[0].image
            done += 1
        if not masks:
            log.info("detailer %s: nothing found", spec.ad_model)
        counts.append(done)
    return image, counts


def check(request: GenerationRequest) -> None:
    """Refuse, before anything runs, a detailer pass that would run no step."""
    for n, spec in enumerate(request.detail):
        steps = spec.ad_steps if spec.ad_use_steps else request.steps
        if int(steps * spec.ad_denoising_strength) < 1:
            raise ParameterError(f"detail pass {n + 1} ({spec.ad_model}): denoising strength "
                                 f"{spec.ad_denoising_strength} with {steps} steps leaves no step to run")


def detail_all(results: list, run: Run) -> list:
    """Every generated image of a request through its detailer passes (in place; the list returned)."""
    for generated in results:
        generated.image, _ = detail_image(generated.image, generated.request, generated.seed, generated.prompt_used,
                                          generated.negative_used, run)
    return results
