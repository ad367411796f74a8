"""`kekong prompt describe` structure mode on scikit-image photos against hand labels (issue 23
item 6): colours named as a person would, greyscale photos called photos, a profile not
"looking at viewer", no subject it cannot detect; any uint8 HxW / HxWx1 / HxWx3 / HxWx4 array."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from kekong.errors import ImageError
from kekong.prompt.describe import colour_name, describe_structure, dominant_colours, picture_kind

# photo → colours that must be named (any order), colours that must not
COLOURS = {
    "astronaut": ({"orange", "white"}, {"green", "blue", "purple", "silver"}),
    "chelsea": ({"brown"}, {"blue", "green", "purple"}),
    "coffee": ({"orange"}, {"blue", "green", "purple"}),
    "rocket": ({"blue"}, {"green", "red", "purple"}),
    "hubble_deep_field": ({"black"}, {"green", "red"}),
    "immunohistochemistry": ({"brown", "white"}, {"blue", "green"}),
}
GREY_PHOTOS = ("camera", "coins", "moon", "brick", "gravel", "grass")


@pytest.mark.parametrize("name", sorted(COLOURS))
def test_colours_match_hand_labels(name):
    wanted, unwanted = COLOURS[name]
    named = set(dominant_colours(getattr(data, name)()))
    assert wanted <= named and not named & unwanted


def test_the_astronauts_suit_is_orange(astronaut):
    description = describe_structure(astronaut)
    assert description.data["clothes"] == "orange" and "orange clothes" in description.tags
    assert "looking at viewer" in description.tags


@pytest.mark.parametrize(("rgb", "name"), [((210, 97, 62), "orange"), ((102, 51, 44), "brown"), ((12, 7, 8), "black"),
                                           ((203, 192, 188), "white"), ((128, 128, 130), "grey"),
                                           ((46, 57, 84), "blue"), ((220, 20, 60), "red"), ((34, 139, 34), "green")])
def test_colour_names(rgb, name):
    assert colour_name(np.array(rgb)) == name


@pytest.mark.parametrize("name", GREY_PHOTOS)
def test_greyscale_photos_are_photos_without_colour_names(name):
    image = getattr(data, name)()
    assert image.ndim == 2
    assert picture_kind(image) == "photo"
    assert dominant_colours(np.repeat(image[:, :, None], 3, 2))  # colours exist, but are not said:
    description = describe_structure(image)
    assert "greyscale" in description.tags and "illustration" not in description.tags
    assert description.data["colours"] == []


def test_kinds_are_said_only_when_known():
    assert picture_kind(data.horse().astype(np.uint8) * 255) == "lineart"
    assert picture_kind(data.logo()) == "illustration"
    assert picture_kind(data.colorwheel()) is None  # a smooth synthetic gradient: neither, so nothing


def test_a_profile_is_not_looking_at_the_viewer(camera):
    description = describe_structure(camera[:, :, 0])
    assert description.data["people"] == 1
    assert "profile" in description.tags and "looking at viewer" not in description.tags


def test_a_cat_is_not_named_nor_a_person(chelsea):
    description = describe_structure(chelsea)
    assert description.data["people"] == 0 and "no humans" in description.tags
    assert not {"cat", "solo", "one person", "animal"} & set(description.tags)


@pytest.mark.parametrize("shape", ["HxW", "HxWx1", "HxWx3", "HxWx4"])
def test_every_array_layout_is_accepted(shape):
    grey = data.camera()
    image = {"HxW": grey, "HxWx1": grey[:, :, None], "HxWx3": np.repeat(grey[:, :, None], 3, 2),
             "HxWx4": np.dstack([np.repeat(grey[:, :, None], 3, 2), np.full_like(grey, 255)])}[shape]
    assert describe_structure(image).tags == describe_structure(np.repeat(grey[:, :, None], 3, 2)).tags


def test_a_bad_array_is_one_clear_error():
    with pytest.raises(ImageError, match="uint8"):
        describe_structure(np.zeros((8, 8), np.float32))
    with pytest.raises(ImageError, match="HxW"):
        describe_structure(np.zeros((8, 8, 2), np.uint8))
