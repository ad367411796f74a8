"""How well did an image follow its control? The unit's detector runs again on the output, at the
map's size, and its map is compared with the map the unit used (ControlNet++'s protocol):

- edges and lines (canny, lineart*, softedge*, scribble*, mlsd*, invert, threshold): edge F1
  within 2 px (`edge_f1`), and the maps' SSIM beside it;
- openpose* and dw_openpose_full: PCK@0.1 of the torso size over the reference's body keypoints, people matched by
  Hungarian assignment (`pose_pck`);
- depth*: scale-and-shift-invariant RMSE (`depth_rmse`, lower is better); normal*: mean angle
  in degrees (`normal_angle`, lower is better); seg*: mIoU over the classes present (`seg_miou`);
- `none` (a ready map): scored as the detector named by `score_as` (e.g. `canny` for an outline);
- units it cannot score (shuffle, reference, IP-Adapter, inpaint, tile, recolor, …) say why,
  never a made-up number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kekong.errors import ParameterError
from kekong.fidelity import metrics

EDGE_PREFIXES = ("canny", "lineart", "softedge", "scribble", "mlsd", "invert", "threshold")


@dataclass
class Score:
    """One unit's score: the metric's name and value (None when the unit cannot be scored, with why)."""

    metric: str | None
    value: float | None
    higher_is_better: bool = True
    extra: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", {}, None) or k in ("metric", "value")}


def family(module: str) -> str | None:
    """Which metric a detector's maps are scored with, or None."""
    if module.startswith(EDGE_PREFIXES):
        return "edges"
    if module == "dw_openpose_full":  # DW-Pose's OpenPose JSON, compared as openpose's
        return "openpose"
    for prefix in ("openpose", "depth", "normal", "seg"):
        if module.startswith(prefix):
            return prefix
    return None


def score_maps(kind: str, reference: Any, output: Any) -> Score:
    """Compare two maps (or two OpenPose JSONs for `openpose`) of the same kind."""
    if kind == "openpose":
        return Score("pck@0.1", metrics.pose_pck(reference, output))
    if reference.shape[:2] != output.shape[:2]:
        raise ParameterError(f"the maps differ in size: {reference.shape[1]}x{reference.shape[0]} and "
                             f"{output.shape[1]}x{output.shape[0]}")
    if kind == "edges":
        return Score("edge_f1@2px", metrics.edge_f1(reference, output), extra={"ssim": metrics.map_ssim(reference,
                                                                                                      output)})
    if kind == "depth":
        return Score("depth_ssi_rmse", metrics.depth_rmse(reference, output), higher_is_better=False)
    if kind == "normal":
        return Score("normal_angle_deg", metrics.normal_angle(reference, output), higher_is_better=False)
    if kind == "seg":
        return Score("seg_miou", metrics.seg_miou(reference, output))
    raise ParameterError(f"no metric for {kind!r} maps")


def score(output: np.ndarray, module: str, control: np.ndarray, params: dict[str, Any] | None = None,
          score_as: str | None = None, res: int = 512) -> Score:
    """Score `output` (an RGB image) against its control: `control` is the unit's source image (a
    photo, detected with `module`), or, for `module` "none", the ready map itself (scored as the
    detector `score_as`)."""
    from kekong.detect import run
    from kekong.detect.resolution import resize_map

    detector = score_as if module == "none" else module
    if detector is None:
        return Score(None, None, reason="a ready map (`none`) needs score_as= naming the detector whose maps it is "
                                        "(e.g. canny for an outline)")
    kind = family(detector)
    if kind is None:
        return Score(None, None, reason=f"{detector} maps have no fidelity metric (it transfers style, colour or "
                                        "content, not structure)")
    params = dict(params or {}) if module != "none" else {}
    if kind == "openpose":
        reference = run(detector, control, res=res, **params).data if module != "none" else None
        if reference is None:
            return Score(None, None, reason="a ready pose map carries no keypoints: score against the photo or the "
                                            "pose JSON it was drawn from")
        found = run(detector, output, res=res, **params).data or {}
        return score_maps("openpose", _normalised(reference), _normalised(found))
    if module == "none":  # a ready map: the output is detected at the map's own size, as it was made
        reference, res = control, max(64, min(control.shape[:2]))
    else:
        reference = run(detector, control, res=res, **params).image
    found = run(detector, output, res=res, **params).image
    found = resize_map(found, reference.shape[:2]) if found.shape[:2] != reference.shape[:2] else found
    return score_maps(kind, reference, found)


def _normalised(pose: dict[str, Any]) -> dict[str, Any]:
    """OpenPose JSON with coordinates in canvas fractions (so two canvases of other sizes compare)."""
    width, height = float(pose.get("canvas_width", 1)), float(pose.get("canvas_height", 1))
    people = []
    for person in pose.get("people", []):
        flat = np.asarray(person.get("pose_keypoints_2d") or [], np.float64).reshape(-1, 3)
        flat[:, 0] /= width
        flat[:, 1] /= height
        people.append({"pose_keypoints_2d": flat.ravel().tolist()})
    return {"people": people}


# A ready map (`none`) is scored as the kind its ControlNet's name says; the shipped outline model
# reads white outlines, which canny finds on the output.
_NAME_KINDS = (("openpose", "openpose"), ("canny", "canny"), ("outline", "canny"), ("lineart", "lineart_standard"),
               ("scribble", "canny"), ("softedge", "canny"), ("mlsd", "mlsd"), ("depth", "depth_midas"),
               ("normal", "normal_bae"), ("seg", "seg_ofade20k"))


def score_as_for(model_name: str) -> str | None:
    name = model_name.lower()
    return next((detector for key, detector in _NAME_KINDS if key in name), None)


def score_unit(image: np.ndarray, unit: Any, init_image: str | None = None) -> Score:
    """Score a generated image against one of its prepared units (the map it was generated against)."""
    from kekong.detect import run
    from kekong.detect.resolution import resize_map

    module = unit.unit.module
    if unit.kind not in ("controlnet", "union", "t2i_adapter"):
        return Score(None, None, reason=f"a {unit.kind or 'this'} unit steers content or style, not structure")
    detector = score_as_for(unit.model_name) if module == "none" else module
    kind = family(detector) if detector else None
    if kind is None or unit.detected is None:
        return Score(None, None, reason=f"{module} maps have no fidelity metric" if module != "none" else
                     f"the ready map's kind is not known from its model {unit.model_name}")
    params = dict(unit.unit.params) if module != "none" else {}
    if kind == "openpose":
        source = unit.unit.image or init_image
        if module == "none" or source is None:
            return Score(None, None, reason="a ready pose map carries no keypoints to compare")
        from kekong.io import image_source, load_image

        photo = load_image(image_source(source))
        reference = _fitted(run(module, photo, res=unit.unit.res, **params).data or {}, photo.shape[:2],
                            image.shape[:2], unit.unit.resize_mode)
        found = _normalised(run(module, image, res=unit.unit.res, **params).data or {})
        return score_maps("openpose", reference, found)
    reference = unit.detected if unit.detected.dtype == np.uint8 else None
    if reference is None:
        return Score(None, None, reason="the unit's map is not an image map")
    at_map_size = max(64, min(reference.shape[:2]))  # detected as the map was made: at its own size
    found = run(detector, image, res=at_map_size, **params).image
    if found.shape[:2] != reference.shape[:2]:
        found = resize_map(found, reference.shape[:2])
    return score_maps(kind, reference, found)


def score_generated(generated: Any) -> list[dict[str, Any]]:
    """One entry per control unit of a generated image: unit index, module, metric and value (or why not)."""
    return [{"unit": unit.index, "module": unit.unit.module,
             **score_unit(generated.image, unit, generated.request.init_image).as_dict()}
            for unit in generated.units]


def _fitted(pose: dict[str, Any], photo_hw: tuple[int, int], target_hw: tuple[int, int], mode: Any) -> dict:
    """A photo's OpenPose JSON moved onto the generation canvas as the unit's resize mode fitted it."""
    from kekong.detect.resolution import fit_geometry

    (nh, nw), (top, left) = fit_geometry(photo_hw, target_hw, mode)
    normal = _normalised(pose)
    for person in normal["people"]:
        flat = np.asarray(person["pose_keypoints_2d"], np.float64).reshape(-1, 3)
        flat[:, 0] = (flat[:, 0] * nw + left) / target_hw[1]
        flat[:, 1] = (flat[:, 1] * nh + top) / target_hw[0]
        person["pose_keypoints_2d"] = flat.ravel().tolist()
    return normal
