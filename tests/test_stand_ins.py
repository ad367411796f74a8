"""Every learned detector without its weights: the error's offline stand-in really runs offline,
and the parameter it tells the user to set is one the detector has."""

import re

import numpy as np
import pytest

from kekong.detect import list_detectors, run
from kekong.errors import MissingWeightsError

DETECTORS = {d.name: d for d in list_detectors()}
LEARNED = sorted(name for name, d in DETECTORS.items() if d.needs_weights)


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def _missing(name: str) -> str:
    image = np.full((64, 64, 3), 128, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    with pytest.raises(MissingWeightsError) as error:
        run(name, image, mask=mask) if name.startswith("inpaint") else run(name, image)
    return str(error.value)


@pytest.mark.parametrize("name", LEARNED)
def test_the_offered_stand_in_needs_no_weights(name):
    message = _missing(name)
    offered = re.search(r"[Oo]ffline stand-in(?: that needs no weights)?: (.*?)\.(?: |$)", message)
    if offered is None or offered.group(1).startswith("none"):
        return
    for choice in offered.group(1).split(" / "):
        stand_in, _, setting = choice.partition(" ")
        assert stand_in in DETECTORS, f"{name}: stand-in {stand_in!r} is no detector"
        if DETECTORS[stand_in].needs_weights:  # only with a setting that skips its weights (input_is_depth)
            assert setting == "(input_is_depth=true)", f"{name}: stand-in {stand_in} needs weights itself"


@pytest.mark.parametrize("name", LEARNED)
def test_the_parameter_named_for_the_path_is_the_detectors(name):
    message = _missing(name)
    named = set(re.findall(r"-p (\w+)=", message))
    assert named, message
    assert named <= {p.name for p in DETECTORS[name].params}, (name, named)


def test_the_depth_estimators_say_there_is_no_offline_depth():
    for name in ("depth_zoe", "depth_leres", "depth_leres++"):
        assert "stand-in that needs no weights: none for depth" in _missing(name)


def test_dw_pose_names_detector_weights_for_the_yolox_file():
    message = _missing("dw_openpose_full")
    assert "yolox_l.onnx" in message and "-p detector_weights=PATH" in message
