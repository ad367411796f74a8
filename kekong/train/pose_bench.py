"""`kekong bench pose`: how well a pose ControlNet puts figures where their skeletons are.

On held-out figures (seeded, never in training), and separately on skeletons kekong's openpose
detector found on real photos:
- **mask IoU** between the generated figure — pixels nearer (CIELAB) to one of the prompt's
  figure colours (shirts, lower garments, hair, skin) than to the prompt's background colour —
  and the true figure;
- **limb placement**: the share of the 12 limbs (neck–shoulders, upper and lower arms, neck–hips,
  thighs, shins) whose true centre line lies, at ≥ 80% of its points, within 2 px of a generated
  figure pixel;
- **colour accuracy**: a shirt, a lower garment or the background counts as right when its mean
  CIELAB colour (over the true region, eroded) is within ΔE 25 (CIE76) of the colour the prompt
  names; the mean of the three rates.
The same base without the ControlNet is the chance baseline.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from kekong.colours import delta_e, lab
from kekong.train.figures import HAIR, FigureSample, random_sample
from kekong.train.shapes import colour_of
from kekong.train.skeletons import LIMBS

HELD_OUT_SEED = 1_000_003  # training data uses small seeds
COLOUR_TOLERANCE = 25.0
LIMB_REACH_PX = 2.0
LIMB_SHARE = 0.8  # of a limb's centre-line points that must be reached
BENCH_CFG = 2.0


def figure_region(image: np.ndarray, sample: FigureSample) -> np.ndarray:
    """Generated figure pixels: nearer to a figure colour of the prompt than to its background."""
    pixels = lab(image.astype(np.float32))
    to_background = delta_e(pixels, lab(colour_of(sample.background)))
    colours = {c for f in sample.figures for c in (colour_of(f.shirt), colour_of(f.lower), HAIR[f.hair], f.skin)}
    to_figure = np.min([delta_e(pixels, lab(c)) for c in colours], axis=0)
    return to_figure < to_background


def limbs_placed(region: np.ndarray, sample: FigureSample) -> list[bool]:
    """Per true limb (both ends present): is its centre line covered by the generated figure?"""
    distance = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
    h, w = region.shape
    placed = []
    for figure in sample.figures:
        p = figure.skeleton.points
        for a, b in LIMBS:
            if np.isnan(p[a, 0]) or np.isnan(p[b, 0]):
                continue
            t = np.linspace(0, 1, 9)[:, None]
            line = p[a] * (1 - t) + p[b] * t
            x = np.clip(np.round(line[:, 0] - 0.5).astype(int), 0, w - 1)
            y = np.clip(np.round(line[:, 1] - 0.5).astype(int), 0, h - 1)
            placed.append(float(np.mean(distance[y, x] <= LIMB_REACH_PX)) >= LIMB_SHARE)
    return placed


def _colour_right(pixels: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int]) -> bool | None:
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    inner = inner if inner.any() else mask
    if not inner.any():
        return None  # hidden behind another person
    return bool(delta_e(pixels[inner].mean(axis=0), lab(rgb)) <= COLOUR_TOLERANCE)


def _mean(values: list[bool | None]) -> float:
    """The share of True among the parts that could be scored (NaN when none could)."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else float("nan")


def score(image: np.ndarray, sample: FigureSample) -> dict[str, float]:
    region = figure_region(image, sample)
    iou = float(np.logical_and(region, sample.mask).sum() / max(np.logical_or(region, sample.mask).sum(), 1))
    placed = limbs_placed(region, sample)
    pixels = lab(image.astype(np.float32))
    shirts = [_colour_right(pixels, m, colour_of(f.shirt)) for m, f in zip(sample.shirt_masks, sample.figures,
                                                                             strict=True)]
    lowers = [_colour_right(pixels, m, colour_of(f.lower)) for m, f in zip(sample.lower_masks, sample.figures,
                                                                             strict=True)]
    outside = ~cv2.dilate(sample.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    background = _colour_right(pixels, outside, colour_of(sample.background))
    return {"iou": iou, "limbs": float(np.mean(placed)) if placed else float("nan"),
            "shirt": _mean(shirts), "lower": _mean(lowers), "background": float(background)}


def held_out(count: int, size: int, seed: int = HELD_OUT_SEED) -> list[FigureSample]:
    """Sampled skeletons only (the detected ones are their own set)."""
    rng = np.random.default_rng(seed)
    return [random_sample(rng, size, detected=0.0) for _ in range(count)]


def detected_set(count: int, size: int, seed: int = HELD_OUT_SEED) -> list[FigureSample]:
    """Skeletons kekong's openpose detector finds on the photos, one person each, newly dressed."""
    rng = np.random.default_rng(seed + 1)
    return [random_sample(rng, size, detected=1.0) for _ in range(count)]


def summarise(scores: list[dict[str, float]]) -> dict[str, float]:
    values = {key: float(np.nanmean([s[key] for s in scores])) for key in scores[0]}
    values["colour_accuracy"] = (values["shirt"] + values["lower"] + values["background"]) / 3
    return values


def run_bench(base_ref: str | None, controlnet_ref: str | None, count: int, detected: int = 40, steps: int = 20,
              cfg: float = BENCH_CFG, weight: float = 1.0, baseline: bool = True, seed: int = HELD_OUT_SEED) -> dict:
    """Rows for the ControlNet and, with `baseline`, the base alone, on the held-out and detected sets."""
    from kekong.generation.control import PreparedUnit, to_tensor
    from kekong.generation.pipeline import run_batch
    from kekong.models.load import load_base, load_controlnet
    from kekong.request import ControlUnit, build_request

    base = load_base(base_ref)
    controlnet, ref = load_controlnet(controlnet_ref or base.controlnets.get("openpose", ""))
    size = base.unet.config.sample_size * base.vae_scale
    sets = {"held-out": held_out(count, size, seed), "detected": detected_set(detected, size, seed)}
    rows = []
    for set_name, samples in sets.items():
        if not samples:
            continue
        for name, use_control in (("controlnet", True), ("no controlnet", False))[:2 if baseline else 1]:
            scores, start = [], time.perf_counter()
            for index, sample in enumerate(samples):
                request = build_request(prompt=sample.prompt, width=size, height=size, steps=steps,
                                        cfg_scale=cfg, seed=index)
                unit = ControlUnit(module="none", image="bench", weight=weight)
                units = [PreparedUnit(unit, 0, controlnet, ref.name, ref.name, f"bench-{index}",
                                      to_tensor(sample.control))] if use_control else []
                scores.append(score(run_batch(base, request, units, [index], None, None)[0], sample))
            rows.append({"set": set_name, "name": name, "count": len(samples), **summarise(scores),
                         "ms_per_image": 1000 * (time.perf_counter() - start) / len(samples)})
    return {"base": base.name, "controlnet": ref.name, "seed": seed, "steps": steps, "cfg": cfg, "weight": weight,
            "size": size, "rows": rows}

