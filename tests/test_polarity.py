"""A ready map of the inverse polarity of what the unit's model reads is named, with the fix (issue 23 item 3)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from kekong.detect.polarity import dark_lines_on_light, polarity_warning, reads_light_lines
from kekong.io import save_image


def _outline(size: int = 64) -> np.ndarray:
    """White lines on black, as the line ControlNets (and kekong-shapes-outline) read them."""
    image = np.zeros((size, size, 3), np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, (255, 255, 255), 2)
    return image


def test_polarity_is_read_from_the_median_and_the_line_pixels():
    assert not dark_lines_on_light(_outline())
    assert dark_lines_on_light(255 - _outline())
    grey_sketch = np.full((64, 64, 3), 230, np.uint8)  # pencil on off-white paper
    grey_sketch[20:22, 10:50] = 60
    assert dark_lines_on_light(grey_sketch)
    assert not dark_lines_on_light(np.full((64, 64, 3), 255, np.uint8))  # no lines: nothing to judge


@pytest.mark.parametrize(("model", "expected"), [
    ("kekong-shapes-outline", "`scribble_sketch` (a sketch on white paper) or `invert`"),
    ("control_v11p_sd15_canny", "`invert`"),
    ("control_v11p_sd15_scribble", "`scribble_sketch`"),
])
def test_an_inverted_map_for_a_line_model_names_the_fix(model, expected):
    message = polarity_warning(255 - _outline(), model, 1)
    assert message is not None and message.startswith("control unit 1: the map has dark lines on a light background")
    assert model in message and expected in message
    assert polarity_warning(_outline(), model, 1) is None


def test_models_that_read_no_lines_are_not_judged():
    assert not reads_light_lines("control_v11f1p_sd15_depth") and not reads_light_lines("control_v11p_sd15_seg")
    assert polarity_warning(255 - _outline(), "control_v11f1p_sd15_depth", 0) is None


@pytest.mark.parametrize("inverted", [True, False])
def test_the_cli_warns_for_a_black_on_white_sketch_given_as_a_ready_map(tmp_path, inverted):
    sketch = save_image(255 - _outline() if inverted else _outline(), tmp_path / "sketch.png")
    done = subprocess.run([sys.executable, "-m", "kekong.cli", "generate", "a red circle on a light blue background",
                           "--control", f"none:{sketch}", "--steps", "2", "--seed", "1", "-o", str(tmp_path / "o.png")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warned = "warning: control unit 0: the map has dark lines on a light background, but kekong-shapes-outline" \
        in done.stderr
    assert warned is inverted, done.stderr
    assert ("use the detector `scribble_sketch`" in done.stderr) is inverted
