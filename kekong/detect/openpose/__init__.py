"""OpenPose detectors (body / hands / face) from mediapipe, rendered as ControlNet expects."""

from __future__ import annotations

import numpy as np

from kekong.detect.openpose.keypoints import Person, PoseResult
from kekong.detect.openpose.mediapipe_pose import detect_pose
from kekong.detect.openpose.render import draw_pose
from kekong.detect.registry import DetectResult, Param, detector
from kekong.detect.resolution import ResizeMode
from kekong.sizes import check_canvas

__all__ = ["Person", "PoseResult", "detect_pose", "draw_pose", "render_json"]

POSE_MODELS = ("control_v11p_sd15_openpose", "thibaud/controlnet-openpose-sdxl-1.0")
PARAMS = (
    Param("max_people", 4, "most people to look for", 1, 16),
    Param("min_visibility", 0.5, "body keypoints less visible than this are left out", 0.0, 1.0),
)
VARIANTS = {  # name → (body, hands, face, what it draws)
    "openpose": (True, False, False, "body skeleton"),
    "openpose_hand": (True, True, False, "body skeleton and hands"),
    "openpose_face": (True, False, True, "body skeleton and face"),
    "openpose_faceonly": (False, False, True, "face only"),
    "openpose_full": (True, True, True, "body skeleton, hands and face"),
}


# mediapipe's pose model misplaces and invents people on images much smaller than this (at 128 px a
# second person appeared in the astronaut's helmet): detection runs at ≥ 256 px and the keypoints,
# normalised, are drawn at the processor resolution (what pixel perfect picks for a small target).
POSE_MIN_RES = 256


def _make(body: bool, hands: bool, face: bool):
    def run(image: np.ndarray, max_people: int = 4, min_visibility: float = 0.5,
            out_hw: tuple[int, int] | None = None) -> DetectResult:
        pose = detect_pose(image, body=body, hands=hands, face=face,
                           max_people=max_people, min_visibility=min_visibility)
        if out_hw is not None:
            pose = PoseResult(people=pose.people, width=out_hw[1], height=out_hw[0])
        drawn = draw_pose(pose, body=body, hands=hands, face=face)
        return DetectResult(drawn, pose.to_json())

    return run


for _name, (_body, _hands, _face, _what) in VARIANTS.items():
    detector(
        _name, f"OpenPose {_what} from mediapipe's bundled models, in OpenPose colours; "
        "keypoints exported as OpenPose JSON.",
        params=PARAMS, feeds=POSE_MODELS, pad64=False, structured=True, min_res=POSE_MIN_RES,
    )(_make(_body, _hands, _face))


def render_json(data: dict | str, width: int | None = None, height: int | None = None,
                resize_mode: ResizeMode | str | None = None) -> np.ndarray:
    """Render a control map from OpenPose JSON (as exported by kekong or pose editors). With a
    resize mode, a canvas of another shape gets the pose fitted as a map would be (else stretched)."""
    pose = PoseResult.from_json(data)
    if resize_mode is not None and (width or pose.width, height or pose.height) != (pose.width, pose.height):
        check_canvas(width or pose.width, height or pose.height)
        pose = pose.fitted(width or pose.width, height or pose.height, resize_mode)
    return draw_pose(pose, width, height)
