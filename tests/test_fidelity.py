"""Fidelity scores on constructed maps with known answers: the same map is perfect, a shifted map
drops by what the shift says, an empty output scores zero; units without structure say so."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kekong.fidelity import family, score, score_maps
from kekong.fidelity.metrics import depth_rmse, edge_f1, normal_angle, pose_pck, seg_miou


def outline(shift: int = 0, size: int = 128) -> np.ndarray:
    canvas = np.zeros((size, size, 3), np.uint8)
    cv2.rectangle(canvas, (30 + shift, 30), (90 + shift, 90), (255, 255, 255), 1)
    return canvas


def test_edge_f1_is_perfect_on_the_same_map_tolerant_within_2px_and_zero_when_empty():
    assert edge_f1(outline(), outline()) == 1.0
    assert edge_f1(outline(), outline(shift=2)) > 0.9  # within the tolerance: vertical sides still match
    shifted = edge_f1(outline(), outline(shift=6))
    assert 0.3 < shifted < 0.8  # the horizontal sides mostly overlap, the vertical ones are 6 px away
    assert edge_f1(outline(), np.zeros_like(outline())) == 0.0
    assert score_maps("edges", outline(), outline()).extra["ssim"] == pytest.approx(1.0)


def person(dx: float = 0.0) -> dict:
    body = np.zeros((18, 3))
    body[:, 0] = np.linspace(0.4, 0.6, 18) + dx
    body[:, 1] = np.linspace(0.1, 0.9, 18)
    body[:, 2] = 1
    body[1, :2], body[8, :2], body[11, :2] = (0.5 + dx, 0.2), (0.45 + dx, 0.5), (0.55 + dx, 0.5)  # torso 0.3 tall
    return {"pose_keypoints_2d": body.ravel().tolist()}


def test_pose_pck_matches_people_in_any_order_and_counts_a_missing_one_as_zero():
    left, right = person(-0.2), person(0.2)
    assert pose_pck({"people": [left, right]}, {"people": [right, left]}) == 1.0  # Hungarian: order is free
    assert pose_pck({"people": [left, right]}, {"people": [left]}) == 0.5
    assert pose_pck({"people": [left]}, {"people": [person(-0.2 + 0.02)]}) == 1.0  # 0.02 < 0.1 × 0.3
    assert pose_pck({"people": [left]}, {"people": [person(-0.2 + 0.05)]}) == 0.0  # 0.05 > 0.03
    assert pose_pck({"people": [left]}, {"people": []}) == 0.0


def test_depth_is_scale_and_shift_invariant_normals_by_angle_segments_by_iou():
    ramp = np.tile(np.linspace(0, 255, 64), (64, 1)).astype(np.uint8)
    assert depth_rmse(ramp, (ramp * 0.5 + 40).astype(np.uint8)) < 0.01  # the same depth, rescaled
    assert depth_rmse(ramp, ramp[:, ::-1].copy()) > 0.2  # reversed: far is near
    up = np.zeros((8, 8, 3), np.uint8) + np.array([128, 128, 255], np.uint8)  # +z
    side = np.zeros((8, 8, 3), np.uint8) + np.array([255, 128, 128], np.uint8)  # +x
    assert normal_angle(up, up) < 1 and normal_angle(up, side) == pytest.approx(90, abs=2)
    seg = np.zeros((10, 10, 3), np.uint8)
    seg[:, 5:] = (120, 120, 120)
    half = seg.copy()
    half[:, 5:] = 0  # the grey class lost: background IoU 0.5, grey 0
    assert seg_miou(seg, seg) == 1.0 and seg_miou(seg, half) == pytest.approx(0.25)


def test_score_runs_the_units_detector_on_the_output():
    photo = np.full((128, 128, 3), 40, np.uint8)
    cv2.rectangle(photo, (30, 30), (90, 90), (230, 230, 230), -1)
    assert score(photo, "canny", photo).value == 1.0  # the output has exactly the photo's edges
    moved = np.roll(photo, 12, axis=1)
    assert score(moved, "canny", photo).value < 0.7
    ready = score(photo, "none", outline(), score_as="canny")
    assert ready.metric == "edge_f1@2px" and ready.value is not None


@pytest.mark.parametrize(("module", "reason"), [
    ("shuffle", "no fidelity metric"), ("reference_only", "no fidelity metric"),
    ("none", "needs score_as="),
])
def test_units_it_cannot_score_say_why(module, reason):
    result = score(np.zeros((64, 64, 3), np.uint8), module, np.zeros((64, 64, 3), np.uint8))
    assert result.value is None and reason in result.reason


def test_families():
    assert [family(m) for m in ("canny", "lineart_anime", "scribble_xdog", "openpose_full", "depth_midas",
                                "normal_bae", "seg_ofade20k", "shuffle")] == \
        ["edges", "edges", "edges", "openpose", "depth", "normal", "seg", None]


def test_the_score_separates_images_made_with_and_without_the_controlnet(tmp_path):
    """The shipped model drawing a star outline: with the ControlNet the output's edges follow the
    outline (F1 ≈ 0.85-0.9 measured), at weight 0 they do not (≈ 0.2-0.4)."""
    import kekong
    from kekong.fidelity import score_generated
    from kekong.io import save_image
    from kekong.provenance.stamp import describe
    from tests.server_helpers import star_outline

    path = save_image(star_outline(), tmp_path / "star.png")
    scores = {}
    for weight in (0.0, 1.0):
        values = []
        for seed in (0, 1):
            [made] = kekong.generate(prompt="a red star on a light blue background", width=64, height=64, steps=12,
                                     seed=seed, controls=[{"module": "none", "image": str(path), "weight": weight}])
            made.fidelity = score_generated(made)
            values.append(made.fidelity[0]["value"])
        scores[weight] = values
    assert min(scores[1.0]) > 0.7 and max(scores[0.0]) < 0.5
    _, recipe = describe(made)
    assert recipe["fidelity"][0]["metric"] == "edge_f1@2px" and recipe["fidelity"][0]["module"] == "none"


def test_the_api_answers_carry_each_images_scores(tmp_path):
    import json

    from fastapi.testclient import TestClient

    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, star_outline

    with TestClient(create_app(ServerConfig(data_dir=tmp_path, ui=False))) as client:
        answer = client.post("/sdapi/v1/txt2img", json={
            "prompt": "a red star on a light blue background", "width": 64, "height": 64, "steps": 6, "seed": 1,
            "cfg_scale": 2, "alwayson_scripts": {"controlnet": {"args": [
                {"module": "none", "image": b64_png(star_outline())}]}}})
        assert answer.status_code == 200, answer.text
        [[unit]] = json.loads(answer.json()["info"])["kekong"]["fidelity"]
        assert unit["unit"] == 0 and unit["metric"] == "edge_f1@2px" and 0 <= unit["value"] <= 1
