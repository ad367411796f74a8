"""kekong's invisible watermark: a 40-bit id that survives JPEG, resizing, cropping, brightness and
contrast changes and noise.

Design (every number below was tuned on the attack suite in benchmarks/watermark.py):
- The mark is a tile of 32×32 chips, each chip ±1, repeated over the whole image. A quarter of
  the chips is a fixed pilot pattern (kekong's mark, used to find the tile); the rest carry the
  payload, a rate-1/2 convolutional code of version + id + CRC-16, each coded bit spread over
  several chips scattered across the tile.
- A chip is CHIP×CHIP pixels (4 px per 512 px of the short side, so a resize to half of a big
  image still leaves 4-pixel chips), added to the luminance (R, G and B alike), stronger where the image is
  busy and weaker where it is flat, at an overall strength that keeps PSNR near 38.7 dB. On flat
  colour and smooth gradients no chip changes a pixel by more than FLAT_MAX (2) levels, so a levels
  stretch shows grain, not blocks (tests/test_watermark_flat.py). On white or
  black only one sign of chip lands (the other clips): there the energy follows what the reader keeps
  (open white rather than the edges beside a line, which its whitening discounts) and the strength is
  raised until the change that lands has the planned RMS — line art and white backgrounds read as
  photos do (tests/test_watermark_line_art.py).
- Reading needs no side information. Cropping shifts the tile and resizing changes its period;
  the period is found from the autocorrelation of the image's fine detail (the repeated tile
  makes peaks at multiples of it), the image is resampled to the nominal period, every tile is
  folded onto one (summing the mark, averaging out the picture), and the pilot's circular
  cross-correlation gives the shift. The payload chips are then read as soft values for the
  Viterbi decoder; the CRC and version byte reject everything that is not a kekong mark.
- Geometry: a flip or a quarter turn leaves the lattice as it was, so each fold is also tried in
  its eight orientations (one batched FFT; only the orientation with the highest pilot peak is
  decoded). A slight turn (±6°) or stretch (aspect ±14%) changes the lattice: the autocorrelation
  is scored along turned and stretched lattice lines (watermark_lattice), the few best shapes near
  the nominal period are folded from the already resampled detail, and one that stands out at
  another period (a turn and a resize) with a full resample. These stages run only after the
  plain reading fails, so a mark read plainly costs nothing more.
- False positives: each decoded hypothesis passes the CRC + version check with probability 2^-24.
  The plain reading decodes at most MAX_HYPOTHESES (10); the mirrored/turned folds and the
  turned/stretched lattices are decoded only when their pilot peak reaches PILOT_BAR (7), at most
  10 + 4 near + 2 far more. With ≤ 26 decodes per image the design rate is < 1.5e-6 per image.
  A pilot peak is not small on unmarked images (the best of ten guesses; periodic textures fold
  onto themselves as a mark does and reach 11): what a reading's peak means is measured, not
  assumed — watermark_null turns it into the share of unmarked images that reach it, or for a
  found id a false-positive probability, from benchmarks/watermark_null.py's unmarked images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft  # scikit-image's dependency: batched float32 FFTs, 5× numpy's here

from kekong.errors import ParameterError
from kekong.provenance import ecc, watermark_lattice

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


def _detail_level(luma: np.ndarray, chip: int) -> np.ndarray:
    """The mean size of the fine detail around each pixel, in levels, plus 2 (2 on flat colour)."""
    detail = np.abs(luma - cv2.GaussianBlur(luma, (0, 0), chip))
    return cv2.GaussianBlur(detail, (0, 0), 2 * chip) + 2.0


def _activity(level: np.ndarray) -> np.ndarray:
    """Local busyness (`_detail_level`), normalised to RMS 1: the mark hides better in texture than in flat sky."""
    weight = np.clip(level / level.mean(), 0.4, 2.0)
    return weight / np.sqrt(np.mean(weight**2))


def _reader_gain(luma: np.ndarray, chip: int) -> np.ndarray:
    """How much of a chip the reader keeps at each pixel: it divides the detail by the local detail
    level (`_detail`, at this image's chip scale), so beside a strong edge — the lines of line art —
    a chip is mostly lost and in flat or gently textured areas it is kept whole."""
    residual = luma - cv2.GaussianBlur(luma, (0, 0), SIGMA * chip / CHIP)
    return 1.0 / (_smooth(np.abs(residual), 8.0 * chip / CHIP) + 1.0)


def _saturated(luma: np.ndarray, chip: int) -> np.ndarray:
    """The local share (0…1) of pixels at white or black, where half the chips clip."""
    ends = ((luma >= 255 - SATURATED) | (luma <= SATURATED)).astype(np.float32)
    return cv2.GaussianBlur(ends, (0, 0), 4 * chip)


def _weight(luma: np.ndarray, chip: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the mark's energy goes (RMS 1): busy areas hide it. Among white or black — line art,
    white backgrounds — the busy parts are edges, which the reader discounts, so there the
    energy follows what the reader keeps instead (photos without such areas are unchanged).
    With it, the most a chip may change each pixel (`_ceiling`)."""
    level, saturated = _detail_level(luma, chip), _saturated(luma, chip)
    weight = _activity(level) * _reader_gain(luma, chip) ** saturated
    return weight / np.sqrt(np.mean(weight**2)), _ceiling(level, saturated)


FLAT_MAX = 2.0  # levels a chip may change flat colour or a gradient by (±3 showed as blocks under a levels stretch)


def _ceiling(level: np.ndarray, saturated: np.ndarray) -> np.ndarray:
    """The most a chip may change each pixel, in levels: FLAT_MAX on flat colour and smooth gradients,
    where a bigger step shows as a blocky pattern once the levels are stretched, and more in
    proportion to the detail around it that hides the step. Among white or black (line art, white
    backgrounds) only one sign of chip lands at all, and there it is not bounded."""
    return FLAT_MAX * (level / 2.0) / np.maximum(1.0 - saturated, 1e-3)


def _add(image: np.ndarray, amplitudes: np.ndarray, chip: int, weight: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    pattern = np.kron(amplitudes, np.ones((chip, chip)))
    reps = (-(-height // pattern.shape[0]), -(-width // pattern.shape[1]))
    delta = np.clip(np.tile(pattern, reps)[:height, :width].astype(np.float32) * weight, -ceiling, ceiling)
    return np.clip(np.round(image[..., :3].astype(np.float32) + delta[..., None]), 0, 255).astype(np.uint8)


SATURATED = 4  # levels from 0 or 255 counted as black or white
MAX_BOOST = 2.5  # most the strength is raised to make up for chips lost at 0 and 255


def embed(image: np.ndarray, mark_id: int) -> np.ndarray:
    """`image` (uint8 RGB) with the mark carrying `mark_id` added.

    On white (or black) only darkening (or lightening) chips land: the others clip. Line art and
    white backgrounds would lose up to half the mark, so the strength is raised until the change
    that does land has the RMS STRENGTH gives an unclipped image (same PSNR, ≈ 38.7 dB): the lost
    chips' share goes to the ones that can be made."""
    height, width = image.shape[:2]
    chip = _chip_pixels(height, width)
    (weight, ceiling), chips = _weight(_luma(image), chip), tile(mark_id)
    rgb = image[..., :3].astype(np.float32)
    planned = float(np.sqrt(np.mean(np.minimum(STRENGTH * weight, ceiling) ** 2)))  # what lands where nothing clips

    def landed(strength: float) -> tuple[float, np.ndarray]:
        marked = _add(image, strength * chips, chip, weight, ceiling)
        return float(np.sqrt(np.mean((marked - rgb) ** 2))), marked

    change, out = landed(STRENGTH)
    if change < 0.98 * planned:  # bisect for the most strength whose change stays within the planned one
        low, high = STRENGTH, MAX_BOOST * STRENGTH
        for _ in range(7):
            middle = float(np.sqrt(low * high))
            change, marked = landed(middle)
            if change <= planned:
                low, out = middle, marked
            else:
                high = middle
    elif change > 1.01 * planned:  # rounding lifted it (many small changes rounded up): scale back
        change, out = landed(STRENGTH * planned / change)
    return np.concatenate([out, image[..., 3:]], axis=-1) if image.shape[-1] == 4 else out


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class Reading:
    found: bool
    mark_id: int | None
    confidence: float  # pilot correlation peak in standard deviations; what it means: watermark_null
    period: tuple[float, float]  # tile period found, pixels (y, x)


def _detail(luma: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Fine detail, whitened: the mark lives there and the picture's smooth content does not."""
    residual = luma - cv2.GaussianBlur(luma, (0, 0), sigma)
    return residual / (_smooth(np.abs(residual), 8.0) + 1.0)


def _smooth(values: np.ndarray, sigma: float, step: int = 4) -> np.ndarray:
    """A Gaussian blur of `values` at `sigma` ≥ 2·step, computed on a grid `step` times coarser (area
    averaged, blurred, bilinear back): what was most of a period guess's time, 5× cheaper, within
    1% of the full-resolution blur."""
    height, width = values.shape
    if min(height, width) < 16 * step:
        return cv2.GaussianBlur(values, (0, 0), sigma)
    small = cv2.resize(values, (width // step, height // step), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), float(np.sqrt(sigma**2 - step**2 / 4)) / step)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


MAX_FOLD_PIXELS = 1 << 18  # resampled area folded for a period guess no resize or crop can give (16 tiles)


def _fold(luma: np.ndarray, period_y: float, period_x: float) -> np.ndarray:
    """Resample so the tile is PERIOD pixels, then sum the detail of all tiles onto one."""
    return _sum_tiles(_resampled_detail(luma, period_y, period_x))


def _resampled_detail(luma: np.ndarray, period_y: float, period_x: float) -> np.ndarray:
    """The detail of `luma` resampled so the tile is PERIOD pixels.

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
    return _detail(cv2.resize(luma, (new_w, new_h), interpolation=cv2.INTER_CUBIC), SIGMA * CHIP / 4)


def _sum_tiles(detail: np.ndarray) -> np.ndarray:
    """Every PERIOD×PERIOD tile of `detail` summed onto one (the last row and column zero-padded)."""
    height, width = detail.shape
    padded_h, padded_w = -(-height // PERIOD) * PERIOD, -(-width // PERIOD) * PERIOD
    canvas = np.zeros((padded_h, padded_w), np.float32)
    canvas[:height, :width] = detail
    return canvas.reshape(padded_h // PERIOD, PERIOD, padded_w // PERIOD, PERIOD).sum(axis=(0, 2))


_PILOT_PIXELS = np.kron(np.where(LAYOUT.pilot, LAYOUT.signs, 0.0), np.ones((CHIP, CHIP)))
_PILOT_SPECTRUM = np.conj(np.fft.rfft2(_PILOT_PIXELS))
_PILOT_SPECTRUM32 = _PILOT_SPECTRUM.astype(np.complex64)

# The eight ways a folded tile can lie (the lattice is the same for all of them): as embedded,
# mirrored left-right (a horizontal flip), upside down, turned half way, and the same four
# transposed (quarter turns). Each undoes one of those edits.
ORIENTATIONS: tuple[tuple[str, object], ...] = (
    ("as embedded", lambda t: t),
    ("flipped horizontally", lambda t: t[:, ::-1]),
    ("flipped vertically", lambda t: t[::-1, :]),
    ("turned 180°", lambda t: t[::-1, ::-1]),
    ("transposed", lambda t: t.T),
    ("turned 90° clockwise", lambda t: t.T[:, ::-1]),
    ("turned 90° counter-clockwise", lambda t: t.T[::-1, :]),
    ("transposed across the other diagonal", lambda t: t.T[::-1, ::-1]),
)


def _align(folded: np.ndarray) -> tuple[tuple[int, int], float]:
    """The tile's shift in a folded tile and the pilot's correlation peak in standard deviations."""
    correlation = np.fft.irfft2(np.fft.rfft2(folded) * _PILOT_SPECTRUM, s=folded.shape)
    peak = np.unravel_index(np.argmax(correlation), correlation.shape)
    z = float((correlation[peak] - correlation.mean()) / (correlation.std() + 1e-12))
    return (int(peak[0]), int(peak[1])), z


def _decode(folded: np.ndarray, shift: tuple[int, int], clean: float = -1.0) -> int | None:
    """The id carried by a folded tile at `shift`, or None when the CRC or version byte says it is
    not a kekong mark, or when fewer than `clean` of the soft values (weighted by their size) agree
    with the codeword the decoder chose (a real mark agrees with most; noise with about half)."""
    aligned = np.roll(folded, (-shift[0], -shift[1]), axis=(0, 1))
    chips = aligned.reshape(CHIPS, CHIP, CHIPS, CHIP).mean(axis=(1, 3)) * LAYOUT.signs
    data = ~LAYOUT.pilot
    soft = np.bincount(LAYOUT.bit_of_chip[data], weights=chips[data], minlength=_CODED_BITS)
    noise = np.std(chips[data]) * np.sqrt(np.bincount(LAYOUT.bit_of_chip[data], minlength=_CODED_BITS)) + 1e-12
    bits = ecc.decode(soft / noise)
    body, check = bits[:-16], bits[-16:]
    version = int("".join(map(str, body[:8])), 2)
    if version != VERSION or not np.array_equal(ecc.crc16(body), check):
        return None
    if clean > -1 and _agreement(soft, bits) < clean:
        return None
    return int("".join(map(str, body[8:])), 2)


def _agreement(soft: np.ndarray, bits: np.ndarray) -> float:
    """How much of the soft values' weight agrees with the codeword of `bits`, −1…1."""
    codeword = ecc.encode(bits).astype(np.float64) * 2 - 1
    return float(np.sum(soft * codeword) / (np.sum(np.abs(soft)) + 1e-12))


def _read_folded(folded: np.ndarray) -> tuple[int | None, float]:
    """(id or None, pilot peak in standard deviations) from one folded tile, as embedded."""
    shift, z = _align(folded)
    return _decode(folded, shift), z


def _undoing(index: int) -> int:
    """The orientation that undoes ORIENTATIONS[index]."""
    probe = np.arange(16.0).reshape(4, 4)
    turned = ORIENTATIONS[index][1](probe)
    return next(j for j, (_, turn) in enumerate(ORIENTATIONS) if np.array_equal(turn(turned), probe))


# Correlating a turned fold with the pilot gives the same values, permuted, as correlating the fold
# with the pilot turned back: so one FFT of the fold serves all eight orientations.
_TURNED_PILOT_SPECTRA = np.stack([np.conj(np.fft.rfft2(ORIENTATIONS[_undoing(k)][1](_PILOT_PIXELS)))
                                  for k in range(len(ORIENTATIONS))]).astype(np.complex64)


def _best_orientations(folded: np.ndarray, skip_plain: bool) -> list[tuple[int, float]]:
    """(index in ORIENTATIONS, pilot peak) of the orientation whose pilot peak is highest, for each
    of a stack of folded tiles (n, PERIOD, PERIOD): only that one is decoded, so trying all eight
    adds no CRC hypotheses. (One batched forward FFT, all correlations in one batched inverse.)"""
    first = 1 if skip_plain else 0
    spectra = scipy.fft.rfft2(folded.astype(np.float32))
    correlation = scipy.fft.irfft2(spectra[:, None] * _TURNED_PILOT_SPECTRA[None, first:], s=folded.shape[1:])
    flat = correlation.reshape(folded.shape[0], len(ORIENTATIONS) - first, -1)
    z = (flat.max(axis=2) - flat.mean(axis=2)) / (flat.std(axis=2) + 1e-12)
    best = np.argmax(z, axis=1)
    return [(first + int(b), float(z[i, b])) for i, b in enumerate(best)]


def _decode_oriented(folded: np.ndarray, skip_plain: bool,
                     best: tuple[int, float] | None = None) -> tuple[int, float] | None:
    """(id, pilot peak) from the best-aligned orientation of a folded tile (`best`, when already
    found), if its pilot clears PILOT_BAR and its payload decodes."""
    index, z = best or _best_orientations(folded[None], skip_plain)[0]
    if z < PILOT_BAR:
        return None
    tile_view = np.ascontiguousarray(ORIENTATIONS[index][1](folded))
    shift, _ = _align(tile_view)
    mark_id = _decode(tile_view, shift)
    return None if mark_id is None else (mark_id, z)


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """A 2×2 inverse (numpy's general one costs more than the warp it sets up)."""
    (a, b), (c, d) = matrix
    return np.array([[d, -b], [-c, a]]) / (a * d - b * c)


def _affine(shape: tuple[int, int], forward: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The warp (2×3, for cv2.warpAffine) applying `forward` about the centre of an image of
    `shape`, and the output size that holds all of it."""
    height, width = shape
    corners = (np.array([[0, 0], [width, 0], [0, height], [width, height]], float) - [width / 2, height / 2]) \
        @ forward.T
    out_w, out_h = (int(np.ceil(v)) for v in np.ptp(corners, axis=0))
    offset = np.array([out_w / 2, out_h / 2]) - forward @ np.array([width / 2, height / 2])
    return np.hstack([forward, offset[:, None]]), (out_w, out_h)


def _fold_turned(resampled: np.ndarray, scale: float, basis: np.ndarray) -> np.ndarray:
    """Fold a turned or stretched lattice from detail already resampled for a plain guess of a
    nearby period: warping the detail costs a fraction of recomputing it. `scale` is that guess's
    period over this lattice's; the filled-in border is zero, which adds nothing."""
    matrix, size = _affine(resampled.shape, scale * _inverse(basis))
    return _sum_tiles(cv2.warpAffine(resampled, matrix, size, flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0))


def _fold_affine(luma: np.ndarray, period: float, basis: np.ndarray) -> np.ndarray:
    """Resample so the tile is PERIOD pixels square and axis-aligned again (undoing a turn or a
    stretch with a resize), then sum the detail of all tiles onto one; the image's border (and
    whatever a turn filled in beyond it) is left out."""
    matrix, (out_w, out_h) = _affine(luma.shape, (PERIOD / period) * _inverse(basis))
    warped = cv2.warpAffine(luma, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    inside = cv2.warpAffine(np.ones_like(luma), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    keep = cv2.erode((inside > 0.999).astype(np.uint8), np.ones((2 * CHIP + 1, 2 * CHIP + 1), np.uint8))
    return _sum_tiles(_detail(warped, SIGMA * CHIP / 4) * keep)


NEAR_TURNS, NEAR_STRETCHES = 2, 2  # turned and stretched lattices at the nominal period folded per image (cheap)
FAR_TURNS = 1  # and at other periods (a turn and a resize): the one that stands out most
GEOMETRY_BAR = 8.0  # robust z a far lattice must stand out by to be resampled afresh (no plain guess near)
PILOT_BAR = 7.0  # pilot peak (standard deviations) a turned, stretched or mirrored tile needs to be decoded


def read(image: np.ndarray) -> Reading:
    """Look for a kekong mark in `image` (uint8 RGB, any size ≥ 64 px)."""
    luma = _luma(image)
    detail = _detail(luma, SIGMA)
    height, width = detail.shape
    low, high = 0.3 * PERIOD, 0.7 * min(height, width)
    acf = watermark_lattice.autocorrelation(detail)
    best = Reading(False, None, 0.0, (0.0, 0.0))
    # 1. the plain reading: first the period an unresized image of this size has (strong
    # textures can hide its autocorrelation peak), then the autocorrelation's candidates, each
    # followed by its half (in dense texture the peak at twice the period can outscore the period)
    candidates = [float(_chip_pixels(height, width) * CHIPS)]
    for period in watermark_lattice.periods(acf, detail.shape, low, high, MAX_HYPOTHESES):
        for option in (period, period / 2):
            if option >= low and all(abs(option - c) > 1 for c in candidates):
                candidates.append(option)
    folds = []  # (folded tile, period, resampled detail) per plain guess
    for period in candidates[:MAX_HYPOTHESES]:
        resampled = _resampled_detail(luma, period, period)
        folded = _sum_tiles(resampled)
        mark_id, z = _read_folded(folded)
        if mark_id is not None:
            return Reading(True, mark_id, z, (period, period))
        if z > best.confidence:
            best = Reading(False, None, z, (period, period))
        folds.append((folded, period, resampled))
    # 2. the same folds, mirrored or turned by quarters (the lattice does not change)
    bests = _best_orientations(np.stack([fold[0] for fold in folds]), skip_plain=True) if folds else []
    for (folded, period, _), best_turn in zip(folds, bests, strict=True):
        found = _decode_oriented(folded, skip_plain=True, best=best_turn)
        if found is not None:
            return Reading(True, found[0], found[1], (period, period))
    # 3. slightly turned or stretched lattices the autocorrelation favours, folded by warping a
    # plain guess's resampled detail of a period within NEAR (cheap), else resampled afresh
    nominal = candidates[0]
    shortest = max(low, min(height, width) / 9)  # a kekong tile is ≥ 1/8 of the short side
    search = watermark_lattice.LatticeSearch(acf, detail.shape, shortest, high)
    hypotheses = [(geometry, geometry.period) for geometry in search.near(nominal, NEAR_TURNS, NEAR_STRETCHES)]
    for geometry in search.standing_out(FAR_TURNS, away_from=nominal):
        # a turn and a resize: the peak's period, and its half (dense texture can favour twice it)
        hypotheses += [(geometry, p) for p in (geometry.period, geometry.period / 2) if p >= shortest]
    tried: list[tuple[float, float, float]] = []
    for geometry, period in hypotheses:
        if any(abs(period - p) < 1 and abs(geometry.angle - a) < 0.1 and abs(geometry.aspect - r) < 0.003
               for p, a, r in tried):
            continue
        tried.append((period, geometry.angle, geometry.aspect))
        source = min(folds, key=lambda fold: abs(np.log(fold[1] / period)))
        if abs(source[1] / period - 1) <= watermark_lattice.NEAR:
            folded = _fold_turned(source[2], source[1] / period, geometry.basis)
        elif geometry.strength >= GEOMETRY_BAR:
            folded = _fold_affine(luma, period, geometry.basis)
        else:
            continue
        found = _decode_oriented(folded, skip_plain=False)
        if found is not None:
            return Reading(True, found[0], found[1], (period * geometry.aspect, period))
    return best
