"""`kekong video`: ControlNet video to video. The generation options are generate's own (the same
declarations, so the same help, defaults and bounds); the video options come from VideoSettings."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from kekong.cli.fields import given, help_text
from kekong.declaration import spec
from kekong.errors import ParameterError
from kekong.video.spec import VideoSettings

# generate's options that a video run takes as they are (init/mask/hires/batch/grid/detail are per image)
SHARED = ("prompt", "negative", "model", "vae", "refiner", "refiner_switch_at", "prediction_type", "seed", "subseed",
          "subseed_strength", "seed_resize_from", "rng", "steps", "cfg", "sampler", "schedule", "clip_skip", "lora",
          "no_metadata", "no_watermark", "no_c2pa", "save_recipe", "ray", "workers", "cpus_per_worker",
          "gpus_per_worker")
# VideoSettings fields → their flags (booleans as on/off pairs)
VIDEO_FLAGS = {"every": ("--every",), "max_frames": ("--max-frames",), "start": ("--start",), "end": ("--end",),
               "fps": ("--fps",), "same_noise": ("--same-noise/--fresh-noise",), "reference": ("--reference",),
               "flow_strength": ("--flow-strength",), "flow_method": ("--flow",),
               "pose_smoothing": ("--pose-smoothing/--no-pose-smoothing",),
               "smoothing_cutoff": ("--smoothing-cutoff",), "smoothing_beta": ("--smoothing-beta",)}


def video_option(name: str) -> Any:
    field = spec(name, VideoSettings)
    return typer.Option(*VIDEO_FLAGS[name], help=help_text(field), min=field.ge, max=field.le)


def parse_frame_control(text: str) -> dict[str, Any]:
    """`MODULE[,key=value…]` (the unit reads each source frame) or generate's `MODULE:PATH[,key=value…]`
    (a fixed image, e.g. an IP-Adapter's picture)."""
    from kekong.cli.generate import parse_control

    head = text.split(",", 1)[0]
    if ":" in head:
        return parse_control(text)
    unit = parse_control(f"{head}:-{text[len(head):]}")
    unit.pop("image")
    return unit


def run_video(source: Path, out: Path, size: str | None, control: list[str] | None, options: dict[str, Any]) -> None:
    from kekong.cli.generate import parse_size, request_fields
    from kekong.cli.ray_options import local_threads, ray_pool, worker_bounds
    from kekong.provenance.stamp import Layers
    from kekong.video.record import write_video
    from kekong.video.run import plan, run
    from kekong.video.spec import build_settings

    if out.suffix.lower() not in (".mp4", ".m4v"):
        raise ParameterError(f"{out}: videos are written as .mp4")
    settings = build_settings(**given(**{name: options.get(name) for name in VIDEO_FLAGS}))
    fields = request_fields(options)
    if control:
        fields["controls"] = [parse_frame_control(text) for text in control]
    if size is not None:
        fields["width"], fields["height"] = parse_size("--size", size)
        if not (fields["width"] and fields["height"]):  # a 0 side read as "the source's shape" without a word
            raise ParameterError(f"--size {size}: both sides must be given (leave --size out for the source's shape)")
    bounds = worker_bounds(options.get("workers"), options.get("cpus_per_worker"), options.get("gpus_per_worker"))
    if options.get("ray") is not None:  # said before any frame is decoded
        from kekong.scale.frames import check_independent

        check_independent(settings)
    planned = plan(source, out, settings, fields)
    width, height = planned.size
    typer.echo(f"video: {len(planned.numbers)} frames at {width}x{height}, {float(planned.rate):.3g} fps "
               f"→ {out} (frames in {planned.folder.name}/)")
    with FrameBar(len(planned.numbers)) as bar:
        if options.get("ray") is None:
            if options.get("cpus_per_worker") is not None:  # this process's torch threads
                import torch

                torch.set_num_threads(local_threads(options["cpus_per_worker"]))
            run(planned, on_frame=bar)
        else:  # the frames side by side on Ray actors (the batch path): kekong.scale.frames
            from kekong.scale.frames import run_frames

            with ray_pool(options["ray"], bounds) as pool:
                run_frames(planned, pool, on_frame=bar)
    layers = Layers(metadata=not options.get("no_metadata"), watermark=not options.get("no_watermark"),
                    c2pa=not options.get("no_c2pa"))
    record = write_video(planned, out, layers)
    if options.get("save_recipe"):
        import json

        from kekong.io import write_atomic
        from kekong.video.record import video_recipe

        write_atomic(out.with_suffix(".json"), json.dumps(video_recipe(planned), indent=1).encode())
    typer.echo(f"wrote {out} (seed {planned.seed}, watermark {record['watermark']})")


class FrameBar:
    """A rich progress bar over frames: frames done, ETA from the frames generated (skipped ones are instant)."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("frames"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[eta]}"), transient=True)
        self.task = self.progress.add_task("frames", total=total, eta="")
        self.skipped = 0

    def __enter__(self) -> FrameBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
        if self.skipped:
            typer.echo(f"{self.skipped} frames were already done (resumed)")

    def __call__(self, done: Any) -> None:
        self.skipped += done.skipped
        left = done.seconds_left
        eta = "" if left is None else f"ETA {int(left // 60)}:{int(left % 60):02d}"
        self.progress.update(self.task, completed=done.done, eta=eta)


def _video(**values: Any) -> None:
    """Generate a video from a source video, GIF or folder of frames, frame by frame with ControlNet:
    `kekong video walk.mp4 -o out.mp4 --control canny "a red star"`. Frames are written as they finish
    into OUT.frames/ (a re-run skips them); the MP4 keeps the source's rate and audio and carries
    kekong's watermark in every frame, the recipe and a signed C2PA manifest."""
    source, out, size, control = (values.pop(name) for name in ("source", "out", "size", "control"))
    run_video(source, out, size, control, values)


def _build() -> Any:
    """`_video` with generate's shared options and the video options as its signature."""
    from kekong.cli.generate import generate

    hints = typing.get_type_hints(generate, include_extras=True)
    shared = inspect.signature(generate).parameters
    own = {
        "source": (Annotated[Path, typer.Argument(help="video (MP4, MOV, WebM …), GIF, or a folder of frames")],
                   inspect.Parameter.empty),
        "out": (Annotated[Path, typer.Option("--out", "-o", help=".mp4 to write")], Path("kekong.mp4")),
        "size": (Annotated[str | None, typer.Option(help="WxH of the frames generated (default: the source's shape, "
                                                         "short side the model's native size)")], None),
        "control": (Annotated[list[str] | None, typer.Option(
            "--control", "-c", help="MODULE or MODULE,key=value,… (repeatable): a unit on each source frame; "
            "MODULE:PATH for a fixed image")], None),
    }
    params, annotations = [], {}
    for name, (hint, default) in own.items():
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params.append(inspect.Parameter(name, kind, default=default, annotation=hint))
        annotations[name] = hint
    for name in SHARED:
        params.append(shared[name].replace(annotation=hints[name]))
        annotations[name] = hints[name]
    for name in VIDEO_FLAGS:
        field = VideoSettings.model_fields[name]
        kind = bool if field.annotation is bool else float if field.annotation is float else \
            int if field.annotation is int else str
        hint = Annotated[kind | None, video_option(name)]
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=hint))
        annotations[name] = hint
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # the argument first
    _video.__signature__ = inspect.Signature(params)
    _video.__annotations__ = {**annotations, "return": None}
    return _video


video = _build()
