"""The A1111 routes, driven the way existing A1111 + sd-webui-controlnet clients drive them,
against the shipped kekong-shapes model (64 px, a second or two per image)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kekong.server.app import create_app
from kekong.server.config import Limits, ServerConfig
from tests.server_helpers import b64_png, decode, info, star_outline

SMALL = {"width": 64, "height": 64, "steps": 4}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("server"), ui=False,
                          limits=Limits(max_body_bytes=2 * 2**20))
    with TestClient(create_app(config)) as client:
        yield client


@pytest.fixture(scope="module")
def outline_b64():
    return b64_png(star_outline())


def test_txt2img_answers_in_a1111_shape(client):
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "a red star on a white background", "seed": 7,
                                                      "batch_size": 2, **SMALL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"images", "parameters", "info"}
    assert len(body["images"]) == 2 and body["parameters"]["prompt"] == "a red star on a white background"
    details = info(response)
    assert details["all_seeds"] == [7, 8] and details["sd_model_name"] == "kekong-shapes"
    assert details["sampler_name"] == "Euler" and details["steps"] == 4  # A1111's API defaults, then the payload
    image = decode(body["images"][0])
    assert image.size == (64, 64)
    assert image.info["parameters"] == details["infotexts"][0]  # stamped with its infotext
    assert "Seed: 7" in details["infotexts"][0]


def test_every_field_at_its_default_is_accepted(client):
    """What A1111's own UI-built clients send: all fields, most at their defaults."""
    payload = {
        "prompt": "a blue circle", "negative_prompt": "", "styles": [], "seed": 3, "subseed": -1,
        "subseed_strength": 0, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "sampler_name": "DPM++ 2M",
        "scheduler": "Karras", "batch_size": 1, "n_iter": 1, "cfg_scale": 7, "restore_faces": False,
        "tiling": False, "do_not_save_samples": False, "do_not_save_grid": False, "eta": None,
        "denoising_strength": 0.7, "s_min_uncond": 0, "s_churn": 0, "s_tmax": None, "s_tmin": 0, "s_noise": 1,
        "override_settings": {}, "override_settings_restore_afterwards": True, "refiner_checkpoint": None,
        "refiner_switch_at": None, "disable_extra_networks": False, "comments": {}, "enable_hr": False,
        "firstphase_width": 0, "firstphase_height": 0, "hr_scale": 2, "hr_upscaler": None,
        "hr_second_pass_steps": 0, "hr_resize_x": 0, "hr_resize_y": 0, "hr_checkpoint_name": None,
        "hr_sampler_name": None, "hr_prompt": "", "hr_negative_prompt": "", "sampler_index": "Euler",
        "script_name": None, "script_args": [], "send_images": True, "save_images": False, "alwayson_scripts": {},
        "infotext": None, **SMALL,
    }
    response = client.post("/sdapi/v1/txt2img", json=payload)
    assert response.status_code == 200, response.text
    assert "Schedule type: Karras" in info(response)["infotexts"][0]


def test_controlnet_unit_with_old_field_names(client, outline_b64):
    """Deprecated aliases and integer enums, as old clients send them; the script name in any case."""
    unit = {"input_image": outline_b64, "module": "none", "model": "kekong-shapes-outline [5a3230e5]",
            "lowvram": True, "guidance": 0.8, "guessmode": True, "resize_mode": 0, "processor_res": 64,
            "threshold_a": 64, "threshold_b": 64}
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "a red star", "seed": 1, **SMALL,
                                                      "alwayson_scripts": {"ControlNet": {"args": [unit]}}})
    assert response.status_code == 200, response.text
    text = info(response)["infotexts"][0]
    assert "Guidance End: 0.8" in text and "Control Mode: ControlNet is more important" in text
    assert "Resize Mode: Just Resize" in text and "Model: kekong-shapes-outline" in text
    assert len(response.json()["images"]) == 1  # module none: no detected map to append


def test_detected_maps_are_appended_unless_asked_not_to(client):
    photo = b64_png(np.where(star_outline() > 0, 40, 230).astype(np.uint8))  # a dark star drawn on paper
    unit = {"image": {"image": photo, "mask": None}, "module": "scribble_sketch", "model": "kekong-shapes-outline",
            "control_mode": "Balanced", "enabled": True}
    payload = {"prompt": "a red star", **SMALL, "alwayson_scripts": {"controlnet": {"args": [unit]}}}
    with_map = client.post("/sdapi/v1/txt2img", json=payload)
    assert with_map.status_code == 200, with_map.text
    assert len(with_map.json()["images"]) == 2
    assert decode(with_map.json()["images"][1]).size == (64, 64)  # the detected map, at the generation size
    unit["save_detected_map"] = False
    without = client.post("/sdapi/v1/txt2img", json=payload)
    assert len(without.json()["images"]) == 1


def test_disabled_units_do_nothing(client, outline_b64):
    unit = {"enabled": False, "image": outline_b64, "module": "canny", "model": "None"}
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "x", **SMALL,
                                                      "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    assert response.status_code == 200
    assert "ControlNet" not in info(response)["infotexts"][0]


def test_img2img_with_mask_and_init_images_returned(client):
    init = b64_png(np.full((64, 64, 3), 200, np.uint8))
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[16:48, 16:48] = 255
    response = client.post("/sdapi/v1/img2img", json={
        "prompt": "a red square", "init_images": [init], "mask": b64_png(mask), "denoising_strength": 0.6,
        "inpainting_fill": 1, "inpaint_full_res": 0, "mask_blur": 2, "include_init_images": True, **SMALL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["images"]) == 2 and body["images"][1] == init
    assert body["parameters"]["init_images"] is None  # as A1111: not echoed back
    assert "Denoising strength: 0.6" in info(response)["infotexts"][0]
    wide = b64_png(np.full((32, 96, 3), 200, np.uint8))
    for mode in (1, 2):  # Crop and resize, Resize and fill
        fitted = client.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [wide], "resize_mode": mode,
                                                        **SMALL})
        assert fitted.status_code == 200, fitted.text
    latent = client.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [wide], "resize_mode": 3, **SMALL})
    assert latent.status_code == 422 and "resize mode 3" in latent.json()["detail"]


@pytest.mark.parametrize(("field", "value", "named"), [
    ("restore_faces", True, "restore_faces"),
    ("tiling", True, "tiling"),
    ("styles", ["my style"], "styles: my style not found"),
    ("refiner_checkpoint", "/models/sdxl_refiner.safetensors", "refiner_checkpoint"),
    ("script_name", "prompt matrix", "script_name"),  # the X/Y/Z plot runs (test_server_xyz.py)
    ("override_settings", {"sd_hypernetwork": "x"}, "override_settings.sd_hypernetwork"),
    ("alwayson_scripts", {"ADetailer": {"args": [{"ad_model": "face_yolov8n.pt"}]}}, "alwayson_scripts.ADetailer"),
    ("eta", 0.5, "eta"),
    ("s_churn", 1.0, "s_churn"),
])
def test_a_value_kekong_would_not_honour_is_an_error_naming_the_field(client, field, value, named):
    payload = {"prompt": "x", "sampler_name": "Euler a", **SMALL, field: value}
    response = client.post("/sdapi/v1/txt2img", json=payload)
    assert response.status_code == 422
    assert named in response.json()["detail"]


@pytest.mark.parametrize(("unit", "named"), [
    ({"module": "canny", "advanced_weighting": [1.0] * 13}, "advanced_weighting"),
    ({"module": "canny", "union_control_type": "Depth"}, "union_control_type"),
    ({"module": "canny", "image": "not base64!"}, "args[0].image"),
    ({"module": "cany"}, "did you mean: canny"),
    ({"module": "ip-adapter_clip_sd15"}, "IP-Adapter"),
    ({"module": "canny", "model": "../../etc/passwd"}, "not a model name"),
    ({"module": "canny", "input_image": "x", "image": "y"}, "both 'input_image'"),
    ({"module": "canny", "guidance_start": 0.9, "guidance_end": 0.2}, "guidance start"),
])
def test_bad_control_units_are_refused_by_name(client, outline_b64, unit, named):
    unit = {"image": outline_b64, **unit}
    payload = {"prompt": "x", **SMALL, "alwayson_scripts": {"controlnet": {"args": [unit]}}}
    response = client.post("/sdapi/v1/txt2img", json=payload)
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"]


def test_malformed_requests_are_4xx_with_a_message(client):
    not_json = client.post("/sdapi/v1/txt2img", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and "malformed JSON" in not_json.json()["detail"]
    corrupt = client.post("/sdapi/v1/img2img", json={"init_images": [b64_png(np.zeros((8, 8, 3), np.uint8))[:40]]})
    assert corrupt.status_code == 422 and "init_images[0]" in corrupt.json()["detail"]
    too_many = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 151})
    assert too_many.status_code == 422 and "steps" in too_many.json()["detail"]
    batch = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "batch_size": 8, "n_iter": 2, **SMALL})
    assert batch.status_code == 422 and "at most 8 images" in batch.json()["detail"]
    unknown_model = client.post("/sdapi/v1/txt2img", json={"override_settings": {"sd_model_checkpoint": "nope"}})
    assert unknown_model.status_code == 404 and "nope" in unknown_model.json()["detail"]
    huge = client.post("/sdapi/v1/txt2img", content=b"{" + b" " * (3 * 2**20) + b"}",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413


def test_options_read_write_and_drive_defaults(client):
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == "kekong-shapes"
    assert client.post("/sdapi/v1/options", json={"randn_source": "NV"}).status_code == 200
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "x", **SMALL})
    assert "RNG: NV" in info(response)["infotexts"][0]
    client.post("/sdapi/v1/options", json={"randn_source": "CPU"})
    assert client.post("/sdapi/v1/options", json={"show_progress_type": "Approx cheap"}).status_code == 200
    approx_nn = client.post("/sdapi/v1/options", json={"show_progress_type": "Approx NN"})
    assert approx_nn.status_code == 422 and "TAESD" in approx_nn.json()["detail"]
    client.post("/sdapi/v1/options", json={"show_progress_type": "TAESD"})
    refused = client.post("/sdapi/v1/options", json={"sd_checkpoint_cache": 3})
    assert refused.status_code == 422 and "sd_checkpoint_cache" in refused.json()["detail"]


def test_listing_routes(client):
    models = client.get("/sdapi/v1/sd-models").json()
    assert models[0]["model_name"] == "kekong-shapes" and models[0]["title"].startswith("kekong-shapes [")
    assert "Euler a" in [s["name"] for s in client.get("/sdapi/v1/samplers").json()]
    assert "Karras" in [s["label"] for s in client.get("/sdapi/v1/schedulers").json()]
    assert client.get("/sdapi/v1/sd-vae").json() == []  # none in this machine's models folder
    assert "Lanczos" in [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
    assert "Latent (bicubic)" in [m["name"] for m in client.get("/sdapi/v1/latent-upscale-modes").json()]
    assert client.get("/controlnet/version").json()["version"] >= 2
    assert any(m.startswith("kekong-shapes-outline [") for m in client.get("/controlnet/model_list").json()
               ["model_list"])
    modules = client.get("/controlnet/module_list").json()
    assert "canny" in modules["module_list"]  # model_free is the extension's: needs no ControlNet model
    detail = modules["module_detail"]
    assert not detail["canny"]["model_free"] and detail["reference_only"]["model_free"]
    types = client.get("/controlnet/control_types").json()["control_types"]
    assert "canny" in types["Canny"]["module_list"]
    assert types["Revision"]["kekong_support"]["sdxl"].startswith("refused")
    assert types["IP-Adapter"]["kekong_support"]["sdxl"].startswith("IP-Adapter")


def test_detect_and_render_openpose(client, astronaut):
    canny = client.post("/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images":
                                                    [b64_png(astronaut)], "controlnet_processor_res": 256,
                                                    "controlnet_threshold_a": 50, "controlnet_threshold_b": 120})
    assert canny.status_code == 200 and canny.json()["info"] == "Success"
    assert decode(canny.json()["images"][0]).size == (256, 256)
    pose = client.post("/controlnet/detect", json={"controlnet_module": "openpose", "controlnet_input_images":
                                                   [b64_png(astronaut)]}).json()
    people = pose["poses"][0]["people"]
    assert len(people) == 1
    rendered = client.post("/controlnet/render_openpose_json", json=[pose["poses"][0]]).json()
    assert decode(rendered["images"][0]).size == (512, 512)
    bad = client.post("/controlnet/render_openpose_json", json=[{"people": "nobody"}])
    assert bad.status_code == 422


def test_png_info_reads_what_txt2img_wrote(client):
    made = client.post("/sdapi/v1/txt2img", json={"prompt": "a green triangle", "seed": 5, **SMALL}).json()
    answer = client.post("/sdapi/v1/png-info", json={"image": made["images"][0]}).json()
    assert answer["parameters"]["Prompt"] == "a green triangle" and answer["parameters"]["Seed"] == "5"
    assert "kekong-recipe" in answer["items"]


def test_interrogate_structure_runs_offline(client, astronaut):
    answer = client.post("/sdapi/v1/interrogate", json={"image": b64_png(astronaut), "model": "structure"})
    assert answer.status_code == 200 and "one person" in answer.json()["caption"]


def test_refiner_checkpoint_is_honoured(client):
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "a red star", **SMALL, "refiner_checkpoint":
                                                      "kekong-shapes [f14907e277]", "refiner_switch_at": 0.5})
    assert response.status_code == 200, response.text
    text = info(response)["infotexts"][0]
    assert "Refiner: kekong-shapes [" in text and "Refiner switch at: 0.5" in text
