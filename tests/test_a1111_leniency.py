"""What A1111 clients send is accepted where A1111 is lenient — unknown fields ignored and named
in `info.kekong.warnings` — and refused by name where kekong would not honour a value; `styles`
and `infotext` work as A1111's do."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from kekong.server.app import create_app
from kekong.server.config import ServerConfig
from tests.server_helpers import b64_png, star_outline

SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 4, "cfg_scale": 2}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("lenient")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nsky,"{prompt}, on a light blue background",text\n')
    patch = pytest.MonkeyPatch()
    patch.setenv("KEKONG_DATA_DIR", str(data))
    with TestClient(create_app(ServerConfig(data_dir=data / "store", ui=False))) as client:
        yield client
    patch.undo()


def info(response) -> dict:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])


def test_the_extensions_own_payload_fields_are_accepted(client):
    unit = {"module": "none", "image": b64_png(star_outline()), "batch_mask_dir": None, "brand_new_field": 1}
    answer = client.post("/sdapi/v1/txt2img", json={"prompt": "a red star", **SMALL, "seed_enable_extras": True,
                                                    "resize_mode": 1, "future_option": "x",
                                                    "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    warnings = info(answer)["kekong"]["warnings"]
    assert "ignored unknown field(s) future_option, resize_mode" in warnings
    assert any("args[0]: ignored unknown field(s) brand_new_field" in w for w in warnings)


@pytest.mark.parametrize(("field", "value"), [
    ("inpaint_crop_input_image", False), ("input_mode", "batch"), ("animatediff_batch", True),
    ("pulid_mode", "Extremely style"), ("batch_mask_dir", "/masks"),
])
def test_unit_values_kekong_would_not_honour_are_refused_by_name(client, field, value):
    unit = {"module": "none", "image": b64_png(star_outline()), field: value}
    answer = client.post("/sdapi/v1/txt2img", json={"prompt": "x", **SMALL,
                                                    "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    assert answer.status_code == 422 and f"args[0].{field}" in answer.json()["detail"]


def test_styles_merge_into_the_prompts(client):
    text = info(client.post("/sdapi/v1/txt2img", json={"prompt": "a red star", "styles": ["sky"], **SMALL}))
    assert text["prompt"] == "a red star, on a light blue background" and text["negative_prompt"] == "text"


def test_an_infotext_fills_what_the_client_did_not_send(client):
    infotext = ("a yellow heart\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, CFG scale: 3, Seed: 99, "
                "Size: 64x64, Model: kekong-shapes, Emphasis: Original")
    text = info(client.post("/sdapi/v1/txt2img", json={"infotext": infotext, "seed": 5}))
    assert text["prompt"] == "a yellow heart" and text["negative_prompt"] == "blurry"
    assert text["steps"] == 3 and text["cfg_scale"] == 3 and text["sampler_name"] == "Euler"
    assert text["seed"] == 5  # sent: the client's value wins
    assert any("Emphasis: Original" in w for w in text["kekong"]["warnings"])
    missing = client.post("/sdapi/v1/txt2img", json={"infotext": infotext.replace("kekong-shapes", "dreamshaper_8")})
    assert missing.status_code == 422 and "base model dreamshaper_8" in missing.json()["detail"]
