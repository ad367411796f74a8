"""The A1111 routes clients call at start-up (webuiapi wraps each): answers in A1111 1.10's shapes,
files named without their folders, and the Extras upscale bounded and honest about what it lacks."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file

from kekong.server.app import create_app
from kekong.server.config import ServerConfig
from tests.server_helpers import b64_png


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("a1111-extra")
    models, data = root / "models", root / "data"
    (models / "Lora").mkdir(parents=True)
    (models / "embeddings").mkdir()
    data.mkdir()
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 4)}, str(models / "Lora" / "inkstyle.safetensors"),
              metadata={"ss_output_name": "inkstyle", "ss_network_dim": "4"})
    save_file({"emb_params": torch.zeros(2, 768)}, str(models / "embeddings" / "badhands.safetensors"))
    (models / "embeddings" / "broken.safetensors").write_bytes(b"not a file")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nink,"{prompt}, ink wash",blurry\n'
                                     'plain,"studio light",\n')
    patch = pytest.MonkeyPatch()
    patch.setenv("KEKONG_MODELS_DIR", str(models))
    patch.setenv("KEKONG_DATA_DIR", str(data))
    with TestClient(create_app(ServerConfig(data_dir=root / "store", ui=False))) as client:
        yield client, root
    patch.undo()


def test_lists_in_a1111_shapes_with_file_names_only(env):
    client, root = env
    [lora] = client.get("/sdapi/v1/loras").json()
    assert lora == {"name": "inkstyle", "alias": "inkstyle", "path": "inkstyle.safetensors",
                    "metadata": {"ss_output_name": "inkstyle", "ss_network_dim": "4"}}
    embeddings = client.get("/sdapi/v1/embeddings").json()
    assert embeddings["loaded"]["badhands"]["shape"] == 768 and embeddings["loaded"]["badhands"]["vectors"] == 2
    assert "broken" in embeddings["skipped"]
    assert client.get("/sdapi/v1/prompt-styles").json() == [
        {"name": "ink", "prompt": "{prompt}, ink wash", "negative_prompt": "blurry"},
        {"name": "plain", "prompt": "studio light", "negative_prompt": ""}]
    assert client.get("/sdapi/v1/scripts").json() == {"txt2img": ["x/y/z plot", "controlnet"],
                                                      "img2img": ["x/y/z plot", "controlnet"]}
    assert {s["is_img2img"] for s in client.get("/sdapi/v1/script-info").json()} == {False, True}
    assert client.get("/sdapi/v1/hypernetworks").json() == []
    assert client.get("/sdapi/v1/face-restorers").json() == []
    for route in ("refresh-loras", "refresh-checkpoints"):
        assert client.post(f"/sdapi/v1/{route}").status_code == 200
    flags = client.get("/sdapi/v1/cmd-flags").json()
    assert flags["api"] is True and flags["api_auth"] is None and flags["nowebui"] is True
    ram = client.get("/sdapi/v1/memory").json()["ram"]
    assert 0 < ram["used"] < ram["total"] and ram["free"] == ram["total"] - ram["used"]
    everything = "".join(client.get(f"/sdapi/v1/{r}").text for r in ("loras", "embeddings", "cmd-flags", "memory"))
    assert str(root) not in everything  # no local folder in any answer


def test_styles_merge_as_a1111_merges_them():
    from kekong.prompt.styles import Style, apply_styles

    styles = {"ink": Style("ink", "{prompt}, ink wash", "blurry"), "plain": Style("plain", "studio light", "")}
    assert apply_styles("a cat", "text", ["ink", "plain"], styles) == ("a cat, ink wash, studio light", "text, blurry")
    with pytest.raises(Exception, match="styles: neon not found; known: ink, plain"):
        apply_styles("a cat", "", ["neon"], styles)


def _decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_extras_upscale_by_scale_and_to_a_size(env):
    client, _ = env
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:, 30:] = 255  # a hard edge tells Lanczos (ringing) from Nearest (none)
    answer = client.post("/sdapi/v1/extra-single-image", json={"image": b64_png(photo), "upscaler_1": "Nearest",
                                                                "upscaling_resize": 2}).json()
    image = _decode(answer["image"])
    assert image.size == (120, 80) and set(np.unique(np.asarray(image))) == {0, 255}
    assert image.text["postprocessing"] == answer["html_info"] == \
        "Postprocess upscale by: 2, Postprocess upscaler: Nearest"
    lanczos = _decode(client.post("/sdapi/v1/extra-single-image", json={
        "image": b64_png(photo), "upscaler_1": "Lanczos"}).json()["image"])
    assert len(np.unique(np.asarray(lanczos))) > 2
    cropped = client.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": b64_png(photo), "name": "a.png"}] * 2, "resize_mode": 1, "upscaler_1": "Lanczos",
        "upscaling_resize_w": 100, "upscaling_resize_h": 100, "upscaling_crop": True}).json()
    assert [_decode(i).size for i in cropped["images"]] == [(100, 100)] * 2


@pytest.mark.parametrize(("fields", "message"), [
    ({"upscaler_1": "SwinIR 4x"}, "upscaler_1: 'SwinIR 4x' is not available"),
    ({"gfpgan_visibility": 0.5}, "face restoration is not in kekong"),
    ({"upscaling_resize": 8, "resize_mode": 1, "upscaling_resize_w": 90000, "upscaling_resize_h": 90000},
     "pixels, over this server's"),
])
def test_extras_refusals_name_the_field(env, fields, message):
    client, _ = env
    answer = client.post("/sdapi/v1/extra-single-image", json={"image": b64_png(np.zeros((8, 8, 3), np.uint8)),
                                                                **fields})
    assert answer.status_code == 422 and message in answer.json()["detail"], answer.text
