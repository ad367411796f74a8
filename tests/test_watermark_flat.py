"""Flat colour and gradients (issue 22, item 3): no visible chip pattern under a levels stretch.

The measure: on flat colour and smooth gradients a chip changes no channel by more than 2 levels
(watermark.FLAT_MAX; it was ±3, which showed as blocks once the levels were stretched), and the
change is grain, not a grid: its strongest spatial frequency holds ≤ 2.5% of its energy (a 4-px
chip checkerboard puts 36% in one, a grating 78%). Textured photos are marked as before, and the
exact id still survives JPEG, resizes, noise, screenshots, flips and slight turns."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kekong.provenance import watermark

MARK = 0x5EED_C0FFEE


def flat(size: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    return np.full((*size, 3), colour, np.uint8)


def gradient(size: tuple[int, int], colour: bool = False) -> np.ndarray:
    y, x = np.mgrid[: size[0], : size[1]].astype(np.float32)
    x, y = x / size[1], y / size[0]
    channels = [255 * x, 255 * y, 255 * (1 - x)] if colour else [20 + 200 * x] * 3
    return np.stack(channels, axis=-1).astype(np.uint8)


IMAGES = {
    "grey 128, 512²": flat((512, 512), (128, 128, 128)),
    "dark grey 40, 768×512": flat((512, 768), (40, 40, 40)),
    "teal, 1024²": flat((1024, 1024), (30, 140, 150)),
    "skin tone, 300×451": flat((300, 451), (230, 190, 160)),
    "grey ramp, 512²": gradient((512, 512)),
    "colour ramp, 768×512": gradient((512, 768), colour=True),
}


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, "JPEG", quality=quality)
    return np.asarray(Image.open(stream).convert("RGB"))


def rescale(image: np.ndarray, factor: float, method=Image.BICUBIC) -> np.ndarray:
    height, width = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(width * factor), round(height * factor)), method))


def strongest_line_share(change: np.ndarray) -> float:
    power = np.abs(np.fft.rfft2(change - change.mean())) ** 2
    power[0, 0] = 0
    return float(power.max() / power.sum())


@pytest.mark.parametrize("name", list(IMAGES))
def test_no_chip_changes_flat_colour_or_a_gradient_by_more_than_2_levels(name):
    image = IMAGES[name]
    change = watermark.embed(image, MARK).astype(np.int16) - image
    assert np.abs(change).max() <= watermark.FLAT_MAX == 2
    assert 10 * np.log10(255**2 / np.mean(change.astype(float) ** 2)) >= 38
    # a levels stretch shows what changed: grain spread over every frequency, no grid or grating
    assert strongest_line_share(change.astype(float).mean(axis=-1)) <= 0.025


@pytest.mark.parametrize("mark", [1, 0xFF_FFFF_FFFF, 0x12_3456_789A])
def test_the_change_on_flat_grey_is_grain_for_any_id(mark):
    image = IMAGES["grey 128, 512²"]
    change = watermark.embed(image, mark).astype(float) - image
    assert strongest_line_share(change.mean(axis=-1)) <= 0.025
    # the same measure tells a grid apart: a 4-px checkerboard of ±2 fails it
    checker = 2.0 * np.kron((np.indices((128, 128)).sum(axis=0) % 2) * 2 - 1, np.ones((4, 4)))
    assert strongest_line_share(checker) > 0.3


ATTACKS = {
    "JPEG 75": lambda image: jpeg(image, 75),
    "JPEG 50": lambda image: jpeg(image, 50),
    "resize 50%": lambda image: rescale(image, 0.5),
    "noise σ 5": lambda image: (
        np.clip(image + np.random.default_rng(5).normal(0, 5, image.shape), 0, 255).round().astype(np.uint8)
    ),
    "screenshot at 125%, JPEG 85": lambda image: jpeg(rescale(image, 1.25, Image.BILINEAR), 85),
    "flip": lambda image: np.ascontiguousarray(image[:, ::-1]),
    "rotate 2°": lambda image: np.asarray(
        Image.fromarray(image).rotate(2, Image.BICUBIC, fillcolor=tuple(int(v) for v in image[0, 0]))
    ),
}


@pytest.fixture(scope="module")
def marked() -> dict[str, np.ndarray]:
    return {name: watermark.embed(IMAGES[name], MARK) for name in ("grey 128, 512²", "colour ramp, 768×512")}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("name", ["grey 128, 512²", "colour ramp, 768×512"])
def test_the_gentler_mark_on_flat_colour_still_survives(marked, name, attack):
    reading = watermark.read(ATTACKS[attack](marked[name]))
    assert reading.found and reading.mark_id == MARK, (name, attack, reading)


def test_flat_parts_of_a_busy_image_are_bounded_and_the_texture_is_not():
    rng = np.random.default_rng(0)
    image = flat((512, 512), (120, 120, 120))
    image[:, 256:] = np.clip(120 + rng.normal(0, 25, (512, 256, 1)), 0, 255).astype(np.uint8)
    change = np.abs(watermark.embed(image, MARK).astype(np.int16) - image)
    assert change[:, :200].max() <= 2 < change[:, 300:].max()
