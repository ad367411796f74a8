"""`kekong bench control`: how well a shapes ControlNet follows its condition and its prompt.

On held-out conditions (seeded, never in training): shape IoU between the generated image's
shape region — pixels nearer (CIELAB) to a prompt shape colour than to the prompt background
colour — and the condition's filled shape; colour accuracy: a shape (or the background) counts
as right when its mean CIELAB colour is within ΔE 25 (CIE76) of the colour its prompt names.
The same base without the ControlNet is the chance baseline.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from kekong.colours import delta_e, lab
from kekong.train.shapes import colour_of, random_sample

HELD_OUT_SEED = 1_000_003  # training data uses small seeds; these conditions are never trained on
VALIDATION_SEED = 2_000_029  # a second unseen set, for choosing sampling settings without the bench's
BENCH_CFG = 2.0  # kekong-shapes' best on the validation set (BENCHMARKS.md); the CLI's default too
COLOUR_TOLERANCE = 25.0


def score(image: np.ndarray, sample) -> dict[str, float]:
    pixels = lab(image.astype(np.float32))
    background = lab(colour_of(sample.background))
    to_background = delta_e(pixels, background)
    to_shape = np.min([delta_e(pixels, lab(colour_of(s.colour))) for s in sample.shapes], axis=0)
    region = to_shape < to_background
    union = np.logical_or(region, sample.filled).sum()
    kernel = np.ones((3, 3), np.uint8)
    shape_hits = []
    for shape, mask in zip(sample.shapes, sample.masks, strict=True):
        inner = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        inner = inner if inner.any() else mask
        shape_hits.append(delta_e(pixels[inner].mean(axis=0), lab(colour_of(shape.colour))) <= COLOUR_TOLERANCE)
    outside = ~cv2.dilate(sample.filled.astype(np.uint8), kernel).astype(bool)
    background_hit = delta_e(pixels[outside].mean(axis=0), background) <= COLOUR_TOLERANCE
    return {"iou": float(np.logical_and(region, sample.filled).sum() / union),
            "shape_colour": float(np.mean(shape_hits)), "background_colour": float(background_hit)}


def run_bench(base_ref: str | None, controlnet_ref: str | None, count: int, steps: int = 20,
              cfg: float = BENCH_CFG, weight: float = 1.0, baseline: bool = True, seed: int = HELD_OUT_SEED) -> dict:
    """Rows for the ControlNet at `weight` and, with `baseline`, for the base alone (chance), on
    `count` conditions drawn from `seed`."""
    from kekong.generation.control import PreparedUnit, to_tensor
    from kekong.generation.pipeline import run_batch
    from kekong.models.load import load_base, load_controlnet
    from kekong.request import ControlUnit, build_request

    base = load_base(base_ref)
    controlnet, ref = load_controlnet(controlnet_ref or base.controlnets.get("none", ""))
    size = base.unet.config.sample_size * base.vae_scale
    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, size) for _ in range(count)]
    rows = []
    for name, use_control in (("controlnet", True), ("no controlnet", False))[:2 if baseline else 1]:
        scores, start = [], time.perf_counter()
        for index, sample in enumerate(samples):
            request = build_request(prompt=sample.prompt, width=size, height=size, steps=steps, cfg_scale=cfg,
                                    seed=index)
            unit = ControlUnit(module="none", image="bench", weight=weight)
            units = [PreparedUnit(unit, 0, controlnet, ref.name, ref.name, f"bench-{index}",
                                  to_tensor(sample.outline))] if use_control else []
            image = run_batch(base, request, units, [index], None, None)[0]
            scores.append(score(image, sample))
        elapsed = time.perf_counter() - start
        shape = float(np.mean([s["shape_colour"] for s in scores]))
        background = float(np.mean([s["background_colour"] for s in scores]))
        rows.append({"name": name, "iou": float(np.mean([s["iou"] for s in scores])),
                     "shape_colour": shape, "background_colour": background,
                     "colour_accuracy": (shape + background) / 2, "ms_per_image": 1000 * elapsed / count})
    return {"base": base.name, "controlnet": ref.name, "count": count, "seed": seed, "steps": steps, "cfg": cfg,
            "weight": weight, "size": size, "rows": rows}
