"""`make demo`: every offline detector on a photo that ships with scikit-image."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kekong.detect import list_detectors, run
from kekong.detect.inpaint import control_to_rgba
from kekong.io import save_image


def bundled_photo() -> np.ndarray:
    """The astronaut (Eileen Collins, NASA, public domain) from scikit-image's data."""
    from skimage import data

    return data.astronaut()


def run_demo(out: Path) -> Iterator[str]:
    """Write one control map per offline detector (and the pose JSON) into `out`."""
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
    yield f"control maps in {out}/"
