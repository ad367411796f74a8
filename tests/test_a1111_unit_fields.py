"""Every field of sd-webui-controlnet's ControlNetUnit (internal_controlnet/args.py: 33 fields) is
accounted for by the A1111 translation (issue 21 item 1): a field kekong honours changes the unit
it makes, a field whose non-default value kekong would not honour is refused by name, and a field
that cannot change the image (batch-mode and UI bookkeeping) is accepted and changes nothing."""

from __future__ import annotations

import pytest

from kekong.errors import ParameterError
from kekong.server import a1111_request as a1111
from kekong.server.inputs import NO_URLS
from tests.server_helpers import b64_png, star_outline

# the extension's ControlNetUnit fields, in its order
EXTENSION_FIELDS = (
    "is_ui", "input_mode", "batch_images", "output_dir", "loopback", "enabled", "module", "model", "weight",
    "image", "resize_mode", "low_vram", "processor_res", "threshold_a", "threshold_b", "guidance_start",
    "guidance_end", "pixel_perfect", "control_mode", "inpaint_crop_input_image", "hr_option", "save_detected_map",
    "advanced_weighting", "effective_region_mask", "pulid_mode", "union_control_type", "ipadapter_input", "mask",
    "batch_mask_dir", "animatediff_batch", "batch_modifiers", "batch_image_files", "batch_keyframe_idx",
)
IMAGE = b64_png(star_outline())
# a value other than the extension's default, for each field
OTHER = {
    "is_ui": True, "input_mode": "batch", "batch_images": ["a.png"], "output_dir": "/out", "loopback": True,
    "enabled": False, "module": "invert", "model": "some-controlnet", "weight": 0.5,
    "image": b64_png(255 - star_outline()),
    "resize_mode": "Just Resize", "low_vram": True, "processor_res": 256, "threshold_a": 50, "threshold_b": 90,
    "guidance_start": 0.2, "guidance_end": 0.8, "pixel_perfect": True, "control_mode": "ControlNet is more important",
    "inpaint_crop_input_image": False, "hr_option": "Low res only", "save_detected_map": False,
    "advanced_weighting": [0.5] * 13, "effective_region_mask": IMAGE, "pulid_mode": "Extremely style",
    "union_control_type": "Canny", "ipadapter_input": ["eA=="], "mask": IMAGE, "batch_mask_dir": "/masks",
    "animatediff_batch": True, "batch_modifiers": ["x"], "batch_image_files": ["a.png"], "batch_keyframe_idx": "0",
}
BASE = {"enabled": True, "module": "canny", "model": "None", "image": IMAGE}
HONOURED = a1111._UNIT_KNOWN
REFUSED = set(a1111._UNIT_DEFAULT_ONLY)
NO_EFFECT = a1111._UNIT_NO_EFFECT


def translate(values: dict):
    translated = a1111.Translated({})
    return a1111.control_unit({**BASE, **values}, "args[0]", NO_URLS, translated), translated


def test_each_field_is_in_exactly_one_group():
    assert len(EXTENSION_FIELDS) == 33 and set(OTHER) == set(EXTENSION_FIELDS)
    for field in EXTENSION_FIELDS:
        assert (field in HONOURED) + (field in REFUSED) + (field in NO_EFFECT) == 1, field


@pytest.mark.parametrize("field", EXTENSION_FIELDS)
def test_a_non_default_value_is_honoured_refused_or_without_effect(field):
    baseline, _ = translate({})
    if field in REFUSED:
        with pytest.raises(ParameterError, match=rf"args\[0\]\.{field}: .* not supported by kekong"):
            translate({field: OTHER[field]})
        return
    if field == "mask":  # a unit mask is an inpaint mask kekong takes from the request, and says so
        with pytest.raises(ParameterError, match=r"args\[0\]"):
            translate({field: OTHER[field]})
        return
    changed, translated = translate({field: OTHER[field]})
    if field in NO_EFFECT:
        assert changed == baseline, field
    else:
        assert changed != baseline, field
    assert not any(field in warning for warning in translated.warnings if "unknown" in warning)
