"""kekong's invisible watermark: the id comes back after the edits images meet in the wild, nothing
is found in unmarked images, and the mark stays invisible (PSNR ≥ 38 dB).

A reduced sample of the attack suite; `make bench` (benchmarks/watermark.py) runs the full sweep."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from kekong.provenance import ecc, watermark

MARK = 0x5EED_C0FFEE


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, "JPEG", quality=quality)
    return np.asarray(Image.open(stream).convert("RGB"))


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(width * factor), round(height * factor)), Image.BICUBIC))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


ATTACKS = {
    "none": lambda image: image,
    "JPEG quality 50": lambda image: jpeg(image, 50),
    "resize to 50%": lambda image: resize(image, 0.5),
    "crop 80% at an odd offset": lambda image: image[37:37 + round(0.8 * image.shape[0]),
                                                     91:91 + round(0.8 * image.shape[1])],
    "brightness +20%": lambda image: np.clip(image * 1.2, 0, 255).astype(np.uint8),
    "contrast -20%": lambda image: np.clip((image - image.mean()) * 0.8 + image.mean(), 0, 255).astype(np.uint8),
    "Gaussian noise sigma 5": lambda image: np.clip(
        image + np.random.default_rng(0).normal(0, 5, image.shape), 0, 255).astype(np.uint8),
    "resize 75% then JPEG 75": lambda image: jpeg(resize(image, 0.75), 75),
}


@pytest.fixture(scope="module")
def marked() -> tuple[np.ndarray, np.ndarray]:
    photo = data.astronaut()
    return photo, watermark.embed(photo, MARK)


def test_the_mark_is_invisible(marked):
    photo, stamped = marked
    assert psnr(photo, stamped) >= 38
    assert stamped.shape == photo.shape and stamped.dtype == np.uint8


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_id_survives(marked, attack):
    reading = watermark.read(ATTACKS[attack](marked[1]))
    assert reading.found and reading.mark_id == MARK, f"lost after {attack}: {reading}"


@pytest.mark.parametrize("photo", ["camera", "coffee", "rocket", "immunohistochemistry"])
def test_other_photos_and_sizes(photo):
    image = getattr(data, photo)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = resize(image, 768 / min(image.shape[:2]))  # non-square, above 512
    reading = watermark.read(jpeg(watermark.embed(image, MARK), 50))
    assert reading.found and reading.mark_id == MARK


def test_large_images_use_bigger_chips_and_survive_halving():
    image = resize(data.coffee(), 1024 / 400)
    reading = watermark.read(resize(watermark.embed(image, MARK), 0.5))
    assert reading.found and reading.mark_id == MARK


def test_unmarked_images_are_not_marked():
    """A sample of the false-positive sweep (benchmarks/watermark.py runs ≥ 3,000 images)."""
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    found = []
    for photo in photos:
        for variant in (photo, jpeg(photo, 60), resize(photo, 0.7), photo[13:-29, 7:-41]):
            reading = watermark.read(variant)
            found.append(reading.found)
            assert reading.confidence < 8
    assert not any(found)


def test_a_different_id_reads_as_that_id(marked):
    other = watermark.embed(marked[0], 1)
    assert watermark.read(other).mark_id == 1


def test_ids_must_fit_in_40_bits(marked):
    with pytest.raises(ValueError, match="40 bits"):
        watermark.embed(marked[0], 1 << 40)


def test_error_correction_fixes_weak_and_wrong_soft_bits():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, 64).astype(np.uint8)
    coded = ecc.encode(bits)
    soft = (coded * 2.0 - 1.0) * rng.uniform(0.2, 1.0, coded.size)
    flipped = rng.choice(coded.size, 12, replace=False)  # 12 of 140 coded bits wrong
    soft[flipped] *= -0.5
    assert np.array_equal(ecc.decode(soft), bits)


def test_crc16_matches_the_ccitt_check_value():
    message = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert int("".join(map(str, ecc.crc16(message))), 2) == 0x29B1
