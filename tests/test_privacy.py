"""Privacy by construction: no byte kekong publishes holds a local path — not the PNG chunks, EXIF,
XMP or C2PA manifest of PNG/JPEG/WebP outputs, not the sidecar recipe, not the HTTP API's job
answers or images. Inputs are recorded as file name + sha256 + size, models as name + sha256, and
`kekong replay` finds them again by name (or by content) in the folders it is given.

Every input and model is given by absolute path under pytest's tmp dir; the scan looks for that
dir, the models folder, HOME and the working directory, as UTF-8 and UTF-16 (EXIF's UNICODE user
comment), in the raw bytes and in every compressed PNG text chunk."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage import data

from kekong.generation.pipeline import generate
from kekong.io import save_image
from kekong.provenance.recipe import LOCAL_PATHS_KEY
from kekong.provenance.replay import load_recipe, replay
from kekong.provenance.stamp import Layers, read_png_text, stamp
from kekong.request import build_request
from tests.tiny_models import _clip_config, build_tiny_base, build_tiny_controlnet, tiny_unet, tiny_vae


def lora_file(path: Path, seed: int) -> Path:
    """A LoRA for the tiny base (UNet and text encoder), with non-zero up weights."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    state = {}
    for prefix, model, targets in (("unet", tiny_unet(), ["to_q", "to_k", "to_v", "to_out.0"]),
                                   ("text_encoder", CLIPTextModel(_clip_config()), ["q_proj", "v_proj"])):
        inject_adapter_in_model(LoraConfig(r=4, target_modules=targets), model, adapter_name="t")
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        lora = get_peft_model_state_dict(model, adapter_name="t")
        state |= {f"{prefix}.{k}": v.contiguous() for k, v in lora.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, path)
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """An inpaint with a masked control unit, every input and model (base, ControlNet, VAE, LoRA) by
    absolute path, one LoRA by name from the models folder via a prompt tag."""
    root = tmp_path_factory.mktemp("privacy").resolve()
    private = root / "home" / "someone" / "private"
    models = root / "models-folder"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEKONG_MODELS_DIR", str(models))
        build_tiny_base(private / "base")
        build_tiny_controlnet(private / "cn")
        save_file({k: v.contiguous() for k, v in tiny_vae().state_dict().items()}, private / "my-vae.safetensors")
        lora_file(private / "style.safetensors", 1)
        lora_file(models / "Lora" / "tagged.safetensors", 2)
        save_image(data.chelsea()[:64, :64], private / "phone.png")
        save_image(data.coffee()[:64, :64], private / "control.png")
        mask = np.zeros((64, 64, 3), np.uint8)
        mask[16:48, 16:48] = 255
        save_image(mask, private / "mask.png")
        save_image(255 - mask, private / "region.png")
        request = build_request(
            prompt="a cat <lora:tagged:0.5>", model=str(private / "base"), vae=str(private / "my-vae.safetensors"),
            loras=[{"path": str(private / "style.safetensors"), "weight": 0.7}], width=64, height=64, steps=2,
            seed=5, init_image=str(private / "phone.png"), mask=str(private / "mask.png"), denoising_strength=0.6,
            controls=[{"module": "none", "image": str(private / "control.png"), "model": str(private / "cn"),
                       "mask": str(private / "region.png")}])
        [generated] = generate(request)
        original = generated.image
        generated = dataclasses.replace(generated, image=data.astronaut())  # big enough to carry the mark
        outputs = root / "outputs"
        written = [stamp(generated, outputs / f"out{suffix}", recipe_sidecar=True) for suffix in (".png", ".jpg",
                                                                                               ".webp")]
        yield {"root": root, "private": private, "models": models, "generated": generated, "written": written,
               "outputs": outputs, "original": original}


def needles(*paths: Path) -> list[str]:
    found = {str(p) for p in paths} | {os.path.expanduser("~"), os.getcwd()}
    return sorted(n for n in found if len(n) > 4)  # "/" or "/root"-like homes are too short to mean anything


def texts(blob: bytes) -> list[bytes]:
    """The bytes themselves, plus every compressed PNG text chunk inflated."""
    out = [blob]
    if blob.startswith(b"\x89PNG"):
        pos = 8
        while pos < len(blob):
            length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
            body = blob[pos + 8:pos + 8 + length]
            if kind == b"zTXt":
                out.append(zlib.decompress(body.split(b"\0", 1)[1][1:]))
            elif kind == b"iTXt":
                _key, rest = body.split(b"\0", 1)
                if rest[0] == 1:  # compressed
                    out.append(zlib.decompress(rest[2:].split(b"\0", 2)[2]))
            pos += 12 + length
    return out


def leaks(blob: bytes, paths: list[str]) -> list[str]:
    return [f"{path!r} ({encoding})" for path in paths for encoding in ("utf-8", "utf-16-le", "utf-16-be")
            for text in texts(blob) if path.encode(encoding) in text]


def manifest_json(path: Path) -> str:
    import c2pa

    mime = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}[path.suffix]
    return c2pa.Reader(mime, io.BytesIO(path.read_bytes())).json()


def test_no_written_byte_holds_a_local_path(made):
    paths = needles(made["root"], made["private"], made["models"])
    for path in made["written"]:
        assert leaks(path.read_bytes(), paths) == [], path
        assert leaks(path.with_suffix(".json").read_bytes(), paths) == [], path.with_suffix(".json")
        manifest = manifest_json(path)
        assert not [p for p in paths if p in manifest] and "phone.png" in manifest  # the input, by name


def test_inputs_are_name_hash_and_size_and_models_name_and_hash(made):
    import hashlib

    recipe = json.loads(read_png_text(made["written"][0])["kekong-recipe"])
    phone = (made["private"] / "phone.png").read_bytes()
    [init] = [record for record in recipe["inputs"] if record["field"] == "init_image"]
    assert init == {"field": "init_image", "name": "phone.png", "sha256": hashlib.sha256(phone).hexdigest(),
                    "size": len(phone)}
    assert {r["field"] for r in recipe["inputs"]} == {"init_image", "mask", "controls.0.image", "controls.0.mask"}
    request = recipe["request"]
    assert (request["init_image"], request["mask"], request["model"], request["vae"]) == \
        ("phone.png", "mask.png", "base", "my-vae")
    assert request["controls"][0]["model"] == "cn" and request["loras"][0]["path"] == "style"
    models = recipe["models"]
    assert [lora["name"] for lora in models["loras"]] == ["style", "tagged"]
    assert all(len(m["sha256"]) == 64 for m in [models["base"], models["vae"], *models["loras"],
                                               *models["controlnets"]])
    assert LOCAL_PATHS_KEY not in recipe
    parameters = read_png_text(made["written"][0])["parameters"]
    assert "Lora hashes: \"style: " in parameters and ", tagged: " in parameters


def test_record_paths_keeps_them_in_the_private_recipe_only(made, tmp_path):
    path = stamp(made["generated"], tmp_path / "private.png", recipe_sidecar=True, layers=Layers(record_paths=True))
    recipe = json.loads(read_png_text(path)["kekong-recipe"])
    assert recipe[LOCAL_PATHS_KEY]["init_image"] == str(made["private"] / "phone.png")
    assert recipe[LOCAL_PATHS_KEY]["model"] == str(made["private"] / "base")
    assert json.loads(path.with_suffix(".json").read_text())[LOCAL_PATHS_KEY] == recipe[LOCAL_PATHS_KEY]
    manifest = manifest_json(path)
    assert str(made["private"]) not in manifest and LOCAL_PATHS_KEY not in manifest
    paths = needles(made["private"])
    assert leaks(path.read_bytes(), paths)  # the scan sees them where they are asked for …
    assert leaks(png_chunk(path.read_bytes(), b"caBX"), paths) == []  # … and the C2PA chunk has none


def png_chunk(blob: bytes, wanted: bytes) -> bytes:
    pos = 8
    while pos < len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        if kind == wanted:
            return blob[pos + 8:pos + 8 + length]
        pos += 12 + length
    raise AssertionError(f"no {wanted!r} chunk")


def test_replay_finds_inputs_and_models_by_name_or_content_elsewhere(made, tmp_path):
    """The published recipe replays bit-identically once its files are in a folder it is given —
    here under other folder names, one input renamed (found by its sha256)."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(made["private"], elsewhere)
    (elsewhere / "phone.png").rename(elsewhere / "renamed.png")
    recipe = load_recipe(made["written"][0])
    shutil.move(made["private"], tmp_path / "moved-away")  # the original paths no longer exist
    try:
        generated, warnings = replay(recipe, folders=[elsewhere])
        assert warnings == [] and generated.seed == 5 and np.array_equal(generated.image, made["original"])
        (elsewhere / "renamed.png").unlink()
        with pytest.raises(Exception, match=r"init image 'phone.png' \(sha256 [0-9a-f]{64}, \d+ bytes\) was not found"):
            replay(recipe, folders=[elsewhere])
    finally:
        shutil.move(tmp_path / "moved-away", made["private"])


def test_http_job_answers_and_images_hold_no_local_path(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, star_outline

    data_dir, models = tmp_path / "server-data", tmp_path / "models"
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(models))
    outline = "data:image/png;base64," + b64_png(star_outline())
    answers, blobs = [], []
    with TestClient(create_app(ServerConfig(data_dir=data_dir, ui=False))) as client:
        submitted = client.post("/v1/jobs", json={"prompt": "a red star", "seed": 3, "width": 64, "height": 64,
                                                  "steps": 2, "init_image": outline,
                                                  "controls": [{"module": "scribble_sketch", "image": outline}]})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.time() + 120
        while client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("done", "failed") and time.time() < deadline:
            time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "done", job
        answers += [submitted.text, client.get(f"/v1/jobs/{job_id}").text, client.get("/v1/jobs").text]
        blobs += [client.get(item["url"]).content for item in [*job["images"], *job["maps"]]]
        a1111 = client.post("/sdapi/v1/txt2img", json={"prompt": "a red star", "width": 64, "height": 64,
                                                       "steps": 2, "seed": 1})
        assert a1111.status_code == 200, a1111.text
        answers.append(a1111.text)
        import base64

        blobs += [base64.b64decode(image) for image in a1111.json()["images"]]
    paths = needles(tmp_path.resolve(), data_dir, models)
    for text in answers:
        assert leaks(text.encode(), paths) == [], text[:300]
    for blob in blobs:
        assert leaks(blob, paths) == []
