"""Re-pose (`request.repose`): the photo's people warped to the edited pose (moving least squares on their
keypoints, detect/openpose/warp.py), then an inpaint of the areas the warp uncovered, with the edited
skeleton as the pose unit's map. `expand` turns a re-pose request into the plain inpaint request the
pipeline runs; the request the images record (recipe, infotext) stays the re-pose one, so a replay warps
again from the photo and the poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kekong.detect.openpose.keypoints import PoseResult
from kekong.errors import KekongError
from kekong.io import encode_image, image_source, load_image
from kekong.repose_spec import ReposeSpec
from kekong.request import GenerationRequest


@dataclass
class Reposed:
    """What the warp makes of a re-pose: the warped photo, the areas to repaint, the edited skeleton."""

    image: np.ndarray  # H×W×3 uint8, the photo's size
    mask: np.ndarray  # H×W uint8, 255 = uncovered (grown by mask_grow)
    pose_map: np.ndarray  # H×W×3 uint8, the edited pose rendered at the photo's size
    before: PoseResult  # the photo's pose (given or detected)
    handles: int


def photo_pose(picture: np.ndarray, after: PoseResult) -> PoseResult:
    """The photo's pose, detected with the parts (hands, face) the edited pose has."""
    from kekong.detect.openpose import detect_pose

    parts = {part: any(getattr(p, name) is not None for p in after.people for name in names)
             for part, names in (("hands", ("left_hand", "right_hand")), ("face", ("face",)))}
    found = detect_pose(picture, body=True, max_people=max(1, len(after.people)), **parts)
    if not found.people:
        raise KekongError("no person found on the photo to re-pose (give its pose as source_pose / --from)")
    return found


def warp_photo(spec: ReposeSpec, picture: np.ndarray | None = None) -> Reposed:
    """The warp of a re-pose (the photo read from spec.image unless given)."""
    from kekong.detect.openpose import render_json
    from kekong.detect.openpose.warp import warp_pose

    picture = load_image(image_source(spec.image)) if picture is None else picture
    after = PoseResult.from_json(spec.pose)
    before = PoseResult.from_json(spec.source_pose) if spec.source_pose is not None else photo_pose(picture, after)
    result = warp_pose(picture, before, after, mode=spec.warp, pins=[tuple(p) for p in spec.pins],
                       layered=spec.layered)
    mask = result.mask
    if spec.mask_grow and mask.any():
        size = 2 * spec.mask_grow + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    h, w = picture.shape[:2]
    return Reposed(result.image, mask, render_json(spec.pose, w, h), before, result.handles)


def _data_uri(image: np.ndarray) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(encode_image(image, "PNG", compress_level=1)).decode()


def expand(request: GenerationRequest, base: object) -> GenerationRequest:
    """The inpaint request a re-pose runs: init image = the warped photo, mask = what the warp uncovered,
    the pose unit's map = the edited skeleton (read by `base`'s openpose ControlNet unless the unit names
    one); units without an image of their own read the warped photo (so an extra canny or depth unit
    follows the moved people). A request without `repose` is returned as is."""
    spec = request.repose
    if spec is None:
        return request
    fields = request.model_dump(exclude={"repose"})
    pose_unit = fields["controls"][spec.pose_unit] if spec.pose_unit is not None else None
    if pose_unit is not None and pose_unit["model"] is None:
        from kekong.generation.units.files import default_controlnet

        try:
            pose_unit["model"] = default_controlnet(base, "openpose")
        except KekongError as error:
            raise KekongError(f"repose: {error} (the pose unit's model, --pose-model), or re-pose without the "
                              "pose unit (--no-pose-unit)") from None
    done = warp_photo(spec)
    warped = _data_uri(done.image)
    for index, unit in enumerate(fields["controls"]):
        if index == spec.pose_unit:
            unit["image"] = _data_uri(done.pose_map)
        elif unit["image"] is None:
            unit["image"] = warped
    fields.update(init_image=warped, mask=_data_uri(done.mask))
    return GenerationRequest(**fields)
