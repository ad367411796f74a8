"""The detectors this server can run, in the shape sd-webui-controlnet's /controlnet/module_list gives them.

The local models (base checkpoints, ControlNets) are listed by kekong.models.catalog.
"""

from __future__ import annotations

from typing import Any

from kekong.declaration import spec
from kekong.detect import list_detectors
from kekong.request import ControlUnit


def modules() -> list[dict[str, Any]]:
    """Detectors with their sliders, as /controlnet/module_list's module_detail."""
    res = spec("res", ControlUnit)  # the processor resolution, as the request declares it
    rows = []
    for detector in list_detectors():
        sliders = [{"name": "Preprocessor Resolution", "value": res.default, "min": res.ge, "max": res.le}] \
            if detector.uses_resolution else []
        for param in detector.params:
            slider: dict[str, Any] = {"name": param.name, "value": param.default, "help": param.help}
            if param.min is not None:
                slider.update(min=param.min, max=param.max)
            if param.choices:
                slider["choices"] = list(param.choices)
            sliders.append(slider)
        rows.append({"name": detector.name, "model_free": detector.needs_weights is None,
                     "needs_weights": detector.needs_weights, "description": detector.description,
                     "sliders": sliders})
    return rows
