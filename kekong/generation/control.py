"""Control units, from request to prepared units: each unit prepared by the kind that claims it
(generation/units/: its model loaded and checked against the base — before any detection runs),
then its image read, cropped like the init image, and made into what the unit feeds."""

from __future__ import annotations

import numpy as np

from kekong.errors import ParameterError
from kekong.generation.units import registry
from kekong.generation.units.base import Unit, region_mask, to_tensor
from kekong.generation.units.controlnet import ControlNetUnit
from kekong.generation.units.files import default_controlnet
from kekong.io import image_source, load_image
from kekong.request import ControlUnit

__all__ = ["PreparedUnit", "Unit", "default_controlnet", "detect_units", "load_units", "region_mask", "to_tensor"]

PreparedUnit = ControlNetUnit  # what training and the benchmarks build: a ControlNet unit


def load_units(base, units: list[ControlUnit]) -> list[Unit]:
    """Load every unit's model and check it fits the base — before any detection runs."""
    return [registry.prepare(base, unit, index) for index, unit in enumerate(units)]


def detect_units(prepared: list[Unit], size_hw: tuple[int, int], init_image: str | None,
                 crop: tuple[int, int, int, int] | None = None, inpaint_mask: np.ndarray | None = None) -> None:
    """Read each unit's image and have its kind make what the unit feeds (by default: run its
    detector, fit the map to the generation size, read its region mask).

    With an "only masked" inpaint crop, a control image the size of the init image is cropped
    the same way, so the structure lines up with the repainted region. Inpaint units (detectors
    that take a mask: inpaint_only, inpaint_global_harmonious) take the request's inpaint mask."""
    for item in prepared:
        unit = item.unit
        reference = unit.image or init_image
        if reference is None:
            raise ParameterError(f"control unit {item.index} has no image")
        image = load_image(image_source(reference))
        mask = None
        if takes_inpaint_mask(unit.module):
            if inpaint_mask is None or reference != init_image:
                raise ParameterError(f"an {unit.module} unit works on the init image with the request's inpaint mask")
            mask = inpaint_mask
        if crop is not None and reference == init_image:
            image = image[crop[1]:crop[3], crop[0]:crop[2]]
            mask = mask[crop[1]:crop[3], crop[0]:crop[2]] if mask is not None else None
        item.detect(image, mask, size_hw, reference)


def takes_inpaint_mask(module: str) -> bool:
    """Whether a unit's detector reads the request's inpaint mask (inpaint_only, inpaint_global_harmonious)."""
    from kekong.detect.registry import DETECTORS

    detector = DETECTORS.get(module)
    return detector is not None and detector.takes_mask
