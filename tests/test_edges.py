"""Edge/line/scribble maps on real photos: polarity, density and that they follow the picture."""

import numpy as np
import pytest

from kekong.detect import run
from kekong.errors import ParameterError


def white_fraction(image: np.ndarray, level: int = 128) -> float:
    return float((image[..., 0] >= level).mean())


def test_canny_is_thin_white_on_black_and_thresholds_matter(camera):
    edges = run("canny", camera).image
    assert set(np.unique(edges)) == {0, 255}
    assert 0.02 < white_fraction(edges) < 0.25  # edges, not noise, not empty
    assert white_fraction(run("canny", camera, low_threshold=200, high_threshold=250).image) \
        < white_fraction(edges)


@pytest.mark.parametrize("name", ["lineart_standard", "scribble_xdog", "softedge_dog", "mlsd_lsd"])
def test_line_maps_are_white_lines_on_a_black_background(astronaut, name):
    lines = run(name, astronaut).image
    assert lines.dtype == np.uint8 and lines.shape == (512, 512, 3)
    assert np.median(lines) < 40  # background is black
    assert 0.005 < white_fraction(lines) < 0.45  # plausible density


def test_lineart_finds_the_edges_of_a_drawn_shape():
    paper = np.full((256, 256, 3), 255, np.uint8)
    paper[100:104, 40:220] = 0  # one dark horizontal stroke
    lines = run("lineart_standard", paper, res=256).image[..., 0]
    assert lines[100:104, 60:200].mean() > 100 and lines[:80].max() < 10


def test_scribble_from_sketch_thickens_strokes():
    paper = np.full((512, 512, 3), 255, np.uint8)
    paper[255:257, 50:450] = 0  # a 2 px pencil line
    strokes = run("scribble_sketch", paper).image[..., 0]
    assert strokes[254:259, 100].min() == 255 and strokes[0:200].max() == 0  # thick, white, local


def test_mlsd_lsd_keeps_straight_lines_only(coffee):
    square = np.zeros((512, 512, 3), np.uint8)
    square[128:384, 128:384] = 255
    lines = run("mlsd_lsd", square).image[..., 0]
    assert lines[128:384, 120:136].max() == 255  # left side found
    assert lines[200:300, 200:300].max() == 0  # nothing inside


def test_invert_and_threshold(camera):
    assert np.array_equal(run("invert", camera).image, 255 - camera)
    binary = run("threshold", camera, threshold=100).image
    assert set(np.unique(binary)) == {0, 255}


def test_parameters_are_validated_before_running(camera):
    with pytest.raises(ParameterError, match="above its maximum"):
        run("canny", camera, low_threshold=300)
    with pytest.raises(ParameterError, match="unknown parameter"):
        run("canny", camera, sigma=2)
    with pytest.raises(ParameterError, match="must be int"):
        run("canny", camera, low_threshold="lots")
    with pytest.raises(ParameterError, match="did you mean"):
        run("cany", camera)
