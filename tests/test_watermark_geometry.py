"""The watermark survives the cheapest geometric evasions (issue 22, item 2): a mirror image, a
slight turn, a non-uniform stretch, each also followed by JPEG 75; and unmarked images, mirrored
or turned, still read as unmarked. benchmarks/watermark.py runs the full set on more images."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from kekong.provenance import ecc, watermark, watermark_lattice

MARK = 0x5EED_C0FFEE


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, "JPEG", quality=quality)
    return np.asarray(Image.open(stream).convert("RGB"))


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turned counter-clockwise about the centre, same size, black corners (PIL's rotate)."""
    return np.asarray(Image.fromarray(image).rotate(degrees, Image.BICUBIC))


def straighten(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turned, then cropped to the largest centred rectangle without black corners (an editor's
    straighten tool)."""
    height, width = image.shape[:2]
    turned = rotate(image, degrees)
    t = abs(np.tan(np.radians(degrees)))
    margin_y, margin_x = int(np.ceil((width / 2) * t + 1)), int(np.ceil((height / 2) * t + 1))
    return turned[margin_y:height - margin_y, margin_x:width - margin_x]


def stretch(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (round(width * factor), height), interpolation=cv2.INTER_CUBIC)


def mirror(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


GEOMETRIES = {
    "horizontal flip": mirror,
    "vertical flip": lambda image: np.ascontiguousarray(image[::-1]),
    "rotate 2°": lambda image: rotate(image, 2),
    "rotate -2°": lambda image: rotate(image, -2),
    "rotate 5°": lambda image: rotate(image, 5),
    "rotate -5°": lambda image: rotate(image, -5),
    "straighten 3.5° (turn and crop)": lambda image: straighten(image, 3.5),
    "aspect 1.1 (wider)": lambda image: stretch(image, 1.1),
    "aspect 1/1.1 (narrower)": lambda image: stretch(image, 1 / 1.1),
    "flip and rotate 2°": lambda image: rotate(mirror(image), 2),
}


@pytest.fixture(scope="module")
def marked() -> np.ndarray:
    return watermark.embed(data.astronaut(), MARK)


@pytest.mark.parametrize("then_jpeg", [False, True], ids=["alone", "then JPEG 75"])
@pytest.mark.parametrize("edit", GEOMETRIES)
def test_the_exact_id_survives(marked, edit, then_jpeg):
    image = GEOMETRIES[edit](marked)
    if then_jpeg:
        image = jpeg(image, 75)
    reading = watermark.read(image)
    assert reading.found and reading.mark_id == MARK, f"lost after {edit}: {reading}"


def test_a_wide_photo_turned_and_stretched():
    photo = data.coffee()  # 400×600: not square, below 512
    stamped = watermark.embed(photo, 12345)
    for image in (jpeg(rotate(stamped, -4), 75), jpeg(stretch(stamped, 1.1), 75), mirror(stamped)):
        reading = watermark.read(image)
        assert reading.found and reading.mark_id == 12345


def test_a_large_image_turned():
    """At 1024 px the chips are 8 px; the turned lattice is folded from the nominal-scale detail."""
    big = np.asarray(Image.fromarray(data.astronaut()).resize((1024, 1024), Image.LANCZOS))
    reading = watermark.read(jpeg(rotate(watermark.embed(big, 99), 3), 75))
    assert reading.found and reading.mark_id == 99


def test_the_lattice_search_finds_the_turn(marked):
    """The autocorrelation names the angle (to a step) that the marked image was turned by."""
    turned = rotate(marked, 3.1)
    detail = watermark._detail(watermark._luma(turned), watermark.SIGMA)
    search = watermark_lattice.LatticeSearch(watermark_lattice.autocorrelation(detail), detail.shape, 57, 358)
    best = search.near(128.0, 1, 0)[0]
    assert abs(best.angle - 3.1) <= watermark_lattice.ANGLE_STEP and best.aspect == 1.0
    assert best.period == 128
    stretched = stretch(marked, 1.1)  # the tile is 140.8 px wide, 128 high
    detail = watermark._detail(watermark._luma(stretched), watermark.SIGMA)
    search = watermark_lattice.LatticeSearch(watermark_lattice.autocorrelation(detail), detail.shape, 57, 358)
    best = search.near(128.0, 0, 1)[0]
    assert best.angle == 0 and abs(best.aspect - 1 / 1.1) < 0.01 and abs(best.period - 140.8) < 1.5


def unmarked_images() -> dict[str, np.ndarray]:
    size = 512
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    grey = {
        "flat grey": np.full((size, size), 128.0),
        "gradient": xx / size * 255,
        "grating, period 128": 128 + 60 * np.sin(2 * np.pi * xx / 128) * np.sin(2 * np.pi * yy / 128),
        "checkerboard, 64 px squares": ((xx // 64 + yy // 64) % 2) * 200 + 28,
        "random 4-px chips, 128-px tile": 128 + np.tile(np.kron(np.random.default_rng(1).choice([-20, 20], (32, 32)),
                                                                np.ones((4, 4))), (4, 4)),
    }
    images = {name: np.repeat(np.clip(v, 0, 255).astype(np.uint8)[..., None], 3, axis=-1) for name, v in grey.items()}
    for name in ("astronaut", "coffee", "brick", "grass"):
        photo = getattr(data, name)()
        images[name] = np.stack([photo] * 3, axis=-1) if photo.ndim == 2 else photo
    return images


@pytest.mark.parametrize("name", list(unmarked_images()))
def test_unmarked_images_stay_unmarked_when_mirrored_or_turned(name):
    image = unmarked_images()[name]
    for variant in (image, mirror(image), rotate(image, 2), rotate(image, -5), jpeg(stretch(image, 1.1), 75),
                    rotate(mirror(image), 3)):
        reading = watermark.read(variant)
        assert not reading.found and reading.mark_id is None, f"{name}: {reading}"


def test_only_the_best_orientation_is_decoded(monkeypatch, marked):
    """Trying eight orientations of a fold costs one CRC hypothesis, not eight; and a tile whose
    pilot is below the bar is not decoded at all."""
    decoded: list[float] = []
    real = watermark._decode

    def counting(folded, shift, clean=-1.0):
        decoded.append(1.0)
        return real(folded, shift, clean)

    monkeypatch.setattr(watermark, "_decode", counting)
    folded = watermark._fold(watermark._luma(mirror(marked)), 128, 128)
    assert watermark._decode_oriented(folded, skip_plain=True) is not None and len(decoded) == 1
    noise = np.random.default_rng(0).normal(0, 1, (watermark.PERIOD, watermark.PERIOD))
    assert watermark._decode_oriented(noise, skip_plain=False) is None and len(decoded) == 1


def test_viterbi_finds_the_most_likely_codeword():
    """The vectorised decoder against brute force over every 8-bit message (256 codewords)."""
    rng = np.random.default_rng(4)
    messages = [np.array([(m >> (7 - i)) & 1 for i in range(8)], np.uint8) for m in range(256)]
    codewords = np.stack([ecc.encode(m) * 2.0 - 1 for m in messages])
    for _ in range(40):
        soft = codewords[rng.integers(256)] * 0.5 + rng.normal(0, 1, codewords.shape[1])
        best = messages[int(np.argmax(codewords @ soft))]
        assert np.array_equal(ecc.decode(soft), best)
