"""`/sdapi/v1/png-info` with sd-webui-controlnet installed: its infotext callback adds, for every
"ControlNet N" key, the unit ControlNetUnit.parse reads from it, one key per infotext field. The
expected dicts are written out by following the extension's code (scripts/infotext.py,
internal_controlnet/args.py: parse_value, the field validators, bound_check_params and
guidance_check; the sliders of scripts/supported_preprocessor.py and the legacy table) by hand."""

from __future__ import annotations

import base64
import io

from PIL import Image, PngImagePlugin

from kekong.provenance.infotext import controlnet_entry, format_infotext
from kekong.provenance.infotext_a1111 import generation_parameters
from kekong.provenance.infotext_controlnet import controlnet_pasted, parse_unit
from kekong.request import ControlUnit

CANNY = ("Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and Resize, "
         "Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, "
         "Pixel Perfect: False, Control Mode: Balanced")
CANNY_FIELDS = {"module": "canny", "model": "control_v11p_sd15_canny [d14c016b]", "weight": 1.0,
                "resize_mode": "Crop and Resize", "processor_res": 512, "threshold_a": 100.0, "threshold_b": 200.0,
                "guidance_start": 0.0, "guidance_end": 1.0, "pixel_perfect": False, "control_mode": "Balanced"}


def unit_keys(index: int, fields: dict) -> dict:
    return {f"ControlNet {index} {field}": value for field, value in fields.items()}


def test_an_a1111_written_unit_gets_the_extensions_field_keys():
    text = ("a fox\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, Size: 512x512, "
            f'ControlNet 0: "{CANNY}", Version: v1.10.1')
    params = controlnet_pasted(generation_parameters(text))
    assert params == {**generation_parameters(text), **unit_keys(0, CANNY_FIELDS)}
    assert isinstance(params["ControlNet 0 weight"], float) and isinstance(params["ControlNet 0 processor_res"], int)


def test_a_kekong_written_unit_reads_the_same():
    unit = ControlUnit(module="canny", params={"low_threshold": 100, "high_threshold": 200})
    entry = controlnet_entry(unit, "control_v11p_sd15_canny [d14c016b]", 100, 200)
    text = format_infotext("a red star", "", {"Steps": 4, "Sampler": "Euler", "Seed": 5, "Size": "64x64",
                                              "ControlNet 0": entry, "ControlNet 1": entry})
    params = controlnet_pasted(generation_parameters(text))
    assert {k: v for k, v in params.items() if k.startswith("ControlNet 0 ")} == unit_keys(0, CANNY_FIELDS)
    assert params["ControlNet 1 module"] == "canny" and params["ControlNet 0"] == CANNY


def test_out_of_range_slider_values_become_the_preprocessors_defaults():
    # depth_midas (legacy): resolution 64–2048 (512), no slider 1 or 2 (hidden: 0–1, 0.5)
    depth = parse_unit("Module: depth_midas, Model: None, Weight: 0.8, Processor Res: -1, Threshold A: -1, "
                       "Threshold B: 0.25")
    assert (depth["processor_res"], depth["threshold_a"], depth["threshold_b"]) == (512, 0.5, 0.25)
    canny = parse_unit("Module: canny, Threshold A: 300, Threshold B: 0")  # canny's sliders are 1–255
    assert (canny["threshold_a"], canny["threshold_b"]) == (100, 200)
    assert parse_unit("Module: inpaint_only, Processor Res: 512")["processor_res"] == 0.5  # a hidden resolution
    assert parse_unit("Module: shuffle, Processor Res: 768")["processor_res"] == 512  # shuffle fixes 512
    anyline = parse_unit("Module: softedge_anyline, Processor Res: 32, Threshold A: 11")
    assert (anyline["processor_res"], anyline["threshold_a"]) == (1280, 2)


def test_values_are_coerced_as_the_extensions_pydantic_model_does():
    unit = parse_unit("Module: invert (from white bg & black line), Model: 123, Weight: 2, Processor Res: 300.9, "
                      "Pixel Perfect: yes, Resize Mode: Outer Fit (Shrink to Fit), Control Mode: ControlNet is more "
                      "important, Guidance End: 0.5")
    assert unit["module"] == "invert (from white bg & black line)"  # a label is an identifier too
    assert unit["model"] == "123" and unit["weight"] == 2.0 and unit["processor_res"] == 0.5  # invert hides it
    assert unit["pixel_perfect"] is True and unit["resize_mode"] == "Resize and Fill"
    assert unit["control_mode"] == "ControlNet is more important" and unit["guidance_end"] == 0.5
    defaults = parse_unit("Weight: 1")
    assert defaults["module"] == "none" and defaults["model"] == "None" and defaults["resize_mode"] == "Crop and Resize"
    assert (defaults["threshold_a"], defaults["guidance_start"], defaults["control_mode"]) == (0.5, 0.0, "Balanced")


def test_a_unit_the_extension_cannot_parse_adds_nothing_but_the_others_stay():
    bad = [
        "Module: my_detector, Weight: 1.0",  # not one of the extension's preprocessors
        "Module: canny, Weight: 2.5",  # weight is 0–2
        "Module: canny, Guidance Start: 0.8, Guidance End: 0.2",  # start after end
        "Module: canny, Weight: heavy",  # not a float
        "Module: canny, Control Mode: Strong",  # not a control mode
        "Module: canny, Resize Mode: 1",  # resize mode must be its name
        "Module: canny, Pixel Perfect: maybe",  # not a bool
        "Module: canny, Note: a: b",  # not one "key: value" pair
        "Module: canny, Enabled: True",  # parse passes enabled=True itself
        "Module: canny, Hr Option: Sometimes",  # another of the unit's enums
    ]
    for text in bad:
        assert parse_unit(text) is None, text
    params = controlnet_pasted({"ControlNet 0": bad[0], "ControlNet 1": CANNY, "Steps": "20"})
    assert params == {"ControlNet 0": bad[0], "ControlNet 1": CANNY, "Steps": "20", **unit_keys(1, CANNY_FIELDS)}


def test_the_route_answers_with_the_extensions_keys(monkeypatch, tmp_path):
    from kekong.server.png_info import png_info_answer

    monkeypatch.setenv("KEKONG_DATA_DIR", str(tmp_path))
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("parameters", f'a fox\nSteps: 20, Sampler: Euler, Seed: 1, ControlNet 0: "{CANNY}"')
    stream = io.BytesIO()
    Image.new("RGB", (8, 8)).save(stream, "PNG", pnginfo=chunks)
    answer = png_info_answer(base64.b64encode(stream.getvalue()).decode())
    added = {k: v for k, v in answer["parameters"].items() if k.startswith("ControlNet 0 ")}
    assert added == unit_keys(0, CANNY_FIELDS)
