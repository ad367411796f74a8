"""What a watermark reading's pattern match means, from the reader's measured null distribution.

`Reading.confidence` is the pilot's correlation peak in standard deviations, the best over the
plain period guesses. On images without a kekong mark it is not small: its median is ≈ 4.4 and
periodic textures (a tiled pattern folds onto itself as a mark does) reach 11 and more, so no
fixed "clear" level exists. benchmarks/watermark_null.py measures the peak on ≥ 3000 unmarked
images (photos, textures, synthetic periodic patterns; cropped, resized, flipped, turned, JPEG)
and fits a generalised Pareto tail to its top 5%: watermark_null_table holds the result.

- `null_share(z)`: the share of unmarked images whose pattern match reaches z (empirical where
  measured, the fitted tail beyond; a table too small for a fit gives no share below 3 / COUNT).
Until that table holds ≥ MIN_COUNT images (`calibrated()`), `describe` gives nothing and verify
shows the bare pattern match.

- `false_positive(reading)`: for a reading that found an id, the probability that an unmarked
  image gives a reading like it: its pattern match at least this high *and* one of its decoded
  hypotheses passing the CRC-16 + version byte (≤ DECODES × 2⁻²⁴, independent of the pilot)."""

from __future__ import annotations

import numpy as np

from kekong.provenance import watermark_null_table as table

DECODES = 26  # most payload decodes a read makes (10 plain + 10 oriented + 6 turned/stretched)
CRC_PASS = 2.0**-24  # a random decode passes CRC-16 and the version byte
FLOOR = 1e-12  # below this a probability is reported as "< FLOOR": the model says no more
MIN_EXCEEDANCES = 50  # peaks above the tail's threshold needed before the fitted tail is used
MIN_COUNT = 1000  # unmarked images the table needs before verify reports calibrated numbers


def calibrated() -> bool:
    """Whether the shipped table was measured on enough unmarked images to be used."""
    return table.COUNT >= MIN_COUNT


def null_share(z: float) -> float:
    """The share of unmarked images whose pattern match (pilot peak, σ) is at least `z`."""
    tail = table.TAIL
    grid, survival = np.asarray(table.GRID), np.asarray(table.SURVIVAL, float) / table.COUNT
    if tail["exceedances"] < MIN_EXCEEDANCES:  # too few peaks to fit a tail: measured shares only,
        # and beyond the highest measured peak the 95% upper bound for none seen (3 / COUNT)
        return float(max(np.interp(z, grid, survival, left=1.0), 3.0 / table.COUNT))
    if z <= tail["threshold"]:
        return float(np.interp(z, grid, survival, left=1.0))
    shape, scale = max(tail["shape"], 0.0), tail["scale"]  # never a lighter tail than exponential
    excess = (z - tail["threshold"]) / scale
    beyond = np.exp(-excess) if shape == 0 else (1 + shape * excess) ** (-1 / shape)
    return float(np.interp(tail["threshold"], grid, survival) * beyond)  # joins the measured share


def false_positive(confidence: float) -> float:
    """The probability that an unmarked image reads as marked with at least this pattern match."""
    return max(null_share(confidence) * DECODES * CRC_PASS, FLOOR)


def describe(found: bool, confidence: float) -> dict[str, float | str]:
    """What verify reports beside the pattern match: the calibrated numbers and a plain reading
    (nothing while the table is not calibrated)."""
    if not calibrated():
        return {}
    share = null_share(confidence)
    if found:
        chance = false_positive(confidence)
        words = f"< {FLOOR:.0e}" if chance <= FLOOR else f"{chance:.1e}"
        return {"false_positive": chance, "false_positive_text": words}
    words = f"{_percent(share)} of unmarked images reach it"
    if share < 0.01:
        words += ": a periodic texture, or a damaged mark"
    return {"null_share": share, "null_text": words}


def _percent(share: float) -> str:
    value = 100 * share
    return f"{value:.0f}%" if value >= 1 else f"{value:.2g}%"
