"""What a video run takes besides the generation request: trimming and the temporal-consistency
switches, declared once (the CLI options, the job API and the recipe read these fields).

Every switch is recorded in the video's recipe, so a run says how its frames were tied together."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_FRAMES = 2000  # frames generated per run (a server may lower it)
MAX_SOURCE_SIDE = 8192  # a source video's side; larger is refused before any frame is decoded
MAX_SOURCE_PIXELS = 40_000_000  # a source frame's pixels (the image cap's default)
VFR_TOLERANCE = 0.25  # a frame interval further than this fraction from the median makes a variable rate


class FlowMethod(str, Enum):
    DIS = "dis"  # OpenCV's dense inverse search (medium preset): fast, sharp motion boundaries
    FARNEBACK = "farneback"  # Farnebäck's polynomial expansion: smoother, slower


class VideoSettings(BaseModel):
    """Trimming and temporal consistency for `kekong video` and the video job."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    every: int = Field(1, ge=1, le=100, description="take every Nth source frame (the output rate is divided "
                       "by N)")
    max_frames: int = Field(0, ge=0, le=MAX_FRAMES, description=f"most frames to generate (0 = all, at most "
                            f"{MAX_FRAMES})")
    start: float = Field(0.0, ge=0, le=86_400, description="first second of the source to use")
    end: float = Field(0.0, ge=0, le=86_400, description="last second of the source to use (0 = to its end)")
    fps: float = Field(24.0, gt=0, le=240, description="frame rate of a folder of frames (a video or GIF "
                       "keeps its own)")
    same_noise: bool = Field(True, description="every frame starts from the same noise (the seed's); off: "
                             "seed + frame number")
    reference: float = Field(0.0, ge=0, le=1, description="key-frame reference: later frames attend to the "
                             "first output (reference-only at this weight; 0 = off)")
    flow_strength: float = Field(0.3, ge=0, le=1, description="frames after the first start from the previous "
                                 "output warped by the source's optical flow, repainted at this strength (0 = off: "
                                 "each frame from noise); occluded areas start from fresh noise")
    flow_method: FlowMethod = Field(FlowMethod.DIS, description="optical flow between source frames")
    pose_smoothing: bool = Field(True, description="OpenPose units: keypoints smoothed across frames (One-Euro "
                                 "filter) before the map is drawn")
    smoothing_cutoff: float = Field(1.0, gt=0, le=30, description="One-Euro minimum cutoff (Hz): lower = "
                                    "steadier, more lag when still")
    smoothing_beta: float = Field(0.3, ge=0, le=10, description="One-Euro speed coefficient: higher = less lag "
                                  "in fast motion")

    @model_validator(mode="after")
    def _window(self) -> VideoSettings:
        if self.end and self.end <= self.start:
            raise ValueError(f"end {self.end} s is not after start {self.start} s")
        return self

    def recorded(self) -> dict:
        """The settings as the recipe records them."""
        return self.model_dump(mode="json")


def build_settings(**fields: object) -> VideoSettings:
    """VideoSettings with pydantic's errors as one ParameterError naming them."""
    from pydantic import ValidationError

    from kekong.errors import ParameterError
    from kekong.request import describe_validation_error

    try:
        return VideoSettings(**fields)
    except ValidationError as error:
        raise ParameterError(describe_validation_error(error).replace("invalid request", "invalid video settings")) \
            from None
