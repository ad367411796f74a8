"""`make demo`: the main job on the built-in default — a sketch on paper becomes several
pictures that keep its structure while the prompt changes (the shipped kekong-shapes model),
then every offline detector on a photo that ships with scikit-image."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kekong.detect import list_detectors, run
from kekong.detect.inpaint import control_to_rgba
from kekong.io import save_image
from kekong.models.refs import SHIPPED_DIR
from kekong.provenance.verify import describe, verify
from kekong.train.shapes import Shape


def bundled_photo() -> np.ndarray:
    """The astronaut (Eileen Collins, NASA, public domain) from scikit-image's data."""
    from skimage import data

    return data.astronaut()


DEMO_PROMPTS = ("a red star on a light blue background", "a yellow star on a navy background",
                "a white star on a black background", "a magenta star on a lime background")


def hand_sketch(size: int = 256) -> np.ndarray:
    """A wobbly star drawn in black pen on white paper, as a user would sketch it."""
    import cv2

    rng = np.random.default_rng(7)
    points = Shape("star", (size / 2, size / 2 + 6), size * 0.36, 0.1, "black").polygon()
    points = points + rng.normal(0, size * 0.01, points.shape)
    paper = np.full((size, size, 3), 250, np.uint8)
    cv2.polylines(paper, [np.round(points).astype(np.int32)], True, (20, 20, 20), 3, lineType=cv2.LINE_AA)
    return paper


def run_generation_demo(out: Path) -> Iterator[str]:
    import kekong

    sketch = save_image(hand_sketch(), out / "sketch.png")
    for index, prompt in enumerate(DEMO_PROMPTS):
        start = time.perf_counter()
        [generated] = kekong.generate(prompt=prompt, width=64, height=64, steps=20, cfg_scale=2, seed=index,
                                      controls=[{"module": "scribble_sketch", "image": str(sketch)}])
        path = kekong.save(generated, out / f"generated-{index}.png")
        yield f"  {prompt!r:45s} {time.perf_counter() - start:5.1f} s → {path}"
    yield f"\nkekong verify {out / 'generated-0.png'}:\n" + describe(verify(out / "generated-0.png"))


def run_demo(out: Path) -> Iterator[str]:
    """Generate from a sketch, then write one control map per offline detector into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    if (SHIPPED_DIR / "kekong-shapes" / "model_index.json").is_file():
        yield "generating from a sketch with kekong-shapes (64×64, offline, CPU):"
        yield from run_generation_demo(out)
    else:
        yield "kekong-shapes is not installed in this checkout: `make shipped-model` trains it"
    yield "control maps of the bundled photo:"
    image = bundled_photo()
    out.mkdir(parents=True, exist_ok=True)
    save_image(image, out / "input.png")
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[60:200, 160:340] = 255  # the face: what an inpaint unit would repaint
    for detector in list_detectors():
        if detector.needs_weights:
            yield f"  skip {detector.name:18s} needs weights ({detector.needs_weights})"
            continue
        start = time.perf_counter()
        result = run(detector.name, image, mask=mask if detector.takes_mask else None)
        ms = (time.perf_counter() - start) * 1000
        control = result.image if result.image.dtype == np.uint8 else control_to_rgba(result.image)
        path = save_image(control, out / f"{detector.name}.png")
        if result.data is not None:
            path.with_suffix(".json").write_text(json.dumps(result.data, indent=1))
        yield f"  {detector.name:18s} {ms:7.1f} ms → {path}"
    yield f"results in {out}/"
