"""OpenPose from mediapipe: keypoints where they are, JSON round trip, OpenPose colours."""

import json

import numpy as np
import pytest

from kekong.detect import run
from kekong.detect.openpose import PoseResult, render_json
from kekong.detect.openpose.keypoints import BODY_NAMES, Person, empty
from kekong.detect.openpose.mediapipe_pose import _attach_hands
from kekong.detect.openpose.render import COLORS, HAND_POINT_COLOR
from kekong.errors import KekongError


def body_points(data: dict, person: int = 0) -> dict[str, tuple[float, float] | None]:
    values = np.array(data["people"][person]["pose_keypoints_2d"]).reshape(18, 3)
    return {name: (tuple(v[:2]) if v[2] > 0 else None) for name, v in zip(BODY_NAMES, values, strict=False)}


@pytest.fixture(scope="module")
def astronaut_full(astronaut):
    return run("openpose_full", astronaut)


def test_astronaut_keypoints_are_where_they_are(astronaut_full):
    points = body_points(astronaut_full.data)
    nose_x, nose_y = points["nose"]
    assert 200 < nose_x < 250 and 105 < nose_y < 150  # her nose in the 512×512 photo
    # Eyes above the nose, her right eye on the image's left.
    assert points["right_eye"][0] < nose_x < points["left_eye"][0]
    assert points["right_eye"][1] < nose_y and points["left_eye"][1] < nose_y
    # Shoulders well below and either side of the face.
    assert points["right_shoulder"][0] < nose_x - 60 < nose_x + 60 < points["left_shoulder"][0]
    assert points["right_shoulder"][1] > nose_y + 60 and points["left_shoulder"][1] > nose_y + 60
    neck = points["neck"]
    assert points["right_shoulder"][0] < neck[0] < points["left_shoulder"][0]


def test_face_has_70_points_in_openpose_order(astronaut_full):
    face = np.array(astronaut_full.data["people"][0]["face_keypoints_2d"]).reshape(70, 3)[:, :2]
    jaw, right_eye, left_eye = face[0:17], face[36:42], face[42:48]
    assert jaw[0, 0] < jaw[16, 0] and jaw[8, 1] == jaw[:, 1].max()  # ear to ear, chin lowest
    assert right_eye[:, 0].max() < left_eye[:, 0].min()  # her right eye on the image's left
    for pupil, eye in ((face[68], right_eye), (face[69], left_eye)):
        assert np.all(pupil >= eye.min(axis=0) - 2) and np.all(pupil <= eye.max(axis=0) + 2)
    assert face[30, 1] > right_eye[:, 1].mean()  # nose tip below the eyes
    assert face[57, 1] > face[33, 1]  # lower lip below the nose


def test_skeleton_uses_openpose_colours(astronaut_full, astronaut):
    drawn = run("openpose", astronaut).image
    x, y = (int(v) for v in body_points(astronaut_full.data)["nose"])
    assert tuple(drawn[y, x]) == COLORS[0]  # keypoint circles in full colour
    neck, shoulder = body_points(astronaut_full.data)["neck"], body_points(astronaut_full.data)[
        "right_shoulder"]
    mid = int((neck[0] + shoulder[0]) / 2), int((neck[1] + shoulder[1]) / 2)
    assert tuple(drawn[mid[1], mid[0]]) == tuple(int(c * 0.6) for c in COLORS[0])  # limbs at 60%
    # cv2 draws without anti-aliasing: only the palette (full and dimmed) and black appear.
    colours = {tuple(int(v) for v in c) for c in np.unique(drawn.reshape(-1, 3), axis=0)}
    palette = {*COLORS, *(tuple(int(c * 0.6) for c in k) for k in COLORS), (0, 0, 0)}
    assert colours <= palette


def test_json_round_trips_and_renders_the_same_map(astronaut_full):
    data = astronaut_full.data
    again = PoseResult.from_json(json.dumps(data)).to_json()
    assert again["canvas_width"] == 512 and again["canvas_height"] == 512
    for key in ("pose_keypoints_2d", "face_keypoints_2d"):
        assert np.allclose(again["people"][0][key], data["people"][0][key], atol=1e-3)
    assert np.array_equal(render_json(data), astronaut_full.image)


def test_normalised_json_and_bad_json():
    pose = {"people": [{"pose_keypoints_2d": [0.5, 0.2, 1.0, 0.5, 0.4, 1.0] + [0] * 48}],
            "canvas_width": 100, "canvas_height": 200}
    parsed = PoseResult.from_json(pose)
    assert np.allclose(parsed.people[0].body[0, :2], (0.5, 0.2))
    assert np.isnan(parsed.people[0].body[2, 0])  # 0,0,0 means missing
    drawn = render_json(pose)
    assert drawn.shape == (200, 100, 3) and tuple(drawn[40, 50]) == COLORS[0]
    with pytest.raises(KekongError, match="expected 54"):
        PoseResult.from_json({"people": [{"pose_keypoints_2d": [1, 2, 3]}]})
    with pytest.raises(KekongError, match="malformed"):
        PoseResult.from_json("{not json")


def test_several_people_are_found(astronaut):
    twins = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    people = run("openpose", twins).data["people"]
    noses = sorted(body_points({"people": people}, i)["nose"][0] for i in range(len(people)))
    assert len(people) == 2 and noses[0] < 512 < noses[1]


def test_hands_go_to_the_nearest_wrist_despite_mirrored_labels():
    person = Person(body=empty(18))
    person.body[4] = (0.3, 0.5, 1)  # her right wrist on the image's left
    person.body[7] = (0.7, 0.5, 1)
    hand = np.zeros((21, 3), np.float32)
    hand[:, 0], hand[:, 1] = np.linspace(0.29, 0.25, 21), np.linspace(0.51, 0.6, 21)
    _attach_hands([person], [(hand, "left")])  # a wrong label loses to position
    assert person.right_hand is not None and person.left_hand is None
    loose: list[Person] = []
    _attach_hands(loose, [(hand, "right")])  # no body: the label decides
    assert loose[0].right_hand is not None


def test_hand_rendering_uses_openpose_hand_style():
    hand = [v for i in range(21) for v in (100 + 3 * i, 100 + 2 * i, 1.0)]
    drawn = render_json({"people": [{"hand_right_keypoints_2d": hand}],
                         "canvas_width": 256, "canvas_height": 256})
    assert tuple(drawn[100, 100]) == HAND_POINT_COLOR


def test_no_person_gives_an_empty_black_map(coffee):
    result = run("openpose", coffee)
    assert result.data["people"] == [] and result.image.max() == 0


def test_face_only_draws_white_face_dots_without_a_body(astronaut):
    result = run("openpose_faceonly", astronaut)
    person = result.data["people"][0]
    assert person["face_keypoints_2d"] and person["pose_keypoints_2d"] is None
    colours = {tuple(int(v) for v in c) for c in np.unique(result.image.reshape(-1, 3), axis=0)}
    assert colours == {(0, 0, 0), (255, 255, 255)}
