"""Segmentation, shuffle, tile, colour grid, inpaint masks and normals."""

import numpy as np
import pytest

from kekong.detect import run
from kekong.detect.depth import normals_from_depth
from kekong.detect.inpaint import (
    MASKED,
    control_from_rgba,
    control_to_rgba,
    dilate_mask,
    feather_mask,
    mask_from_alpha,
    mask_from_color,
)
from kekong.detect.segmentation import ADE20K
from kekong.errors import ParameterError


def test_segmentation_covers_the_person_in_the_ade20k_colour(astronaut):
    seg = run("seg_person", astronaut).image
    person = np.all(seg == ADE20K["person"], axis=2)
    assert person[150:400, 150:300].mean() > 0.9  # her face and torso
    assert person[:100, 420:].mean() < 0.1  # the shuttle and flag corner
    assert 0.25 < person.mean() < 0.75
    walled = run("seg_person", astronaut, background="wall").image
    assert tuple(walled[10, 500]) == ADE20K["wall"]


def test_shuffle_is_seeded_and_keeps_colours(chelsea):
    a, b = run("shuffle", chelsea, seed=1).image, run("shuffle", chelsea, seed=1).image
    c = run("shuffle", chelsea, seed=2).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    src = run("tile_resample", chelsea).image  # same size, untouched
    assert abs(a.mean() - src.mean()) < 25 and np.abs(a.astype(int) - src).mean() > 10


def test_tile_and_colour_grid(chelsea):
    small = run("tile_resample", chelsea, down_sampling_rate=4.0).image
    assert small.shape[:2] == (128, 192)  # 512×770 at res 512, then a quarter
    grid = run("t2ia_color_grid", chelsea, res=512).image
    block = grid[0:64, 0:64].reshape(-1, 3)
    assert np.all(block == block[0])  # one colour per 64×64 cell
    blurred = run("blur_gaussian", chelsea, sigma=5).image
    assert blurred.std() < chelsea.std()


def test_inpaint_control_marks_masked_pixels_minus_one(coffee):
    mask = np.zeros(coffee.shape[:2], np.uint8)
    mask[100:200, 100:300] = 255
    control = run("inpaint_only", coffee, mask=mask, res=400).image
    assert control.dtype == np.float32 and control.shape == (400, 600, 3)
    assert np.all(control[120:180, 120:280] == MASKED)
    assert control[300:, :].min() >= 0 and control.max() <= 1
    assert np.array_equal(control_from_rgba(control_to_rgba(control)) == MASKED, control == MASKED)
    with pytest.raises(ParameterError, match="needs a mask"):
        run("inpaint_only", coffee)


def test_mask_helpers():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, 3] = 255
    assert mask_from_alpha(rgba)[7, 3] == 255 and mask_from_alpha(rgba)[2, 3] == 0
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[2:4, 2:4] = (0, 255, 0)
    green = mask_from_color(rgb, (0, 250, 0), tolerance=10)
    assert green.sum() == 4 * 255
    assert dilate_mask(green, 1).sum() > green.sum() > dilate_mask(green, -1).sum()
    soft = feather_mask(green, 2.0)
    assert 0 < soft[1, 1] < 255


def test_normals_follow_normalbae_colours():
    flat = normals_from_depth(np.zeros((64, 64), np.float32))
    assert np.all(np.abs(flat.astype(int) - (128, 128, 255)).max(axis=2) <= 1)  # facing us: blue
    nearer_right = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    tilted = normals_from_depth(nearer_right)[32, 32]
    assert tilted[0] > 132  # rising to the right faces left: red
    nearer_top = nearer_right.T[::-1].copy()  # near at the top row
    assert normals_from_depth(nearer_top)[32, 32][1] < 124  # faces down: less green
    depth_image = np.dstack([(nearer_right * 255).astype(np.uint8)] * 3)
    from_map = run("normal_from_depth", depth_image, res=64, input_is_depth=True).image
    assert from_map[32, 32, 0] > 132
