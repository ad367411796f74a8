"""Detector registry: name → function, parameters with defaults and bounds, what it feeds.

Names follow sd-webui-controlnet's module names so API clients can name them. Parameters are
declared once here and drive validation, `kekong detect --list` and (later) the API and UI.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kekong.errors import ParameterError

ParamValue = int | float | bool | str


@dataclass(frozen=True)
class Param:
    """One detector parameter: default, bounds or choices, and what it does."""

    name: str
    default: ParamValue
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None

    def coerce(self, detector: str, value: Any) -> ParamValue:
        """Parse (CLI strings included) and check bounds; errors name detector and parameter."""
        where = f"{detector}: parameter {self.name!r}"
        kind = type(self.default)
        try:
            if kind is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(value)
                    value = lowered in ("1", "true", "yes", "on")
                parsed: ParamValue = bool(value)
            elif kind is int:
                number = float(value)
                if number != int(number):
                    raise ValueError(value)
                parsed = int(number)
            elif kind is float:
                parsed = float(value)
                if not np.isfinite(parsed):
                    raise ValueError(value)
            else:
                parsed = str(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{where} must be {kind.__name__}, got {value!r}") from None
        if self.choices is not None and parsed not in self.choices:
            raise ParameterError(f"{where} must be one of {', '.join(self.choices)}; got {parsed!r}")
        if self.min is not None and parsed < self.min:  # type: ignore[operator]
            raise ParameterError(f"{where} = {parsed} is below its minimum {self.min}")
        if self.max is not None and parsed > self.max:  # type: ignore[operator]
            raise ParameterError(f"{where} = {parsed} is above its maximum {self.max}")
        return parsed


@dataclass
class DetectResult:
    """A control map plus structured data where there is some (e.g. OpenPose JSON)."""

    image: np.ndarray  # uint8 HxWx3, or float32 HxWx3 where uint8 can't hold it (inpaint −1)
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Detector:
    name: str
    fn: Callable[..., np.ndarray | DetectResult]
    description: str
    params: tuple[Param, ...] = ()
    feeds: tuple[str, ...] = ()  # ControlNet 1.1 (or adapter) models trained on this kind of map
    needs_weights: str | None = None  # file the learned detector loads, if any
    approximates: str | None = None  # the learned detector a classical stand-in imitates
    pad64: bool = True  # edge-pad to multiples of 64 before running (learned networks need it)
    uses_resolution: bool = True  # runs at the processor resolution
    takes_mask: bool = False  # needs an inpaint mask beside the image
    structured: bool = False  # returns structured data beside the map (OpenPose JSON), for --json
    # Detection runs at no less than this short side; below it the detector is given `out_hw`, the size the
    # processor resolution gives, and draws its map there (pose keypoints scale; a 128 px image loses them).
    min_res: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sliders(self) -> tuple[Param, ...]:
        """The numeric parameters in declaration order: the first two are sd-webui-controlnet's
        threshold_a / threshold_b (its "sliders"), in the API and in infotext."""
        return tuple(p for p in self.params if isinstance(p.default, (int, float)) and not isinstance(p.default, bool))

    def validate(self, params: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Fill defaults and check every given parameter; unknown names are errors."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            accepted = ", ".join(known) or "none"
            raise ParameterError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; accepted: {accepted}")
        return {name: p.coerce(self.name, params.get(name, p.default)) for name, p in known.items()}


DETECTORS: dict[str, Detector] = {}


def register(detector: Detector) -> Detector:
    if detector.name in DETECTORS:
        raise ValueError(f"detector {detector.name!r} registered twice")
    DETECTORS[detector.name] = detector
    return detector


def detector(name: str, description: str, **fields: Any) -> Callable[[Callable], Callable]:
    """Decorator form of `register`, keeping declaration next to the function."""

    def wrap(fn: Callable) -> Callable:
        register(Detector(name=name, fn=fn, description=description, **fields))
        return fn

    return wrap


def _identity(image: np.ndarray) -> np.ndarray:
    return image.copy()


# `none`: the image is the control map already (sd-webui-controlnet's "none" preprocessor hands it on as it is)
NONE = Detector("none", _identity, "No preprocessor: the image already is the control map.", pad64=False,
                uses_resolution=False)


def get(name: str) -> Detector:
    """The detector for a kekong name or any of sd-webui-controlnet's preprocessor names and labels
    (detect/extension_names.py); an identifier kekong does not run raises with the reason."""
    from kekong.detect import load_all  # registration happens on import of the modules
    from kekong.detect.extension_names import lookup

    load_all()
    if name in DETECTORS:
        return DETECTORS[name]
    if name == "none":
        return NONE
    preprocessor = lookup(name)
    if preprocessor is not None:
        if preprocessor.runs is not None:
            return NONE if preprocessor.runs == "none" else DETECTORS[preprocessor.runs]
        from kekong.detect.refusals import refuse

        refuse(name, preprocessor)
    close = difflib.get_close_matches(name, DETECTORS, n=4, cutoff=0.6)
    close += [n for n in DETECTORS if n.startswith(name.split("_")[0]) and n not in close][:4]
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    raise ParameterError(f"unknown detector {name!r}{hint}; `kekong detect --list` lists them")
