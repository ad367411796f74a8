"""Model-carried defaults: a setting the user left out takes the model's recommendation
(the shipped kekong-shapes recommends CFG 2), else A1111's default; what the user sets wins."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

import kekong
from kekong.errors import ParameterError
from kekong.generation.defaults import model_defaults, read_recommended, with_model_defaults
from kekong.request import build_request
from kekong.server.app import create_app
from kekong.server.config import ServerConfig

SMALL = {"prompt": "a red star on a light blue background", "width": 64, "height": 64, "steps": 3, "seed": 5}


def test_the_shipped_model_recommends_cfg_2():
    assert model_defaults(None) == {"cfg_scale": 2.0}
    assert model_defaults("kekong-shapes") == {"cfg_scale": 2.0}
    assert model_defaults("no-such-model") == {}  # loading it names the problem, not this


def test_unset_fields_take_the_recommendation_and_set_ones_win():
    assert with_model_defaults(build_request(prompt="x")).cfg_scale == 2.0
    assert with_model_defaults(build_request(prompt="x", cfg_scale=7)).cfg_scale == 7.0
    assert build_request(prompt="x").cfg_scale == 7.0  # the declared default is A1111's


def test_a_combined_sampler_name_keeps_its_schedule():
    request = build_request(sampler="DPM++ 2M Karras")
    assert with_model_defaults(request, {"scheduler": "Exponential"}).scheduler == "Karras"
    assert with_model_defaults(build_request(), {"scheduler": "Exponential"}).scheduler == "Exponential"


def test_the_image_and_its_infotext_use_the_recommended_value():
    [unset] = kekong.generate(**SMALL)
    [two] = kekong.generate(**SMALL, cfg_scale=2)
    [seven] = kekong.generate(**SMALL, cfg_scale=7)
    assert unset.request.cfg_scale == 2.0
    assert np.array_equal(unset.image, two.image)
    assert not np.array_equal(unset.image, seven.image)


def test_bad_settings_files_are_named(tmp_path):
    file = tmp_path / "kekong.json"
    file.write_text(json.dumps({"recommended": {"cfg_scale": 100}}))
    with pytest.raises(ParameterError, match=r"kekong.json: recommended settings: .*cfg_scale"):
        read_recommended(file)
    file.write_text(json.dumps({"recommended": {"prompt": "always this"}}))
    with pytest.raises(ParameterError, match="cannot recommend prompt"):
        read_recommended(file)
    file.write_text("{not json")
    with pytest.raises(ParameterError, match="not a readable kekong settings file"):
        read_recommended(file)


def test_kekong_api_applies_the_recommendation_and_a1111_keeps_its_default(tmp_path):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path, ui=False))) as client:
        job = client.post("/v1/jobs", json={"prompt": "x", "width": 64, "height": 64, "steps": 1}).json()
        stored = client.app.state.services.store.get(job["id"]).payload["request"]
        assert stored["cfg_scale"] == 2.0
        answer = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1})
        assert json.loads(answer.json()["info"])["cfg_scale"] == 7.0
