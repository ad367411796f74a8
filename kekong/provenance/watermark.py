"""kekong's invisible watermark: a 40-bit id that survives JPEG, resizing, cropping, brightness and
contrast changes and noise.

Design (every number below was tuned on the attack suite in benchmarks/watermark.py):
- The mark is a tile of 32×32 chips, each chip ±1, repeated over the whole image. A quarter of
  the chips is a fixed pilot pattern (kekong's mark, used to find the tile); the rest carry the
  payload, a rate-1/2 convolutional code of version + id + CRC-16, each coded bit spread over
  several chips scattered across the tile.
- A chip is CHIP×CHIP pixels (4 px per 512 px of the short side, so a resize to half of a big
  image still leaves 4-pixel chips), added to the luminance (R, G and B alike), stronger where the image is
  busy and weaker where it is flat, at an overall strength that keeps PSNR near 40 dB.
- Reading needs no side information. Cropping shifts the tile and resizing changes its period;
  the period is found from the autocorrelation of the image's fine detail (the repeated tile
  makes peaks at multiples of it), the image is resampled to the nominal period, every tile is
  folded onto one (summing the mark, averaging out the picture), and the pilot's circular
  cross-correlation gives the shift. The payload chips are then read as soft values for the
  Viterbi decoder; the CRC and version byte reject everything that is not a kekong mark.
- False positives: each tried (period, shift) hypothesis passes the CRC + version check with
  probability 2^-24; with at most MAX_HYPOTHESES (10) tried per image that is < 1e-6 per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kekong.errors import ParameterError
from kekong.provenance import ecc

VERSION = 1
ID_BITS = 40
CHIPS = 32  # tile side in chips
CHIP = 4  # chip side in pixels at the nominal scale
PERIOD = CHIPS * CHIP
PILOT_FRACTION = 0.25
STRENGTH = 2.95  # RMS luminance change in 0–255 units (≈ 38.7 dB PSNR; the goal is ≥ 38)
SIGMA = 0.8  # detail filter at 4-px chips (tuned: 0.5–1 best of 0.5…4)
MIN_SIDE = 256  # below this the mark is not reliable; verify says so
MAX_HYPOTHESES = 10  # tile periods tried per image
_KEY_SEED = 0x6B656B6F6E67  # "kekong"

_INFO_BITS = 8 + ID_BITS + 16
_CODED_BITS = 2 * (_INFO_BITS + 6)


@dataclass(frozen=True)
class Layout:
    """Where the pilot and each coded bit live in the 32×32 chip tile, and the chip signs."""

    pilot: np.ndarray  # (CHIPS, CHIPS) bool
    signs: np.ndarray  # (CHIPS, CHIPS) ±1 key
    bit_of_chip: np.ndarray  # (CHIPS, CHIPS) int: coded-bit index, −1 for pilot chips


def _layout() -> Layout:
    rng = np.random.default_rng(_KEY_SEED)
    count = CHIPS * CHIPS
    order = rng.permutation(count)
    pilots = int(count * PILOT_FRACTION)
    bit_of_chip = np.full(count, -1)
    data_chips = order[pilots:]
    bit_of_chip[data_chips] = np.arange(data_chips.size) % _CODED_BITS
    signs = rng.choice([-1.0, 1.0], size=count)
    return Layout(pilot=(bit_of_chip == -1).reshape(CHIPS, CHIPS), signs=signs.reshape(CHIPS, CHIPS),
                  bit_of_chip=bit_of_chip.reshape(CHIPS, CHIPS))


LAYOUT = _layout()


def payload_bits(mark_id: int) -> np.ndarray:
    """Version byte + id + CRC-16 over both, as bits (the convolutional code's input)."""
    if not 0 <= mark_id < 1 << ID_BITS:
        raise ParameterError(f"watermark id must fit in {ID_BITS} bits, got {mark_id}")
    body = np.array([int(b) for b in format(VERSION, "08b") + format(mark_id, f"0{ID_BITS}b")], np.uint8)
    return np.concatenate([body, ecc.crc16(body)])


def tile(mark_id: int) -> np.ndarray:
    """The ±1 chip tile (CHIPS×CHIPS) that carries `mark_id`."""
    coded = ecc.encode(payload_bits(mark_id)).astype(np.float64) * 2 - 1
    values = np.where(LAYOUT.pilot, 1.0, coded[np.maximum(LAYOUT.bit_of_chip, 0)])
    return values * LAYOUT.signs


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _chip_pixels(height: int, width: int) -> int:
    """4 px per 512 px of the short side (at least 4): halving a big image still leaves ≥ 4-px chips."""
    return CHIP * max(1, min(height, width) // 512)


def _activity(luma: np.ndarray, chip: int) -> np.ndarray:
    """Local busyness, normalised to mean 1: the mark hides better in texture than in flat sky."""
    detail = np.abs(luma - cv2.GaussianBlur(luma, (0, 0), chip))
    local = cv2.GaussianBlur(detail, (0, 0), 2 * chip) + 2.0
    weight = np.clip(local / local.mean(), 0.4, 2.0)
    return weight / np.sqrt(np.mean(weight**2))


def _add(image: np.ndarray, amplitudes: np.ndarray, chip: int, weight: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    pattern = np.kron(amplitudes, np.ones((chip, chip)))
    reps = (-(-height // pattern.shape[0]), -(-width // pattern.shape[1]))
    delta = np.tile(pattern, reps)[:height, :width].astype(np.float32) * weight
    return np.clip(np.round(image[..., :3].astype(np.float32) + delta[..., None]), 0, 255).astype(np.uint8)


def embed(image: np.ndarray, mark_id: int) -> np.ndarray:
    """`image` (uint8 RGB) with the mark carrying `mark_id` added."""
    height, width = image.shape[:2]
    chip = _chip_pixels(height, width)
    out = _add(image, STRENGTH * tile(mark_id), chip, _activity(_luma(image), chip))
    return np.concatenate([out, image[..., 3:]], axis=-1) if image.shape[-1] == 4 else out


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class Reading:
    found: bool
    mark_id: int | None
    confidence: float  # pilot correlation peak in standard deviations (≥ 6: clear)
    period: tuple[float, float]  # tile period found, pixels (y, x)


def _detail(luma: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Fine detail, whitened: the mark lives there and the picture's smooth content does not."""
    residual = luma - cv2.GaussianBlur(luma, (0, 0), sigma)
    scale = cv2.GaussianBlur(np.abs(residual), (0, 0), 8.0) + 1.0
    return residual / scale


def _periods(detail: np.ndarray, low: float, high: float, count: int) -> list[float]:
    """Candidate tile periods: where the autocorrelation of the detail peaks at the period and its
    multiples along both axes. The biased (not overlap-normalised) autocorrelation is used on
    purpose: it falls with the lag, so the true period outscores its own multiples."""
    height, width = detail.shape
    padded = np.zeros((cv2.getOptimalDFTSize(2 * height), cv2.getOptimalDFTSize(2 * width)), np.float32)
    padded[:height, :width] = detail - detail.mean()  # zero-padded: the linear, not circular, correlation
    spectrum = cv2.dft(padded, flags=cv2.DFT_COMPLEX_OUTPUT)  # float32 DFT: half numpy's time at 1024²
    acf = cv2.idft(cv2.mulSpectrums(spectrum, spectrum, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT)
    size = min(detail.shape)
    lags = np.arange(size)
    # the tile's lattice: peaks at (P, 0), (0, P), (P, P) and (P, -P) and their multiples
    lines = [acf[lags, 0], acf[0, lags], acf[lags, lags], acf[lags, -lags]]
    profiles = []
    for line in lines:
        line = line / (acf[0, 0] + 1e-12)
        # keep only sharp peaks: the picture's own correlation changes slowly with the lag
        ring = np.ones(25)
        ring[9:16] = 0
        profiles.append(line - np.convolve(line, ring / ring.sum(), mode="same"))
    grid = np.arange(low, high, 0.25)
    multiples = np.arange(1, 4)[:, None] * grid[None, :]
    total, used = np.zeros_like(grid), np.zeros_like(grid)
    for profile in profiles:
        inside = multiples < size - 1
        total += np.where(inside, np.interp(multiples, lags, profile), 0).sum(0)
        used += inside.sum(0)
    score = total / np.maximum(used, 1)
    found: list[float] = []
    for index in np.argsort(-score):
        if len(found) == count:
            break
        if 0 < index < grid.size - 1 and score[index] >= score[index - 1] and score[index] >= score[index + 1] \
                and all(abs(grid[index] - f) > 2 for f in found):
            left, mid, right = score[index - 1: index + 2]
            bend = left - 2 * mid + right
            found.append(float(grid[index] + (0.125 * (left - right) / bend if bend < 0 else 0.0)))
    return found


MAX_FOLD_PIXELS = 1 << 18  # resampled area folded for a period guess no resize or crop can give (16 tiles)


def _fold(luma: np.ndarray, period_y: float, period_x: float) -> np.ndarray:
    """Resample so the tile is PERIOD pixels, then sum the detail of all tiles onto one.

    A kekong tile is more than an eighth of the image's short side (chips are 4 px per whole
    512 px of it, and a resize or crop keeps or raises that share), so a shorter period guess is
    a real mark only when its image was pasted into a larger one. Such a guess would blow the image
    up (40 px → 128 is 10× the pixels, most of the time an unmarked image takes), so only the
    centre is folded then, MAX_FOLD_PIXELS after resampling: what keeps reading an unmarked image
    within twice the time of a marked one (benchmarks/watermark.py, `--speed`)."""
    height, width = luma.shape
    if max(period_y, period_x) < min(height, width) / 8:
        grow = (PERIOD / period_y) * (PERIOD / period_x)
        keep = min(1.0, float(np.sqrt(MAX_FOLD_PIXELS / (height * width * grow))))
        cut_h, cut_w = max(int(height * keep), 1), max(int(width * keep), 1)
        top, left = (height - cut_h) // 2, (width - cut_w) // 2
        luma = luma[top:top + cut_h, left:left + cut_w]
        height, width = luma.shape
    new_h, new_w = round(height * PERIOD / period_y), round(width * PERIOD / period_x)
    resampled = _detail(cv2.resize(luma, (new_w, new_h), interpolation=cv2.INTER_CUBIC), SIGMA * CHIP / 4)
    padded_h, padded_w = -(-new_h // PERIOD) * PERIOD, -(-new_w // PERIOD) * PERIOD
    canvas = np.zeros((padded_h, padded_w), np.float32)
    canvas[:new_h, :new_w] = resampled
    return canvas.reshape(padded_h // PERIOD, PERIOD, padded_w // PERIOD, PERIOD).sum(axis=(0, 2))


_PILOT_PIXELS = np.kron(np.where(LAYOUT.pilot, LAYOUT.signs, 0.0), np.ones((CHIP, CHIP)))


def _read_folded(folded: np.ndarray) -> tuple[int | None, float]:
    """(id or None, pilot peak in standard deviations) from one folded tile."""
    correlation = np.fft.irfft2(np.fft.rfft2(folded) * np.conj(np.fft.rfft2(_PILOT_PIXELS)), s=folded.shape)
    peak = np.unravel_index(np.argmax(correlation), correlation.shape)
    z = float((correlation[peak] - correlation.mean()) / (correlation.std() + 1e-12))
    aligned = np.roll(folded, (-peak[0], -peak[1]), axis=(0, 1))
    chips = aligned.reshape(CHIPS, CHIP, CHIPS, CHIP).mean(axis=(1, 3)) * LAYOUT.signs
    data = ~LAYOUT.pilot
    soft = np.bincount(LAYOUT.bit_of_chip[data], weights=chips[data], minlength=_CODED_BITS)
    noise = np.std(chips[data]) * np.sqrt(np.bincount(LAYOUT.bit_of_chip[data], minlength=_CODED_BITS)) + 1e-12
    bits = ecc.decode(soft / noise)
    body, check = bits[:-16], bits[-16:]
    version = int("".join(map(str, body[:8])), 2)
    if version != VERSION or not np.array_equal(ecc.crc16(body), check):
        return None, z
    return int("".join(map(str, body[8:])), 2), z


def read(image: np.ndarray) -> Reading:
    """Look for a kekong mark in `image` (uint8 RGB, any size ≥ 64 px)."""
    luma = _luma(image)
    detail = _detail(luma, SIGMA)
    height, width = detail.shape
    low, high = 0.3 * PERIOD, 0.7 * min(height, width)
    best = Reading(False, None, 0.0, (0.0, 0.0))
    # first the period an unresized image of this size has (strong textures can hide its
    # autocorrelation peak), then the autocorrelation's candidates, each followed by its half
    # (in dense texture the peak at twice the period can outscore the period itself)
    candidates = [float(_chip_pixels(height, width) * CHIPS)]
    for period in _periods(detail, low, high, MAX_HYPOTHESES):
        for option in (period, period / 2):
            if option >= low and all(abs(option - c) > 1 for c in candidates):
                candidates.append(option)
    for period in candidates[:MAX_HYPOTHESES]:
        mark_id, z = _read_folded(_fold(luma, period, period))
        if mark_id is not None:
            return Reading(True, mark_id, z, (period, period))
        if z > best.confidence:
            best = Reading(False, None, z, (period, period))
    return best
