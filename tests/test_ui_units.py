"""The web UI's control units: each detector's own parameters (from the registry's declarations)
in the unit's slots, sent only when changed, and up to MAX_UNITS units, as many shown as asked."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI

from kekong.choices import MAX_UNITS
from kekong.detect import get, list_detectors
from kekong.request import build_request
from kekong.ui import units
from kekong.ui.app import UI


@pytest.fixture(scope="module")
def ui() -> UI:
    built = UI(FastAPI(), None)
    built.blocks()
    return built


def test_slots_are_as_many_as_the_detector_declaring_the_most_needs():
    counts = units.slot_counts()
    for detector in list_detectors():
        for kind, params in units.shown_params(detector.name).items():
            assert len(params) <= counts[kind], detector.name
    for kind in counts:
        assert any(len(units.shown_params(d.name)[kind]) == counts[kind] for d in list_detectors()), kind
    assert counts["number"] >= 2  # canny's two thresholds, sd-webui-controlnet's threshold_a / threshold_b


def test_picking_a_detector_shows_its_declared_parameters_and_hides_the_rest():
    counts = units.slot_counts()
    canny = get("canny").params
    updates = units.slot_updates("canny", counts)
    assert len(canny) == 2 < counts["number"]  # other detectors declare more number parameters
    numbers, rest = updates[:len(canny)], updates[len(canny):]  # canny's two, then every other slot
    for update, param in zip(numbers, canny, strict=True):
        assert update["visible"] and update["label"] == param.name.replace("_", " ")
        assert (update["minimum"], update["maximum"], update["value"]) == (param.min, param.max, param.default)
        assert update["step"] == 1  # integer thresholds
    assert all(update == {"__type__": "update", "visible": False} for update in rest)
    seg = units.slot_updates("seg_person", counts)
    [choice] = [u for u in seg[counts["number"] + counts["flag"]:] if u.get("visible")]
    assert choice["choices"] == list(next(p for p in get("seg_person").params if p.choices).choices)
    assert all(u.get("visible") is False for u in units.slot_updates("none", counts))


def test_float_parameters_step_by_about_a_hundredth_of_their_range():
    [threshold] = [p for p in get("seg_person").params if p.name == "threshold"]  # 0.05–0.95
    assert units.slider_step(threshold) == pytest.approx(0.001)
    [sigma] = get("lineart_standard").params  # 0.5–32
    assert units.slider_step(sigma) == pytest.approx(0.1)


def test_only_changed_parameters_are_sent_and_they_reach_the_request(ui):
    counts = ui.slot_counts
    slots = [50.0, 200, False, None]  # low threshold moved, high at its default
    assert units.unit_params("canny", slots, counts) == {"low_threshold": 50}
    assert units.unit_params("canny", [100, 200, False, None], counts) == {}
    image = np.zeros((64, 64, 3), np.uint8)
    unit = (True, image, "canny", "Automatic", 1, 0, 1, "Balanced", "Crop and Resize", 512, None, False, *slots)
    plain = (True, image, "none", "Automatic", 1, 0, 1, "Balanced", "Crop and Resize", 512, None, False, 7, 8, True,
             None)  # slots a `none` unit does not show are not sent
    request = build_request(**ui.fields("x", "", "Euler a", 10, 2, 3, 64, 64, 1, None, 0.5, [unit, plain]))
    assert request.controls[0].params["low_threshold"] == 50 and request.controls[1].params == {}


def test_max_units_are_built_three_shown_and_the_setting_shows_more(ui):
    assert len(ui.panels) == MAX_UNITS
    assert [p.tab.visible for p in ui.panels] == [i < units.DEFAULT_UNITS for i in range(MAX_UNITS)]
    assert [u["visible"] for u in units.visible_units(5)] == [i < 5 for i in range(MAX_UNITS)]
    count = ui.named["unit_count"]
    assert (count.minimum, count.maximum, count.value) == (1, MAX_UNITS, 3)


def test_units_past_the_count_are_not_sent_even_when_enabled(ui):
    image = np.zeros((64, 64, 3), np.uint8)
    data = {c: c.value for c in ui.inputs()}
    data[ui.named["prompt"]] = "x"
    for panel in ui.panels[:5]:
        data[panel.parts["enabled"]], data[panel.parts["image"]] = True, image
    data[ui.named["unit_count"]] = 4
    assert len(ui.collect(data)["controls"]) == 4
    data[ui.named["unit_count"]] = 5
    assert len(ui.collect(data)["controls"]) == 5


def test_sending_an_image_to_a_unit_fills_that_unit_only(ui, tmp_path):
    from kekong.io import save_image

    path = save_image(np.full((32, 32, 3), 200, np.uint8), tmp_path / "out.png")
    updates = ui.send_to_unit([(str(path), "seed 1")], 0, "4")
    image, enabled = updates[2 * 3], updates[2 * 3 + 1]
    assert image["value"].shape == (32, 32, 3) and enabled["value"] is True
    assert all(u == {"__type__": "update"} or u.get("__type__") == "skip" or "value" not in u
               for i, u in enumerate(updates[:-1]) if i not in (6, 7))
    assert updates[-1]["selected"] == "unit3"
