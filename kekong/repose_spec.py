"""Re-posing a photo: its people warped to an edited OpenPose pose, then the areas the warp uncovered
inpainted (with the edited skeleton as a control map). A leaf: the request holds one of these (`repose`),
generation/repose.py turns it into the init image, mask and pose map of an inpaint.

What the spec names is all a replay needs: the photo (an input image like the others), the edited pose
and, when given, the photo's own pose, inline as OpenPose JSON; the warp is deterministic.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

WARP_MODES = ("rigid", "similarity", "affine")  # as kekong.detect.openpose.warp.MODES (the test checks it)


class ReposeSpec(BaseModel):
    """The photo, the pose to move its people to, and how the warp and its mask are made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(min_length=1, description="the photo whose people move (path or data: URI)")
    pose: dict[str, Any] = Field(description="the edited pose (OpenPose JSON, the same people in the same order)")
    source_pose: dict[str, Any] | None = Field(None, description="the photo's pose (OpenPose JSON); default: "
                                               "detected on the photo")
    warp: Literal["rigid", "similarity", "affine"] = Field(
        "rigid", description="warp mode: rigid (limbs keep their shape), similarity (may scale) or affine")
    layered: bool = Field(True, description="move each limb the edit turns as a layer of its own over the "
                          "rest; the place it left is filled from around it and masked (false: one MLS warp "
                          "of the whole picture)")
    pins: list[tuple[float, float]] = Field(default_factory=list, max_length=64,
                                            description="x,y pixels of the photo that stay where they are")
    mask_grow: int = Field(8, ge=0, le=128, description="grow the warp's uncovered areas by this many px "
                           "(of the photo) before inpainting them")
    pose_unit: int | None = Field(None, ge=0, description="index of the control unit that reads the edited "
                                  "skeleton (rendered at the photo's size) as its map; None: no pose unit")

    @field_validator("pose", "source_pose", mode="before")
    @classmethod
    def _openpose(cls, value: Any) -> Any:
        """OpenPose JSON as a dict (its text is read too), checked by the pose reader."""
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as error:
                raise ValueError(f"pose JSON is malformed: {error}") from None
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        from kekong.detect.openpose.keypoints import PoseResult
        from kekong.errors import KekongError

        try:
            PoseResult.from_json(value)
        except KekongError as error:
            raise ValueError(str(error)) from None
        return value


def infotext_params(spec: ReposeSpec) -> dict[str, Any]:
    """The re-pose in the infotext: how the photo was warped (the poses themselves are in the recipe)."""
    from hashlib import sha256

    digest = sha256(json.dumps(spec.pose, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {"Repose warp": spec.warp, "Repose layered": "yes" if spec.layered else "no",
            "Repose mask grow": spec.mask_grow,
            "Repose pins": len(spec.pins) or None, "Repose pose hash": digest[:10]}
