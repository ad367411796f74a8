"""Reading an unmarked image is not much slower than reading a marked one (issue 22, item 5): a
period guess no resize or crop of a kekong image can give (below an eighth of the short side) is
folded on a bounded centre instead of blowing the whole image up. Measured as work, not time, so
the test holds on a loaded machine; `python benchmarks/watermark.py --speed` times it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kekong.provenance import watermark


@pytest.fixture(scope="module")
def photo_1024(astronaut) -> np.ndarray:
    return np.asarray(Image.fromarray(astronaut).resize((1024, 1024), Image.LANCZOS))


def resampled_pixels(monkeypatch, image: np.ndarray) -> tuple[watermark.Reading, list[int]]:
    """The reading, and the area of every resampled image the reader folded."""
    areas: list[int] = []
    real = watermark._detail

    def counting(luma, sigma=2.0):
        areas.append(luma.size)
        return real(luma, sigma)

    monkeypatch.setattr(watermark, "_detail", counting)
    return watermark.read(image), areas[1:]  # the first is the image's own detail, for the period search


def test_no_guess_folds_more_than_the_image_or_the_bound(monkeypatch, photo_1024):
    reading, areas = resampled_pixels(monkeypatch, photo_1024)
    assert not reading.found and len(areas) == watermark.MAX_HYPOTHESES
    assert max(areas) <= photo_1024.shape[0] * photo_1024.shape[1]  # before: 10.5 Mpx for its 40.5-px guess
    assert sum(areas) <= 4 * photo_1024.shape[0] * photo_1024.shape[1]


def test_short_guesses_are_cut_and_possible_periods_are_not(monkeypatch):
    areas: list[int] = []
    real = watermark._detail
    monkeypatch.setattr(watermark, "_detail", lambda luma, sigma=2.0: areas.append(luma.size) or real(luma, sigma))
    luma = np.random.default_rng(0).normal(128, 20, (1024, 1024)).astype(np.float32)
    watermark._fold(luma, 40.5, 40.5)  # below 1024 / 8: only a pasted-in image could have it
    watermark._fold(luma[:512, :512], 64.5, 64.5)  # 512 / 8 = 64: a crop of a marked image can have it
    assert areas[0] <= watermark.MAX_FOLD_PIXELS * 1.01
    assert areas[1] == round(512 * watermark.PERIOD / 64.5) ** 2  # the whole image, resampled


def test_marked_images_still_read(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((1024, 1024), Image.LANCZOS))
    marked = watermark.embed(big, 77)
    half = np.asarray(Image.fromarray(marked).resize((512, 512), Image.LANCZOS))
    for image in (marked, half, marked[100:700, 200:800]):
        reading = watermark.read(image)
        assert reading.found and reading.mark_id == 77
