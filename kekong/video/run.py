"""Video to video: every selected source frame through `generate`, tied together in time.

`plan` checks everything before the first frame is generated (the source, the trimming, the
request for frame 0, the sizes); `run` generates frame after frame into a folder beside the
output, skipping frames a previous run of the same plan finished. Per frame:
- its control units read the source frame (a unit given its own image keeps it);
- OpenPose units (with pose_smoothing) get their keypoints through a One-Euro filter first;
- same_noise: every frame the seed's noise (else seed + frame number);
- reference > 0: a reference-only unit on the first output;
- flow_strength > 0: frames after the first are img2img from the previous output warped by the
  source's optical flow (occluded pixels fresh noise), repainted at that strength.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kekong.errors import KekongError, ParameterError
from kekong.io import load_image, save_image, write_atomic
from kekong.request import GenerationRequest, build_request
from kekong.video import decode, flow
from kekong.video.smooth import PoseSmoother
from kekong.video.spec import VideoSettings

FRAME = "frame"  # a unit image that means "this frame of the source"
NOT_FOR_VIDEO = ("init_image", "mask", "enable_hr", "detail")  # per-image features a video run does not take


@dataclass
class FrameDone:
    """Progress after a frame: how many are done (skipped ones included) and the estimate left."""

    done: int
    total: int
    number: int  # the source frame number
    skipped: bool
    seconds_left: float | None


@dataclass
class Plan:
    source: decode.SourceInfo
    numbers: list[int]  # source frame numbers, in order
    settings: VideoSettings
    fields: dict[str, Any]  # the generation request's fields; unit images FRAME where they read the frame
    size: tuple[int, int]  # (width, height)
    folder: Path
    seed: int
    first: GenerationRequest  # frame 0's request (checked)
    fingerprint: str = ""

    @property
    def rate(self):
        return self.source.rate / self.settings.every

    def frame_path(self, position: int) -> Path:
        return self.folder / f"{position:06d}.png"

    def source_path(self, position: int) -> Path:
        return self.folder / "source" / f"{position:06d}.png"


def frames_folder(out: Path) -> Path:
    """Where a run's frames go: `clip.mp4` → `clip.frames/`."""
    return out.with_name(out.stem + ".frames")


def plan(source: str | Path, out: Path, settings: VideoSettings, fields: dict[str, Any]) -> Plan:
    """Everything checked before any frame is generated."""
    from kekong.generation.pipeline import resolve_seed

    for name in NOT_FOR_VIDEO:
        if fields.get(name):
            raise ParameterError(f"{name} is not for video runs (each frame is one image made from the source frame)")
    if fields.get("batch_size", 1) != 1 or fields.get("batch_count", 1) != 1:
        raise ParameterError("batch_size and batch_count are 1 for video runs (one image per frame)")
    controls = [dict(unit) for unit in fields.get("controls") or []]
    if settings.reference and any(unit.get("module") == "reference_only" for unit in controls):
        raise ParameterError("the key-frame reference is a reference_only unit already: drop the request's "
                             "reference_only unit or set reference to 0")
    info = decode.probe(source, settings)
    numbers = decode.select(info, settings)
    width, height = output_size(info, fields)
    fields = {**fields, "controls": [{**unit, "image": unit.get("image") or FRAME} for unit in controls],
              "width": width, "height": height}
    folder = frames_folder(out)
    fingerprint = _fingerprint(info, numbers, settings, fields)
    seed = _recorded_seed(folder, fingerprint)
    if seed is None:
        seed = resolve_seed(int(fields.get("seed", -1)))
    first = build_request(**_frame_fields(fields, {FRAME: "frame.png"}, seed))
    if len(numbers) > 1:  # a later frame's request too (its flow start, its reference unit), before frame 0 runs
        later = _frame_fields(fields, {FRAME: "frame.png"}, seed)
        if settings.flow_strength:
            later.update(init_image="start.png", denoising_strength=settings.flow_strength)
        if settings.reference:
            later["controls"] = [*later["controls"], {"module": "reference_only", "image": "first.png",
                                                      "weight": settings.reference}]
        build_request(**later)
    return Plan(info, numbers, settings, fields, (width, height), folder, seed, first, fingerprint)


def output_size(info: decode.SourceInfo, fields: dict[str, Any]) -> tuple[int, int]:
    """The size asked for, else the source's shape with the model's native size as its short side
    (sides multiples of 8, within the request's bounds)."""
    from kekong.choices import MAX_SIDE, MIN_SIDE

    if fields.get("width") and fields.get("height"):
        return int(fields["width"]), int(fields["height"])
    from kekong.models.load import load_base

    base = load_base(fields.get("model"))  # None: the shipped model, as generate takes it
    native = base.unet.config.sample_size * base.vae_scale
    scale = native / min(info.width, info.height)
    width, height = (max(MIN_SIDE, min(MAX_SIDE, round(side * scale / 8) * 8)) for side in (info.width, info.height))
    return int(width), int(height)


def _fingerprint(info: decode.SourceInfo, numbers: list[int], settings: VideoSettings, fields: dict) -> str:
    stat = info.path.stat()
    described = {"source": [info.path.name, stat.st_size, info.frames], "numbers": [numbers[0], numbers[-1],
                 len(numbers)], "settings": settings.recorded(), "fields": fields}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _recorded_seed(folder: Path, fingerprint: str) -> int | None:
    """The seed of an earlier run of the same plan in `folder` (a random seed is kept across a
    resume); a folder from another plan is refused, not mixed in."""
    record = folder / "run.json"
    if not record.is_file():
        return None
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        raise KekongError(f"{record}: unreadable; remove the folder {folder.name} to start afresh") from None
    if data.get("fingerprint") != fingerprint:
        raise KekongError(f"{folder.name}/ holds frames of another run (other source, trimming or settings); "
                          "remove it, or write to another output, to start afresh")
    return int(data["seed"])


def _frame_fields(fields: dict[str, Any], images: dict[str, str], seed: int) -> dict[str, Any]:
    units = [{**unit, "image": images.get(unit["image"], unit["image"])} for unit in fields["controls"]]
    return {**fields, "controls": units, "seed": seed}


def run(plan: Plan, on_step: Callable | None = None, on_frame: Callable[[FrameDone], None] | None = None) -> None:
    """Generate every frame not yet in the folder; each is written as it finishes."""
    from kekong.generation.pipeline import generate

    previous_source = previous_output = None
    started, made = time.perf_counter(), 0
    total = len(plan.numbers)
    for position, number, frame, maps in source_frames(plan):
        out_file = plan.frame_path(position)
        skipped = out_file.is_file()
        if skipped:
            output = load_image(out_file)
        else:
            request = build_request(**frame_fields(plan, position, frame, previous_source, previous_output, maps))
            [generated] = generate(request, on_step)
            output = generated.image
            if position == 0:  # the video's recipe is frame 0's (and the settings): kept for a resumed run
                from kekong.provenance.recipe import build_recipe

                write_atomic(plan.folder / "recipe.json", json.dumps(build_recipe(generated)).encode())
            save_image(output, out_file)
            made += 1
        previous_source, previous_output = frame, output
        if on_frame is not None:
            left = total - position - 1
            rate = (time.perf_counter() - started) / made if made else None
            on_frame(FrameDone(position + 1, total, number, skipped, rate * left if rate is not None else None))


def source_frames(plan: Plan) -> Iterator[tuple[int, int, np.ndarray, dict[int, dict[str, Any]]]]:
    """(position, source frame number, the frame at the generation size, its pose maps) for each
    selected frame, in order; the folder and its run.json made first, each frame saved under
    source/ (later frames' control units read it there), pose maps drawn for every frame (so the
    smoothing filter sees each)."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    (plan.folder / "source").mkdir(exist_ok=True)
    write_atomic(plan.folder / "run.json", json.dumps({"fingerprint": plan.fingerprint, "seed": plan.seed,
                                                       "frames": len(plan.numbers)}).encode())
    smoother = PoseSmoother(plan.settings.smoothing_cutoff, plan.settings.smoothing_beta)
    for position, (number, image) in enumerate(decode.frames(plan.source, plan.numbers)):
        frame = fit(image, plan.size)
        source_file = plan.source_path(position)
        if not source_file.is_file():
            save_image(frame, source_file)
        yield position, number, frame, _pose_maps(plan, position, frame, smoother)


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A source frame at the generation size (cover, centred: the shape is kept)."""
    import cv2

    from kekong.detect.resolution import ResizeMode, fit_to_target

    width, height = size
    if image.shape[:2] == (height, width):
        return image
    if abs(image.shape[1] / image.shape[0] - width / height) < 0.02:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return fit_to_target(image, (height, width), ResizeMode.CROP_AND_RESIZE)


def frame_seed(plan: Plan, position: int) -> int:
    return plan.seed if plan.settings.same_noise else (plan.seed + position) % 2**32


def frame_fields(plan: Plan, position: int, frame: np.ndarray, previous_source: np.ndarray | None,
                 previous_output: np.ndarray | None, maps: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The request fields of one frame: its seed, its units on the source frame (or its pose map),
    the key-frame reference, and the flow start from the previous output when there is one."""
    settings = plan.settings
    fields = _frame_fields(plan.fields, {FRAME: str(plan.source_path(position))}, frame_seed(plan, position))
    fields["controls"] = [maps.get(index, unit) for index, unit in enumerate(fields["controls"])]
    if position and settings.reference:
        fields["controls"].append({"module": "reference_only", "image": str(plan.frame_path(0)),
                                   "weight": settings.reference})
    if position and settings.flow_strength and previous_output is not None:
        backward, hidden = flow.motion(previous_source, frame, settings.flow_method)
        noise = noise_picture(plan, (frame_seed(plan, position) + 7919 * position) % 2**32)
        start = flow.warped_start(previous_output, backward, hidden, noise)
        init = save_image(start, plan.folder / "start" / f"{position:06d}.png")
        fields.update(init_image=str(init), denoising_strength=settings.flow_strength)
    return fields


def noise_picture(plan: Plan, seed: int) -> np.ndarray:
    """Fresh latent noise, decoded: a picture whose encoding is (close to) noise, for occluded areas."""
    import torch

    from kekong.models.load import load_base

    base = load_base(plan.first.model)
    width, height = plan.size
    shape = (1, base.vae.config.latent_channels, height // base.vae_scale, width // base.vae_scale)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(base.vae.dtype)
    shift = getattr(base.vae.config, "shift_factor", None) or 0.0
    with torch.no_grad():
        pixels = base.vae.decode(latents / base.vae.config.scaling_factor + shift, return_dict=False)[0]
    pixels = (pixels[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).float().numpy()
    return (pixels * 255).round().astype(np.uint8)


def _pose_maps(plan: Plan, position: int, frame: np.ndarray, smoother: PoseSmoother) -> dict[int, dict[str, Any]]:
    """OpenPose units on the frame, as ready maps drawn from smoothed keypoints (unit index → unit)."""
    from kekong.detect.openpose import VARIANTS

    if not plan.settings.pose_smoothing:
        return {}
    maps = {}
    for index, unit in enumerate(plan.fields["controls"]):
        module = unit.get("module")
        if module not in VARIANTS or unit["image"] != FRAME:
            continue
        from kekong.detect import run as detect
        from kekong.detect.openpose import draw_pose
        from kekong.detect.openpose.keypoints import PoseResult

        body, hands, face, _ = VARIANTS[module]
        found = detect(module, frame, res=int(unit.get("res", 512)), **dict(unit.get("params") or {}))
        pose = smoother(PoseResult.from_json(found.data), float(1 / plan.rate)) if found.data else None
        drawn = draw_pose(pose, body=body, hands=hands, face=face) if pose else found.image
        path = save_image(drawn, plan.folder / "maps" / f"{index}-{position:06d}.png")
        maps[index] = {**{k: v for k, v in unit.items() if k != "params"}, "module": "none", "image": str(path),
                       "model": unit.get("model") or _pose_model(plan, module)}
    return maps


def _pose_model(plan: Plan, module: str) -> str:
    from kekong.generation.units.files import default_controlnet
    from kekong.models.load import load_base

    return default_controlnet(load_base(plan.first.model), module)
