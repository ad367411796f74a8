"""Training data, held in memory as uint8 arrays (the datasets kekong trains on are small).

Two layouts:
- the fill layout of the ControlNet tutorial: `prompt.json` with one JSON object per line,
  `{"source": "source/0.png", "target": "target/0.png", "prompt": "…"}` (kekong's shapes
  data adds `"scribble"`, a second condition);
- images + prompts, the condition computed by a kekong detector: a folder of images with a
  same-named `.txt` prompt each, or a `metadata.jsonl` of `{"file_name", "text"}` lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kekong.errors import KekongError
from kekong.io import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class TrainingSet:
    targets: np.ndarray  # (N, H, W, 3) uint8
    prompts: list[str]
    conditions: list[np.ndarray]  # each (N, H, W, 3) uint8; a sample picks one of them at random

    def __len__(self) -> int:
        return len(self.prompts)


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if image.shape[:2] == (size, size):
        return image
    from kekong.detect.resolution import ResizeMode, fit_to_target

    return fit_to_target(image, (size, size), ResizeMode.CROP_AND_RESIZE) if image.dtype == np.uint8 else \
        cv2.resize(image, (size, size))


def load_fill(folder: str | Path, size: int, limit: int | None = None) -> TrainingSet:
    """The fill layout (see module doc). Every image is fitted to size×size."""
    folder = Path(folder)
    index = folder / "prompt.json"
    if not index.is_file():
        raise KekongError(f"{folder}: no prompt.json (the fill layout needs one JSON object per line)")
    targets, prompts, sources, scribbles = [], [], [], []
    for number, line in enumerate(index.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            target, source, prompt = row["target"], row["source"], row["prompt"]
        except (ValueError, KeyError, TypeError):
            raise KekongError(f"{index}:{number}: expected {{\"source\", \"target\", \"prompt\"}}") from None
        targets.append(_fit(load_image(folder / target), size))
        sources.append(_fit(load_image(folder / source), size))
        if "scribble" in row:
            scribbles.append(_fit(load_image(folder / row["scribble"]), size))
        prompts.append(str(prompt))
        if limit and len(prompts) >= limit:
            break
    if not prompts:
        raise KekongError(f"{index}: no samples")
    conditions = [np.stack(sources)] + ([np.stack(scribbles)] if len(scribbles) == len(prompts) else [])
    return TrainingSet(np.stack(targets), prompts, conditions)


def load_captioned(folder: str | Path, size: int, detector: str | None, limit: int | None = None,
                   **params: object) -> TrainingSet:
    """Images with prompts; the condition made by `detector` (e.g. canny) once, at load."""
    folder = Path(folder)
    pairs: list[tuple[Path, str]] = []
    metadata = folder / "metadata.jsonl"
    if metadata.is_file():
        for line in metadata.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                pairs.append((folder / row["file_name"], str(row.get("text", ""))))
    else:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                caption = path.with_suffix(".txt")
                pairs.append((path, caption.read_text().strip() if caption.is_file() else ""))
    if limit:
        pairs = pairs[:limit]
    if not pairs:
        raise KekongError(f"{folder}: no images (expected image files with .txt prompts, or metadata.jsonl)")
    targets = np.stack([_fit(load_image(path), size) for path, _ in pairs])
    conditions = []
    if detector is not None:
        from kekong.detect import run

        conditions.append(np.stack([_fit(run(detector, t, res=size, **params).image, size) for t in targets]))
    return TrainingSet(targets, [prompt for _, prompt in pairs], conditions)


def shapes_set(count: int, size: int, seed: int) -> TrainingSet:
    """The synthetic shapes data generated in memory (same as `kekong data shapes` writes)."""
    from kekong.train.shapes import random_sample

    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, size) for _ in range(count)]
    return TrainingSet(np.stack([s.target for s in samples]), [s.prompt for s in samples],
                       [np.stack([s.outline for s in samples]), np.stack([s.scribble for s in samples])])
