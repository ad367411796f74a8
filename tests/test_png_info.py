"""`/sdapi/v1/png-info` answers as A1111 1.10: `parameters` is the dict A1111's
parse_generation_parameters builds. Each expected dict below is written out by following A1111's
code (modules/infotext_utils.py, infotext_versions.py, styles.py) by hand on the same text."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from kekong.prompt.styles import Style
from kekong.provenance.infotext import controlnet_entry, format_infotext
from kekong.provenance.infotext_a1111 import generation_parameters
from kekong.request import ControlUnit

# What A1111 fills in when the text does not say (same types as A1111's: some strings, some numbers)
FILLED = {
    "Clip skip": "1", "Hires resize-1": 0, "Hires resize-2": 0, "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler", "Hires checkpoint": "Use same checkpoint", "Hires prompt": "",
    "Hires negative prompt": "", "Mask mode": "Inpaint masked", "Masked content": "original",
    "Inpaint area": "Whole picture", "Masked area padding": 32, "RNG": "GPU", "Schedule type": "Automatic",
    "Schedule max sigma": 0, "Schedule min sigma": 0, "Schedule rho": 0, "VAE Encoder": "Full",
    "VAE Decoder": "Full", "FP8 weight": "Disable", "Refiner switch by sampling steps": False,
}
CANNY = ("Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and Resize, "
         "Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, "
         "Pixel Perfect: False, Control Mode: Balanced")


def test_an_a1111_1_10_infotext_with_hires_variation_seed_and_a_controlnet_unit():
    text = ("masterpiece, (a red fox:1.2) in the snow\nNegative prompt: blurry, lowres\n"
            "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
            "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Variation seed: 77, Variation seed strength: 0.3, "
            "Denoising strength: 0.45, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, "
            f'ControlNet 0: "{CANNY}", Version: v1.10.1')
    assert generation_parameters(text) == {
        **FILLED, "Steps": "30", "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": "6.5",
        "Seed": "1234", "Size-1": "512", "Size-2": "768", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly",
        "Variation seed": "77", "Variation seed strength": "0.3", "Denoising strength": "0.45",
        "Hires upscale": "2", "Hires steps": "10", "Hires upscaler": "Latent", "ControlNet 0": CANNY,
        "Version": "v1.10.1", "Prompt": "masterpiece, (a red fox:1.2) in the snow",
        "Negative prompt": "blurry, lowres", "Emphasis": "Original",  # a weight other than 1 in the prompt
    }


def test_an_old_infotext_keeps_the_combined_sampler_and_gets_the_old_hires_sizes_and_back_compat():
    text = ("[cat:dog:0.5] portrait\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 5, Size: 1024x1024, "
            "Model hash: 45dee52b, Denoising strength: 0.7, First pass size: 0x0, Version: v1.5.1")
    assert generation_parameters(text) == {
        **FILLED, "Steps": "20", "Sampler": "DPM++ 2M Karras", "CFG scale": "7", "Seed": "5",
        "Model hash": "45dee52b", "Denoising strength": "0.7", "First pass size-1": "0", "First pass size-2": "0",
        "Version": "v1.5.1", "Prompt": "[cat:dog:0.5] portrait", "Negative prompt": "",
        # a 0x0 first pass: the old 512²-pixel rule gives 512x512, and the size becomes the hires size
        "Size-1": 512, "Size-2": 512, "Hires resize-1": 1024, "Hires resize-2": 1024,
        "Emphasis": "Original",  # parse_prompt_attention reads [ … ] as ÷1.1
        "Old prompt editing timelines": True, "Downcast alphas_cumprod": True,  # before 1.6.0 / 1.7.0-225
    }


def test_styles_are_taken_back_out_of_the_prompts_and_the_hires_prompt():
    styles = {"cinematic": Style("cinematic", "{prompt}, cinematic lighting", "cartoon"),
              "unused": Style("unused", "oil painting", "")}
    text = ("a castle, cinematic lighting\nNegative prompt: ugly, cartoon\nSteps: 20, Sampler: Euler a, "
            'Schedule type: Automatic, CFG scale: 7, Seed: 3, Size: 512x512, Hires upscale: 1.5, '
            'Hires prompt: "a castle, at night, cinematic lighting", Version: v1.10.0')
    assert generation_parameters(text, styles) == {
        **FILLED, "Steps": "20", "Sampler": "Euler a", "CFG scale": "7", "Seed": "3", "Size-1": "512",
        "Size-2": "512", "Hires upscale": "1.5", "Version": "v1.10.0", "Styles array": ["cinematic"],
        "Prompt": "a castle", "Negative prompt": "ugly",
        "Hires prompt": "a castle, at night",  # the same style left it differing from the prompt
        "Hires negative prompt": "",  # … and equal to the negative prompt: ""
    }
    unstyled = generation_parameters(text)  # no styles.csv: the prompts stay whole
    assert unstyled["Prompt"] == "a castle, cinematic lighting" and "Styles array" not in unstyled
    assert unstyled["Hires prompt"] == "a castle, at night, cinematic lighting"


def test_what_kekong_writes_reads_as_a1111_reads_it():
    unit = ControlUnit(module="canny", params={"low_threshold": 100, "high_threshold": 200})
    entry = controlnet_entry(unit, "control_v11p_sd15_canny [d14c016b]", 100, 200)
    text = format_infotext("a red star", "blurry", {
        "Steps": 4, "Sampler": "Euler", "Schedule type": "Automatic", "CFG scale": 2.0, "Seed": 5, "Size": "64x64",
        "Model hash": "0123456789", "Model": "kekong-shapes", "Variation seed": 77, "Variation seed strength": 0.3,
        "Seed resize from": "32x32", "Denoising strength": 0.5, "Hires upscale": 2.0, "Hires steps": 3,
        "Hires upscaler": "Latent", "ControlNet 0": entry, "RNG": "CPU", "Version": "kekong"})
    assert generation_parameters(text) == {
        **FILLED, "Steps": "4", "Sampler": "Euler", "CFG scale": "2", "Seed": "5", "Size-1": "64", "Size-2": "64",
        "Model hash": "0123456789", "Model": "kekong-shapes", "Variation seed": "77",
        "Variation seed strength": "0.3", "Seed resize from-1": "32", "Seed resize from-2": "32",
        "Denoising strength": "0.5", "Hires upscale": "2", "Hires steps": "3", "Hires upscaler": "Latent",
        "ControlNet 0": CANNY, "RNG": "CPU", "Version": "kekong",  # not a version: no back-compat keys
        "Prompt": "a red star", "Negative prompt": "blurry",
    }


def test_no_parameters_line_gives_a1111s_defaults_only():
    assert generation_parameters("") == {**FILLED, "Prompt": "", "Negative prompt": ""}
    lines = generation_parameters("  line one\n\nline two  \nNegative prompt:  bad\n more bad\nSteps: 2, Seed: 1")
    # fewer than three pairs: the last line is prompt text; lines are stripped as A1111 strips them
    assert lines["Prompt"] == "line one\n\nline two" and lines["Negative prompt"] == "bad\nmore bad\nSteps: 2, Seed: 1"
    assert "Steps" not in lines


def test_quoting_and_empty_values_as_a1111():
    params = generation_parameters('x\nSteps: 2, Empty: , Quoted: "a, b: c", Broken: "x\\", Seed: 1')
    assert params["Quoted"] == "a, b: c" and "Empty" not in params  # A1111 skips a value it cannot index
    assert params["Steps"] == "2" and params["Seed"] == "1"


# -- the route -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig

    data = tmp_path_factory.mktemp("pnginfo")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nsky,"{prompt}, on a light blue background",\n')
    patch = pytest.MonkeyPatch()
    patch.setenv("KEKONG_DATA_DIR", str(data))
    with TestClient(create_app(ServerConfig(data_dir=data / "store", ui=False))) as client:
        yield client
    patch.undo()


def _b64(image: Image.Image, fmt: str, **save) -> str:
    stream = io.BytesIO()
    image.save(stream, fmt, **save)
    return base64.b64encode(stream.getvalue()).decode()


def test_png_info_route_answers_info_items_and_a1111s_parameters(client):
    text = "a red star, on a light blue background\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 1, Size: 64x48"
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("parameters", text)
    chunks.add_text("Software", "somewhere")
    image = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    answer = client.post("/sdapi/v1/png-info", json={"image": _b64(image, "PNG", pnginfo=chunks, dpi=(72, 72))})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["info"] == text and body["items"] == {"Software": "somewhere"}  # no parameters, no dpi
    assert body["parameters"] == {**FILLED, "Steps": "20", "Sampler": "DPM++ 2M Karras", "Seed": "1",
                                  "Size-1": "64", "Size-2": "48", "Prompt": "a red star",
                                  "Negative prompt": "", "Styles array": ["sky"]}  # the server's styles.csv


def test_png_info_reads_a_jpeg_user_comment_and_refuses_a_non_image(client):
    text = "a cat\nSteps: 3, Sampler: Euler, Seed: 2"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    body = client.post("/sdapi/v1/png-info", json={
        "image": _b64(Image.fromarray(np.zeros((8, 8, 3), np.uint8)), "JPEG", exif=exif)}).json()
    assert body["info"] == text and body["items"] == {}  # jfif, dpi and exif are A1111's ignored keys
    assert body["parameters"]["Prompt"] == "a cat" and body["parameters"]["Seed"] == "2"
    refused = client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(b"not an image").decode()})
    assert refused.status_code == 422 and "image" in refused.json()["detail"]
