"""Names A1111 and sd-webui-controlnet clients send for schedule types and resize modes."""

from __future__ import annotations

import pytest

from kekong.choices import SCHEDULE_TYPES, ResizeMode
from kekong.errors import ParameterError
from kekong.request import ControlUnit, GenerationRequest


@pytest.mark.parametrize(("sent", "meant"), [
    ("sgm_uniform", "SGM Uniform"),  # the `name` /sdapi/v1/schedulers lists
    ("SGMUniform", "SGM Uniform"),  # ComfyUI-style spelling
    ("SGM Uniform", "SGM Uniform"),  # the label
    ("karras", "Karras"),
    ("automatic", "Automatic"),
])
def test_schedule_types_by_label_or_api_name(sent, meant):
    assert GenerationRequest(prompt="x", scheduler=sent).scheduler == meant


def test_every_listed_schedule_name_is_accepted():
    for label in SCHEDULE_TYPES:  # /sdapi/v1/schedulers: name = label lower-cased, spaces as underscores
        api_name = label.lower().replace(" ", "_")
        assert GenerationRequest(prompt="x", scheduler=api_name).scheduler == label


def test_an_unknown_schedule_is_still_refused():
    with pytest.raises(ValueError, match="unknown schedule type 'Karras2'"):
        GenerationRequest(prompt="x", scheduler="Karras2")


@pytest.mark.parametrize(("sent", "meant"), [
    ("Inner Fit (Scale to Fit)", ResizeMode.CROP_AND_RESIZE),  # the extension's older labels
    ("Outer Fit (Shrink to Fit)", ResizeMode.RESIZE_AND_FILL),
    ("Scale to Fit (Inner Fit)", ResizeMode.CROP_AND_RESIZE),
    ("Envelope (Outer Fit)", ResizeMode.RESIZE_AND_FILL),
    ("Just Resize", ResizeMode.JUST_RESIZE),
    (2, ResizeMode.RESIZE_AND_FILL),
])
def test_resize_mode_aliases_as_the_extension_reads_them(sent, meant):
    assert ControlUnit(module="canny", resize_mode=sent).resize_mode is meant


def test_an_unknown_resize_mode_is_named():
    with pytest.raises(ParameterError, match="unknown resize mode 'Stretch'"):
        ResizeMode.parse("Stretch")
