"""The synthetic figures data (`kekong data figures`) and the pose bench's scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kekong.detect.openpose.keypoints import PoseResult
from kekong.detect.openpose.render import draw_pose
from kekong.detect.resolution import fit_to_target
from kekong.train.figures import MAP_RESOLUTION, describe, random_sample, write_dataset
from kekong.train.pose_bench import limbs_placed, score
from kekong.train.shapes import colour_of
from kekong.train.skeletons import (
    FOREARM,
    L_ELBOW,
    L_SHOULDER,
    L_WRIST,
    NECK,
    NOSE,
    R_ANKLE,
    R_HIP,
    R_KNEE,
    THIGH,
    UPPER_ARM,
    random_skeleton,
)


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    return [random_sample(rng, 64, detected=0.0) for _ in range(40)]


def test_skeletons_keep_bone_lengths_and_an_upright_body():
    rng = np.random.default_rng(0)
    for pose in ("standing", "walking", "arms up", "arms out", "waving"):
        for _ in range(10):
            s = random_skeleton(rng, (100.0, 50.0), 200.0, pose)
            p = s.points
            assert np.linalg.norm(p[L_ELBOW] - p[L_SHOULDER]) == pytest.approx(UPPER_ARM * 200, rel=1e-6)
            assert np.linalg.norm(p[L_WRIST] - p[L_ELBOW]) == pytest.approx(FOREARM * 200, rel=1e-6)
            assert np.linalg.norm(p[R_KNEE] - p[R_HIP]) == pytest.approx(THIGH * 200, rel=1e-6)
            assert p[NOSE, 1] < p[NECK, 1] < p[R_HIP, 1] < p[R_ANKLE, 1]  # head up, feet down


def test_arms_up_raise_the_wrists_above_the_shoulders_and_standing_does_not():
    rng = np.random.default_rng(1)
    up = [random_skeleton(rng, (100.0, 80.0), 200.0, "arms up") for _ in range(20)]
    down = [random_skeleton(rng, (100.0, 80.0), 200.0, "standing") for _ in range(20)]
    assert all(s.points[L_WRIST, 1] < s.points[L_SHOULDER, 1] for s in up)
    assert all(s.points[L_WRIST, 1] > s.points[L_SHOULDER, 1] for s in down)


def test_people_fit_on_the_canvas_left_to_right(samples):
    for sample in samples:
        xs = []
        for figure in sample.figures:
            shown = figure.skeleton.points[~np.isnan(figure.skeleton.points[:, 0])]
            assert shown.min() >= -1 and shown.max() <= 65
            xs.append(shown[:, 0].mean())
        assert xs == sorted(xs)  # the prompt names them left to right


def test_the_prompt_names_the_colours_that_are_drawn(samples):
    for sample in samples:
        assert sample.prompt == describe(sample.figures, sample.background)
        assert f"{sample.background} background" in sample.prompt
        corner_colours = {tuple(sample.target[y, x]) for y, x in ((0, 0), (0, 63), (63, 0), (63, 63))
                          if not sample.mask[y, x]}
        assert corner_colours <= {colour_of(sample.background)}
        for figure, shirt in zip(sample.figures, sample.shirt_masks, strict=True):
            assert figure.shirt in sample.prompt and f"{figure.hair} hair" in sample.prompt
            inner = shirt & np.roll(shirt, 1, 0) & np.roll(shirt, -1, 0) & np.roll(shirt, 1, 1) & np.roll(shirt, -1, 1)
            if inner.any():
                mean = sample.target[inner].mean(axis=0)
                assert np.abs(mean - colour_of(figure.shirt)).max() < 30


def test_one_and_several_people_prompts():
    rng = np.random.default_rng(3)
    counts = {}
    for _ in range(60):
        sample = random_sample(rng, 64, detected=0.0)
        counts[len(sample.figures)] = sample.prompt
    assert counts[1].startswith("a person in a ") and ", on a" in counts[1]
    assert counts[2].startswith("two people on ") and "left: " in counts[2] and "right: " in counts[2]


def test_the_condition_is_kekongs_own_openpose_rendering_fitted_to_the_size(samples):
    sample = samples[0]
    pose = sample.pose()
    pose.width = pose.height = MAP_RESOLUTION  # drawn at the detector's resolution, then fitted
    expected = fit_to_target(draw_pose(pose, hands=False, face=False), (64, 64), "Just Resize")
    assert np.array_equal(expected, sample.control) and sample.control.any()
    again = PoseResult.from_json(json.dumps(sample.pose().to_json()))  # the JSON keeps the keypoints
    assert np.nanmax(np.abs(again.people[0].body[:, :2] - sample.pose().people[0].body[:, :2])) < 1e-4


def test_detected_skeletons_from_photos_are_in_the_mix():
    rng = np.random.default_rng(5)
    sample = random_sample(rng, 64, detected=1.0)
    assert {f.skeleton.pose for f in sample.figures} == {"detected"}
    assert sample.mask.any() and sample.control.any()


def test_write_dataset_writes_the_fill_layout_with_pose_json(tmp_path):
    write_dataset(tmp_path, 3, 64, seed=0)
    rows = [json.loads(line) for line in (tmp_path / "prompt.json").read_text().splitlines()]
    assert len(rows) == 3 and all((tmp_path / r["source"]).is_file() and (tmp_path / r["target"]).is_file()
                                  for r in rows)
    assert PoseResult.from_json((tmp_path / rows[0]["pose"]).read_text()).people


# --- the pose bench's scores ---

def test_the_true_figure_scores_full_marks(samples):
    for sample in samples[:10]:
        result = score(sample.target, sample)
        assert result["iou"] > 0.9 and result["limbs"] == 1.0
        assert result["shirt"] == result["lower"] == result["background"] == 1.0


def test_an_empty_background_scores_nothing(samples):
    sample = samples[0]
    empty = np.empty_like(sample.target)
    empty[:] = colour_of(sample.background)
    result = score(empty, sample)
    assert result["iou"] == 0.0 and result["limbs"] == 0.0 and result["shirt"] == 0.0
    assert result["background"] == 1.0


def test_a_figure_moved_aside_misses_its_limbs(samples):
    sample = next(s for s in samples if len(s.figures) == 1)
    moved = np.roll(sample.target, 8, axis=1)
    moved[:, :8] = colour_of(sample.background)
    assert score(moved, sample)["limbs"] < 0.6 < score(sample.target, sample)["limbs"]
    assert score(moved, sample)["iou"] < 0.5


def test_the_wrong_shirt_colour_is_counted_wrong(samples):
    sample = next(s for s in samples if len(s.figures) == 1 and s.shirt_masks[0].sum() > 20)
    recoloured = sample.target.copy()
    wrong = (0, 0, 0) if colour_of(sample.figures[0].shirt) != (0, 0, 0) else (255, 255, 255)
    recoloured[sample.shirt_masks[0]] = wrong
    assert score(recoloured, sample)["shirt"] == 0.0
    assert score(sample.target, sample)["shirt"] == 1.0


def test_limbs_are_scored_per_limb(samples):
    sample = next(s for s in samples if len(s.figures) == 1)
    placed = limbs_placed(sample.mask, sample)
    assert len(placed) == 12 and all(placed)
