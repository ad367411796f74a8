"""`kekong warp`: move the people in a photo to an edited pose (moving least squares on their keypoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kekong.cli.fields import help_text, spec
from kekong.errors import KekongError, ParameterError
from kekong.repose_spec import ReposeSpec

LAYERED_HELP = help_text(spec("layered", ReposeSpec))


def parse_pin(text: str) -> tuple[float, float]:
    """`x,y` (pixels) → a point; anything else is an error naming it."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"--pin {text!r}: expected x,y in pixels (e.g. --pin 40,300)") from None
    return x, y


def read_pose(path: Path, option: str) -> object:
    """An OpenPose JSON file (kekong's, OpenPose's or a pose editor's) as a PoseResult."""
    from kekong.detect.openpose import PoseResult

    if not path.is_file():
        raise KekongError(f"{option} {path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KekongError(f"{option} {path}: cannot be read as text ({exc})") from None
    try:
        return PoseResult.from_json(text)
    except KekongError as exc:
        raise KekongError(f"{option} {path}: {exc}") from None


def warp(
    image: Annotated[Path, typer.Argument(help="the photo whose people move")],
    to: Annotated[Path, typer.Option("--to", help="the edited pose (OpenPose JSON)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="warped image to write")],
    source: Annotated[Path | None, typer.Option(
        "--from", help="the photo's pose as OpenPose JSON (default: detected on the photo, as "
        "`kekong detect -k openpose --json` writes it)")] = None,
    mode: Annotated[str, typer.Option(help="rigid (limbs keep their shape) | similarity (may scale) | affine")
                    ] = "rigid",
    layered: Annotated[bool, typer.Option("--layered/--no-layered", help=LAYERED_HELP, show_default=False)
                       ] = ReposeSpec.model_fields["layered"].default,
    pin: Annotated[list[str] | None, typer.Option(
        "--pin", help="x,y pixel that must stay where it is (repeatable); the border always stays")] = None,
    mask_out: Annotated[Path | None, typer.Option(
        "--mask-out", help="write the areas the warp uncovered (white) here, e.g. for inpainting")] = None,
) -> None:
    """Warp a photo to an edited pose: `kekong warp photo.png --to edited.json -o moved.png`. Keypoints
    missing (confidence 0) in either pose are left out; the two poses must list the same people."""
    from kekong.detect.openpose.warp import MODES, warp_pose
    from kekong.io import load_image, save_image

    if mode not in MODES:
        raise ParameterError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    pins = [parse_pin(p) for p in pin or []]
    after = read_pose(to, "--to")
    before = read_pose(source, "--from") if source is not None else None
    picture = load_image(str(image))
    if before is None:
        from kekong.generation.repose import photo_pose

        try:
            before = photo_pose(picture, after)  # with the parts (hands, face) the edited pose has
        except KekongError:
            raise KekongError(f"{image}: no person found to warp (give the photo's pose with --from)") from None
    result = warp_pose(picture, before, after, mode=mode, pins=pins, layered=layered)
    save_image(result.image, out)
    uncovered = float((result.mask > 0).mean())
    typer.echo(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]}, {mode}{', layered' if layered else ''}, "
               f"{result.handles} handles, "
               f"{uncovered:.1%} uncovered)")
    if mask_out is not None:
        save_image(result.mask, mask_out)
        typer.echo(f"wrote {mask_out}")
