"""DW-Pose (dw_openpose_full) and animal pose (animal_openpose) through onnxruntime, on tiny ONNX models
with the real files' input/output names and shapes whose outputs the test chose: YOLOX rows decode to
known boxes (grids, strides, NMS, classes), SimCC peaks at known bins decode to known pixels through the
top-down crop, and the 133 whole-body points become OpenPose-18 + hands + face as the extension maps them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from kekong.cli import app
from kekong.detect import run
from kekong.detect.learned import rtmpose, yolox
from kekong.detect.learned.dwpose import AP10K_COLOURS, draw_animals
from kekong.detect.openpose import PoseResult, draw_pose
from kekong.errors import KekongError, MissingWeightsError
from tests.onnx_graphs import constant_model

SIZE = 128  # the image; letterboxed ×5 into YOLOX's 640


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    (tmp_path / "models" / "annotators").mkdir(parents=True)


def _row(level: int, gx: int, gy: int) -> int:
    """The YOLOX output row of grid cell (gx, gy) at stride level 0/1/2 (8, 16, 32)."""
    sizes = [(640 // s) ** 2 for s in yolox.STRIDES]
    return sum(sizes[:level]) + gy * (640 // yolox.STRIDES[level]) + gx


def _box(rows, level, gx, gy, w, h, cls, objectness, cls_score):
    stride = yolox.STRIDES[level]
    row = rows[0, _row(level, gx, gy)]
    row[:4] = [0.0, 0.0, math.log(w / stride), math.log(h / stride)]
    row[4], row[5 + cls] = objectness, cls_score


def yolox_file(folder, boxes):
    rows = np.zeros((1, yolox.ROWS, 85), np.float32)
    for box in boxes:
        _box(rows, *box)
    return constant_model(folder / "yolox_l.onnx", "images", [1, 3, 640, 640], {"output": rows})


PERSON = (2, 10, 10, 200, 400, 0, 0.9, 0.9)  # centre (320, 320) 200×400 in the letterbox: (44, 24)–(84, 104)
PERSON_OVERLAP = (1, 20, 20, 190, 390, 0, 0.8, 0.8)  # same place, lower score: NMS drops it
PERSON_WEAK = (2, 3, 3, 64, 64, 0, 0.5, 0.5)  # 0.25: a candidate (> 0.1) but not kept (≤ 0.3)
DOG = (2, 5, 15, 256, 192, 16, 0.9, 0.9)  # centre (160, 480): (6.4, 76.8)–(57.6, 115.2) in the image


def simcc(points: int, bins: dict[int, tuple[int, int, float]], wx: int, wy: int, default: float = 0.0):
    x, y = np.zeros((1, points, wx), np.float32), np.zeros((1, points, wy), np.float32)
    for k, (bx, by, score) in bins.items():
        x[0, k, bx], y[0, k, by] = score, score
    return {"simcc_x": x, "simcc_y": y}


def dw_file(folder, bins, name="dw-ll_ucoco_384.onnx", points=133):
    return constant_model(folder / name, "input", ["N", 3, 384, 288], simcc(points, bins, 576, 768))


# the person box padded ×1.25 and widened to 288:384 → centre (64, 64), size 75×100:
# x = 26.5 + bin·75/576, y = 14 + bin·100/768
WHOLEBODY = {0: (288, 384, 0.9),  # nose (64, 64)
             5: (192, 192, 0.9), 6: (384, 192, 0.8),  # left/right shoulder (51.5, 39), (76.5, 39)
             3: (100, 100, 0.2),  # left ear below 0.3: missing
             **{k: (288, 600, 0.7) for k in range(91, 112)},  # left hand (64, 92.125)
             **{k: (288, 300, 0.2) for k in range(23, 91)}}  # every face point weak: no face


def test_yolox_decodes_grids_and_strides_keeps_people_above_03_after_nms(tmp_path):
    from kekong.detect.learned.onnx_models import load_onnx

    net = load_onnx(str(yolox_file(tmp_path, [PERSON, PERSON_OVERLAP, PERSON_WEAK, DOG])), yolox.CONTRACT)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    assert np.allclose(yolox.detect(net, image, yolox.PERSON), [[44, 24, 84, 104]], atol=1e-3)
    assert np.allclose(yolox.detect(net, image, yolox.ANIMALS), [[6.4, 76.8, 57.6, 115.2]], atol=1e-3)
    (tmp_path / "empty").mkdir()
    nothing = load_onnx(str(yolox_file(tmp_path / "empty", [])), yolox.CONTRACT)
    assert yolox.detect(nothing, image, yolox.PERSON) is None  # nothing of any class
    letterboxed, ratio = yolox.letterbox(np.zeros((64, 128, 3), np.uint8))
    assert ratio == 5.0 and letterboxed.shape == (1, 3, 640, 640)
    assert letterboxed[0, :, :320].max() == 0 and np.all(letterboxed[0, :, 320:] == 114)  # scaled into the top


def test_the_top_down_crop_puts_the_box_centre_at_the_input_centre():
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[62:66, 62:66] = 255  # a dot at the box centre (64, 64)
    image[37:41, 50:54] = 255  # and one at (51.5, 39)
    centre, scale = rtmpose.box_centre_scale(np.array([44, 24, 84, 104]), (288, 384))
    assert np.allclose(centre, [64, 64]) and np.allclose(scale, [75, 100])
    crop = rtmpose.crop(image, centre, scale, (288, 384))
    assert crop.shape == (384, 288, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    centre_dot = (np.abs(xs - 144) < 12) & (np.abs(ys - 192) < 12)
    assert centre_dot.any() and ((np.abs(xs - 96) < 12) & (np.abs(ys - 96) < 12)).any()  # bins 192/2, 192/2


def test_simcc_decode_takes_argmax_bins_halved_and_the_smaller_peak():
    x = np.zeros((2, 20), np.float32)
    y = np.zeros((2, 30), np.float32)
    x[0, 7], y[0, 11] = 0.9, 0.6
    points, scores = rtmpose.simcc_decode(x, y)
    assert np.allclose(points[0], [3.5, 5.5]) and scores[0] == pytest.approx(0.6)
    assert np.allclose(points[1], [-0.5, -0.5]) and scores[1] == 0  # no peak: bin −1


def test_dw_openpose_full_maps_wholebody_to_openpose_and_draws_with_kekongs_renderer(tmp_path):
    folder = tmp_path / "models" / "annotators"
    yolox_file(folder, [PERSON, PERSON_OVERLAP, DOG])
    dw_file(folder, WHOLEBODY)
    result = run("dw_openpose_full", np.full((SIZE, SIZE, 3), 90, np.uint8), res=SIZE)
    people = result.data["people"]
    assert len(people) == 1 and result.data["canvas_width"] == SIZE
    body = np.asarray(people[0]["pose_keypoints_2d"]).reshape(18, 3)
    assert np.allclose(body[0], [64, 64, 0.9])  # nose stays 0
    assert np.allclose(body[1], [64, 39, 1.0])  # the neck: mean of the shoulders, present
    assert np.allclose(body[2], [76.5, 39, 0.8]) and np.allclose(body[5], [51.5, 39, 0.9])  # right 6 → 2, left 5
    assert np.all(body[17] == 0)  # COCO 3 (left ear) → OpenPose 17, below 0.3: missing
    hand = np.asarray(people[0]["hand_left_keypoints_2d"]).reshape(21, 3)
    assert np.allclose(hand[:, :2], [64, 92.125]) and people[0]["hand_right_keypoints_2d"] is None
    assert people[0]["face_keypoints_2d"] is None
    expected = draw_pose(PoseResult.from_json(result.data))  # kekong's renderer, as openpose_full draws
    assert result.image.shape == (SIZE, SIZE, 3) and np.array_equal(result.image, expected)
    assert tuple(result.image[64, 64]) == (255, 0, 0)  # the nose's red dot


def test_a_face_gets_the_eyes_as_points_69_and_70(tmp_path):
    folder = tmp_path / "models" / "annotators"
    yolox_file(folder, [PERSON])
    dw_file(folder, {**{k: (288, 300, 0.9) for k in range(23, 91)}, 1: (250, 250, 0.9), 2: (330, 250, 0.9)})
    face = np.asarray(run("dw_openpose_full", np.zeros((SIZE, SIZE, 3), np.uint8), res=SIZE)
                      .data["people"][0]["face_keypoints_2d"]).reshape(70, 3)
    assert np.allclose(face[:68, 1], 14 + 300 * 100 / 768)
    x = lambda b: 26.5 + b * 75 / 576  # noqa: E731
    assert face[68, 0] == pytest.approx(x(330), abs=1e-3) and face[69, 0] == pytest.approx(x(250), abs=1e-3)


def test_with_no_person_box_the_whole_image_is_the_box_and_with_nothing_no_one(tmp_path):
    folder = tmp_path / "models" / "annotators"
    dw_file(folder, {0: (432, 384, 0.9)})  # a quarter of the crop right of its centre
    yolox_file(folder, [DOG])
    nose = np.asarray(run("dw_openpose_full", np.zeros((SIZE, SIZE, 3), np.uint8), res=SIZE)
                      .data["people"][0]["pose_keypoints_2d"][:3])
    assert np.allclose(nose, [64 + 0.25 * 160, 64, 0.9])  # the box 0,0–128,128: 160 wide padded
    yolox_file(folder, [])
    result = run("dw_openpose_full", np.zeros((SIZE, SIZE, 3), np.uint8), res=SIZE, detector_weights=str(
        folder / "yolox_l.onnx"))
    assert result.data["people"] == [] and result.image.max() == 0


def test_animal_openpose_draws_the_ap10k_skeleton_in_the_extensions_colours(tmp_path):
    folder = tmp_path / "models" / "annotators"
    yolox_file(folder, [PERSON, DOG])
    # the dog box padded ×1.25 → 64×48, squared to 64×64 around (32, 96): x = bin/8, y = 64 + bin/8
    bins = {k: (64 + 16 * k, 256, 0.1 if k == 3 else 0.9) for k in range(17)}
    constant_model(folder / "rtmpose-m_simcc-ap10k_pt-aic-coco_210e-256x256-7a041aa1_20230206.onnx", "input",
                   [1, 3, 256, 256], simcc(17, bins, 512, 512))
    result = run("animal_openpose", np.zeros((SIZE, SIZE, 3), np.uint8), res=SIZE)
    animals = result.data["animals"]
    assert len(animals) == 1 and result.data["people"] == []
    points = np.asarray(animals[0]).reshape(17, 3)
    assert np.allclose(points[:, 0], [(64 + 16 * k) / 8 for k in range(17)]) and np.allclose(points[:, 1], 96)
    assert np.all(points[:, 2] == 1.0)  # every point kept, a weak one too (the extension draws them all)
    expected = draw_animals([np.concatenate([points[:, :2], np.ones((17, 1))], axis=1)], SIZE, SIZE)
    assert np.array_equal(result.image, expected)
    skeleton = np.tile([100.0, 100.0, 1.0], (17, 1))
    skeleton[0, :2], skeleton[1, :2] = (10, 10), (50, 10)
    drawn = draw_animals([skeleton], SIZE, SIZE)
    assert tuple(drawn[10, 30]) == AP10K_COLOURS[0] and tuple(drawn[12, 30]) == AP10K_COLOURS[0]  # 5 px wide
    assert tuple(drawn[16, 30]) == (0, 0, 0)


def test_missing_and_unfitting_files_are_named(tmp_path):
    folder = tmp_path / "models" / "annotators"
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(MissingWeightsError, match=r"yolox_l\.onnx.*yzd-v/DWPose.*openpose_full"):
        run("dw_openpose_full", image, res=64)
    yolox_file(folder, [PERSON])
    with pytest.raises(MissingWeightsError, match=r"dw-ll_ucoco_384\.onnx"):
        run("dw_openpose_full", image, res=64)
    with pytest.raises(MissingWeightsError, match=r"rtmpose-m_simcc-ap10k.*qinglong"):
        run("animal_openpose", image, res=64)
    wrong = dw_file(tmp_path, {}, name="seventeen.onnx", points=17)  # an AP-10K-sized head for DW-Pose
    with pytest.raises(KekongError, match=r"seventeen\.onnx: does not fit the RTMPose whole-body"):
        run("dw_openpose_full", image, res=64, weights=str(wrong))
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(KekongError, match=r"text\.onnx: not a readable ONNX model"):
        run("dw_openpose_full", image, res=64, weights=str(tmp_path / "text.onnx"))


def test_the_cli_writes_the_map_and_the_openpose_json(tmp_path):
    from kekong.io import save_image

    folder = tmp_path / "models" / "annotators"
    yolox_file(folder, [PERSON])
    dw_file(folder, WHOLEBODY)
    save_image(np.full((SIZE, SIZE, 3), 90, np.uint8), tmp_path / "in.png")
    outcome = CliRunner().invoke(app, ["detect", str(tmp_path / "in.png"), "-k", "dw_openpose_full", "-o",
                                       str(tmp_path / "map.png"), "--res", str(SIZE), "--json",
                                       str(tmp_path / "pose.json")])
    assert outcome.exit_code == 0, outcome.output
    pose = json.loads((tmp_path / "pose.json").read_text())
    assert np.allclose(pose["people"][0]["pose_keypoints_2d"][3:6], [64, 39, 1.0])


def test_fidelity_scores_dw_pose_as_openpose():
    from kekong.fidelity import family

    assert family("dw_openpose_full") == "openpose" and family("animal_openpose") is None


def test_the_contracts_are_the_released_files_inputs_and_outputs():
    """Written from the extension's code and the files' exports: YOLOX-L `images` 1×3×640×640 → `output`
    1×8400×85 (80 COCO classes); DW-Pose `input` N×3×384×288 → `simcc_x` N×133×576, `simcc_y` N×133×768;
    AP-10K 256×256 → 17×512 twice."""
    from kekong.detect.learned.dwpose import ANIMAL_CONTRACT, DW_CONTRACT

    assert yolox.CONTRACT.input_chw == (3, 640, 640) and yolox.CONTRACT.outputs == ((8400, 85),)
    assert DW_CONTRACT.input_chw == (3, 384, 288) and DW_CONTRACT.outputs == ((133, 576), (133, 768))
    assert ANIMAL_CONTRACT.input_chw == (3, 256, 256) and ANIMAL_CONTRACT.outputs == ((17, 512), (17, 512))
