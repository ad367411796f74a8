"""PNG info and "paste parameters": an infotext (pasted, or read from a dropped image) goes through
the core parser into the Generate tab's widgets; what the UI cannot set is named, never guessed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image, PngImagePlugin

from kekong.detect import get
from kekong.server.config import Limits
from kekong.ui import pnginfo
from kekong.ui.app import UI

INFOTEXT = """a red star, <lora:style:0.8>
Negative prompt: blurry
Steps: 12, Sampler: Euler, Schedule type: Karras, CFG scale: 3.5, Seed: 77, Size: 96x80, Clip skip: 1, \
ControlNet 0: "Module: canny, Model: None, Weight: 0.6, Resize Mode: Just Resize, Processor Res: 256, \
Threshold A: 40, Threshold B: 180, Guidance Start: 0.1, Guidance End: 0.8, Pixel Perfect: True, \
Control Mode: My prompt is more important", Made up key: 1, Version: v1.10.0"""


def built(limits: Limits | None = None) -> UI:
    ui = UI(FastAPI(), limits)
    ui.blocks()
    return ui


@pytest.fixture(scope="module")
def ui() -> UI:
    return built()


def by_component(ui: UI, text: str) -> tuple[dict, list[str]]:
    updates, notes = ui.paster.updates(text)
    outputs = ui.paster.outputs()
    assert len(updates) == len(outputs)
    return {id(c): u for c, u in zip(outputs, updates, strict=True)}, notes


def value(updates: dict, component) -> object:
    update = updates[id(component)]
    return update.get("value", "<skipped>")


def test_pasted_parameters_fill_the_fields_and_the_units(ui):
    updates, notes = by_component(ui, INFOTEXT)
    n = ui.named
    assert value(updates, n["prompt"]) == "a red star, <lora:style:0.8>" and value(updates, n["negative"]) == "blurry"
    assert [value(updates, n[k]) for k in ("steps", "sampler", "scheduler", "cfg", "seed", "width", "height")] == \
        [12, "Euler", "Karras", 3.5, 77, 96, 80]
    unit, second = ui.panels[0], ui.panels[1]
    assert value(updates, unit.parts["enabled"]) is True and value(updates, unit.parts["module"]) == "canny"
    assert [value(updates, unit.parts[k]) for k in ("weight", "start", "end", "res", "perfect", "mode", "resize")] \
        == [0.6, 0.1, 0.8, 256, True, "My prompt is more important", "Just Resize"]
    low, high = unit.slots[:2]  # threshold A / B → canny's first two declared sliders
    assert [updates[id(low)]["label"], updates[id(low)]["value"], updates[id(high)]["value"]] == \
        [get("canny").params[0].name.replace("_", " "), 40, 180]
    assert value(updates, second.parts["enabled"]) is False  # the image was made with one unit
    assert "ControlNet 0 (canny): add its control image (an infotext carries none)" in notes
    assert "not used by kekong: Made up key: 1" in notes


def test_values_a_server_does_not_allow_are_clipped_and_named():
    narrow = built(Limits(max_side=88, max_steps=10))
    updates, notes = by_component(narrow, INFOTEXT)
    assert value(updates, narrow.named["width"]) == 88 and value(updates, narrow.named["steps"]) == 10
    assert any(note.startswith("Width: 96 is outside") and note.endswith("set to 88") for note in notes)


def test_a_sampler_the_ui_does_not_offer_is_named_and_left_alone(ui):
    updates, notes = by_component(ui, INFOTEXT.replace("Sampler: Euler,", "Sampler: Made Up Sampler,"))
    assert value(updates, ui.named["sampler"]) == "<skipped>"
    assert any("Made Up Sampler" in note for note in notes)


def test_a_text_without_parameters_is_one_clear_error(ui):
    import gradio as gr

    with pytest.raises(gr.Error, match="no `Steps"):
        pnginfo.paste(ui.paster, "just a prompt")
    with pytest.raises(gr.Error, match="paste an A1111 infotext"):
        pnginfo.paste(ui.paster, "  ")


def test_png_info_reads_an_a1111_image(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    path = tmp_path / "a1111.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path, pnginfo=info)
    parameters, recipe, words = pnginfo.read_info(path)
    assert parameters == INFOTEXT and recipe == ""  # A1111 writes no kekong recipe
    assert "a1111.png" in words and str(tmp_path) not in words and "parameters: Steps: 12" in words
    image, shown, _, _ = UI.png_info(str(path))
    assert image.shape == (32, 32, 3) and shown == INFOTEXT
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, "PNG")
    (tmp_path / "plain.png").write_bytes(buffer.getvalue())
    assert UI.png_info(str(tmp_path / "plain.png"))[1] == "(no A1111 parameters in this image)"
