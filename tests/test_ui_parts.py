"""The UI's pure parts: the request it builds from its widgets, the mask it reads from the image
editor, and the pose editor's JSON operations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kekong.errors import ParameterError
from kekong.request import build_request
from kekong.ui import pose_editor
from kekong.ui.app import UI, enlarged, mask_from_editor


def test_a_drawn_mask_becomes_white_where_painted():
    layer = np.zeros((32, 32, 4), np.uint8)
    layer[8:16, 8:16] = (255, 255, 255, 255)
    mask = mask_from_editor({"background": np.zeros((32, 32, 3), np.uint8), "layers": [layer]})
    assert mask.shape == (32, 32, 3) and mask[10, 10, 0] == 255 and mask[0, 0, 0] == 0
    assert mask_from_editor({"background": None, "layers": [np.zeros((32, 32, 4), np.uint8)]}) is None


def test_widgets_become_a_valid_request():
    image = np.zeros((64, 64, 3), np.uint8)
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[:32] = 255
    unit = (True, image, "canny", "kekong-shapes-outline [5a3230e5]", 0.8, 0.0, 0.7, "Balanced", "Just Resize", 256,
            None, False)
    disabled = (False, image, "none", "Automatic", 1, 0, 1, "Balanced", "Crop and Resize", 512, None, False)
    fields = UI(None).fields("a red star", "", "Euler a", 10, 7, 3, 64, 64, 1,
                             {"background": image, "layers": [layer]}, 0.5, [unit, disabled, disabled])
    request = build_request(**fields)
    assert request.mode == "inpaint" and request.denoising_strength == 0.5
    [control] = request.controls
    assert control.model == "kekong-shapes-outline" and control.end == 0.7 and control.res == 256


def test_step_previews_are_enlarged_for_the_eye():
    assert enlarged(np.zeros((8, 8, 3), np.uint8)).shape == (256, 256, 3)


def test_pose_editor_adds_removes_and_checks_people():
    pose = pose_editor.add_person(pose_editor.empty_pose(256, 256))
    pose = pose_editor.add_person(pose)
    people = json.loads(pose)["people"]
    assert len(people) == 2 and len(people[0]["pose_keypoints_2d"]) == 54
    assert people[0]["pose_keypoints_2d"][0] != people[1]["pose_keypoints_2d"][0]  # side by side
    assert len(json.loads(pose_editor.remove_person(pose))["people"]) == 1
    assert pose_editor.render(pose).shape == (256, 256, 3)
    with pytest.raises(ParameterError, match="malformed"):
        pose_editor.parse("{not json")
    with pytest.raises(Exception, match="pose_keypoints_2d has 3 values"):
        pose_editor.parse(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))


def test_hires_and_refiner_settings_join_the_request_only_when_on():
    assert UI.extras(False, 2, "Latent", 0, 0.7, "None", 0.8) == {}
    fields = UI.extras(True, 1.5, "Lanczos", 10, 0.5, "kekong-shapes [f14907e277]", 0.6)
    request = build_request(prompt="x", **fields)
    assert request.enable_hr and request.hr_upscaler == "Lanczos" and request.hr_second_pass_steps == 10
    assert request.refiner == "kekong-shapes" and request.refiner_switch_at == 0.6


def test_checkpoint_vae_schedule_and_batch_count_join_the_request():
    assert UI.base("kekong-shapes [2a90ce719c]", "Automatic", "Automatic", 1) == {"scheduler": "Automatic",
                                                                                   "batch_count": 1}
    fields = UI.base("other-model [0123456789]", "my-vae", "Karras", 3)
    request = build_request(prompt="x", **fields)
    assert request.model == "other-model" and request.vae == "my-vae" and request.scheduler == "Karras"
    assert request.batch_count == 3


def test_pixel_perfect_is_sent_per_unit():
    image = np.zeros((64, 64, 3), np.uint8)
    unit = (True, image, "none", "Automatic", 1, 0, 1, "Balanced", "Crop and Resize", 512, None, True)
    plain = (True, image, "none", "Automatic", 1, 0, 1, "Balanced", "Crop and Resize", 512, None, False)
    fields = UI(None).fields("x", "", "Euler a", 10, 7, 3, 64, 64, 1, None, 0.5, [unit, plain])
    request = build_request(**fields)
    assert [c.pixel_perfect for c in request.controls] == [True, False]


def test_picked_image_details_show_no_server_path():
    from types import SimpleNamespace

    from kekong.ui.app import without_paths

    verdict = SimpleNamespace(file="/srv/store/jobs/ab/00001.png",
                              watermark={"made_here": {"path": "/home/me/out/star.png"}})
    text = without_paths("/srv/store/jobs/ab/00001.png\n  watermark: … made on this machine as /home/me/out/star.png",
                         verdict)
    assert "/srv" not in text and "/home" not in text and "00001.png" in text and "star.png" in text
