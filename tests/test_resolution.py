"""Processor resolution, pixel perfect and the three resize modes."""

import numpy as np
import pytest

from kekong.detect import processor_resolution, run
from kekong.detect.resolution import ResizeMode, fit_to_target, resize_map, snap
from kekong.errors import ParameterError


def test_detectors_run_at_the_processor_resolution(coffee):
    assert run("canny", coffee, res=256).image.shape == (256, 384, 3)  # short side 256
    assert run("lineart_standard", coffee, res=200).image.shape == (200, 300, 3)  # pad removed


def test_pixel_perfect_matches_target_per_resize_mode():
    # 400×600 image into a 512×512 target: crop covers (k = 512/400), fill fits (k = 512/600).
    assert processor_resolution((400, 600), pixel_perfect=True, target_hw=(512, 512),
                                resize_mode="crop") == 512
    assert processor_resolution((400, 600), pixel_perfect=True, target_hw=(512, 512),
                                resize_mode="fill") == round(400 * 512 / 600)
    with pytest.raises(ParameterError, match="target"):
        processor_resolution((400, 600), pixel_perfect=True)


def test_resize_modes(coffee):
    target = (256, 256)
    just = fit_to_target(coffee, target, ResizeMode.JUST_RESIZE)
    crop = fit_to_target(coffee, target, "Crop and Resize")
    fill = fit_to_target(coffee, target, "fill")
    assert just.shape == crop.shape == fill.shape == (256, 256, 3)
    # Fill pads top and bottom (the image is wide) with one border colour.
    assert np.all(fill[0] == fill[0, 0]) and np.all(fill[-1] == fill[0, 0])
    # Crop keeps the centre: its middle column matches the image's middle column, scaled.
    assert np.abs(crop[:, 128].astype(int).mean() - coffee[:, 300].astype(int).mean()) < 20


def test_binary_maps_stay_binary_and_palettes_stay_exact():
    binary = np.zeros((100, 100, 3), np.uint8)
    binary[40:60] = 255
    assert set(np.unique(resize_map(binary, (37, 53)))) <= {0, 255}
    seg = np.zeros((64, 64, 3), np.uint8)
    seg[:, 32:] = (150, 5, 61)
    colours = {tuple(c) for c in resize_map(seg, (100, 100)).reshape(-1, 3)}
    assert colours == {(0, 0, 0), (150, 5, 61)}


def test_snap_and_bad_mode():
    assert snap(513) == 512 and snap(517) == 520 and snap(3) == 8
    with pytest.raises(ParameterError, match="resize mode"):
        ResizeMode.parse("stretchy")
