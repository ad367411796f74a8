"""The watermark's confidence is calibrated from a measured null (issue 22, item 6): the pattern
match an unmarked image reaches, measured by benchmarks/watermark_null.py, becomes the share of
unmarked images that reach it or, for a found id, a false-positive probability. The mapping is
tested on a synthetic null (a max-of-Gumbel-like sample, 4000 images); the shipped table itself
must come from ≥ 3000 unmarked images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image
from scipy.stats import genpareto

from kekong.provenance import watermark, watermark_null
from kekong.provenance import watermark_null_table as table
from kekong.provenance.verify import describe, verify


@pytest.fixture
def null(monkeypatch):
    """A table as benchmarks/watermark_null.py writes it, from 4000 synthetic peaks (median ≈ 4.4)."""
    peaks = np.random.default_rng(6).gumbel(4.2, 0.55, 4000)
    grid = [3.0 + 0.25 * i for i in range(45)]
    threshold = float(np.quantile(peaks, 0.95))
    excess = peaks[peaks > threshold] - threshold
    shape, _, scale = genpareto.fit(excess, floc=0)
    values = {"COUNT": peaks.size, "FOUND": 0, "GRID": grid, "SURVIVAL": [int(np.sum(peaks >= z)) for z in grid],
              "GATED_SURVIVAL": [0] * len(grid), "PERCENTILES": {"median": float(np.median(peaks))},
              "TAIL": {"threshold": threshold, "above": excess.size / peaks.size, "shape": float(shape),
                       "scale": float(scale), "exceedances": int(excess.size)}}
    for name, value in values.items():
        monkeypatch.setattr(table, name, value)
    return peaks


def test_the_shipped_table_comes_from_at_least_3000_unmarked_images_none_marked():
    assert table.COUNT >= 3000 and table.FOUND == 0 and watermark_null.calibrated()
    assert table.TAIL["exceedances"] >= watermark_null.MIN_EXCEEDANCES
    assert all(a >= b for a, b in itertools.pairwise(table.SURVIVAL))
    assert all(a >= b for a, b in itertools.pairwise(table.GATED_SURVIVAL))


def test_the_shipped_table_says_what_the_bars_give():
    """Issue 22's goal, ≤ 0.1% false positives over ≥ 3000 unmarked images: none of them read as
    marked (one-sided 95% bound 3/COUNT = 0.1%); the gated folds are decoded (PILOT_BAR) on only a
    few percent of unmarked images; a found id's false-positive probability stays below 1e-6 even
    at the weakest peak an unmarked image reached."""
    assert table.FOUND / table.COUNT <= 0.001 and 3 / table.COUNT <= 0.001
    at_bar = np.interp(watermark.PILOT_BAR, table.GRID, table.GATED_SURVIVAL) / table.COUNT
    assert at_bar < 0.05
    assert watermark_null.false_positive(table.PERCENTILES["max"]) < 1e-6
    assert watermark_null.null_share(table.PERCENTILES["median"]) == pytest.approx(0.5, abs=0.05)


def test_the_share_is_the_measured_one_and_falls_with_the_match(null):
    for z in (4.0, 4.4, 5.0, 5.5):
        assert watermark_null.null_share(z) == pytest.approx(np.mean(null >= z), abs=0.01)
    shares = [watermark_null.null_share(z) for z in np.linspace(0, 40, 801)]
    assert shares[0] == 1.0 and all(a >= b for a, b in itertools.pairwise(shares))
    threshold = table.TAIL["threshold"]
    assert watermark_null.null_share(threshold + 1e-6) == pytest.approx(watermark_null.null_share(threshold), rel=0.05)
    assert 0 < watermark_null.null_share(40) < 1e-9  # the fitted tail, beyond anything measured


def test_too_small_a_table_never_claims_less_than_it_can_bound(null, monkeypatch):
    monkeypatch.setitem(table.TAIL, "exceedances", watermark_null.MIN_EXCEEDANCES - 1)
    assert watermark_null.null_share(40) == pytest.approx(3 / table.COUNT)


def test_a_found_id_gets_a_false_positive_probability(null):
    weak, strong = watermark_null.false_positive(6.0), watermark_null.false_positive(12.0)
    assert strong < weak <= watermark_null.DECODES * 2.0**-24 * watermark_null.null_share(6.0) + 1e-30
    assert watermark_null.describe(True, 25.0)["false_positive_text"] == "< 1e-12"


def test_a_high_match_without_an_id_is_named_for_what_it_may_be(null):
    words = watermark_null.describe(False, 8.0)
    assert words["null_share"] < 0.01 and "periodic texture, or a damaged mark" in words["null_text"]
    assert "periodic" not in watermark_null.describe(False, 4.4)["null_text"]


def test_verify_reports_the_calibrated_numbers(null, tmp_path, astronaut):
    Image.fromarray(watermark.embed(astronaut, 777)).save(tmp_path / "marked.png")
    Image.fromarray(astronaut).save(tmp_path / "photo.png")
    marked, photo = verify(tmp_path / "marked.png"), verify(tmp_path / "photo.png")
    assert marked.watermark["false_positive"] < 1e-9 and "false-positive probability" in describe(marked)
    assert not photo.watermark["found"] and 0.01 < photo.watermark["null_share"] <= 1
    text = describe(photo)
    assert "of unmarked images reach it" in text and "no id decoded" in text


def test_an_uncalibrated_table_adds_nothing(monkeypatch):
    monkeypatch.setattr(table, "COUNT", watermark_null.MIN_COUNT - 1)
    assert not watermark_null.calibrated() and watermark_null.describe(True, 20.0) == {}
