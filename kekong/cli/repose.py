"""`kekong repose`: warp a photo's people to an edited pose, then inpaint what the warp uncovered with the
edited skeleton as an openpose unit's map (the request's `repose`, kekong/repose_spec.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kekong.cli.fields import NoC2pa, NoMetadata, NoWatermark, SaveRecipe, given, option
from kekong.cli.warp import LAYERED_HELP
from kekong.errors import ParameterError
from kekong.repose_spec import ReposeSpec
from kekong.request import ControlUnit


def _unit(text: str) -> dict[str, Any]:
    """`MODULE[:PATH][,key=value…]`: without a path the unit reads the warped photo."""
    from kekong.cli.generate import parse_control

    head, *rest = text.split(",")
    if ":" in head and head.partition(":")[2].strip():
        return parse_control(text)
    unit = parse_control(f"{head.rstrip(':')}:-" + "".join("," + pair for pair in rest))
    unit["image"] = None
    return unit


def repose(
    image: Annotated[Path, typer.Argument(help="the photo whose people move")],
    to: Annotated[Path, typer.Option("--to", help="the edited pose (OpenPose JSON)")],
    prompt: Annotated[str | None, option("prompt", help="what the repainted areas show (e.g. the photo's "
                                         "description)")] = None,
    negative: Annotated[str | None, option("negative_prompt", "--negative", "-n")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help=".png, .jpg or .webp to write")] = Path("reposed.png"),
    source: Annotated[Path | None, typer.Option("--from", help="the photo's pose as OpenPose JSON (default: "
                                                "detected on the photo)")] = None,
    mode: Annotated[str | None, option("warp", "--mode", model=ReposeSpec)] = None,
    layered: Annotated[bool | None, typer.Option("--layered/--no-layered", help=LAYERED_HELP)] = None,
    pin: Annotated[list[str] | None, typer.Option(
        "--pin", help="x,y pixel that must stay where it is (repeatable); the border always stays")] = None,
    mask_grow: Annotated[int | None, option("mask_grow", model=ReposeSpec)] = None,
    pose_model: Annotated[str | None, typer.Option(
        "--pose-model", help="the openpose ControlNet that reads the edited skeleton (default: the base model's)")
        ] = None,
    pose_weight: Annotated[float | None, option("weight", "--pose-weight", model=ControlUnit,
                                                help="the pose unit's control weight")] = None,
    no_pose_unit: Annotated[bool, typer.Option("--no-pose-unit", help="inpaint without the pose unit")] = False,
    control: Annotated[list[str] | None, typer.Option(
        "--control", "-c", help="an extra unit, MODULE[:PATH][,key=value…] (repeatable); without PATH it reads "
        "the warped photo")] = None,
    strength: Annotated[float | None, option("denoising_strength", "--strength")] = None,
    model: Annotated[str | None, option("model")] = None,
    seed: Annotated[int | None, option("seed")] = None,
    steps: Annotated[int | None, option("steps")] = None,
    cfg: Annotated[float | None, option("cfg_scale", "--cfg")] = None,
    sampler: Annotated[str | None, option("sampler")] = None,
    width: Annotated[int | None, option("width", "--width", "-W")] = None,
    height: Annotated[int | None, option("height", "--height", "-H")] = None,
    mask_blur: Annotated[int | None, option("mask_blur")] = None,
    only_masked: Annotated[bool | None, option("inpaint_only_masked", "--only-masked",
                                               help="inpaint the uncovered region at full size")] = None,
    padding: Annotated[int | None, option("only_masked_padding", "--padding")] = None,
    warp_out: Annotated[Path | None, typer.Option("--warp-out", help="also write the warped photo here")] = None,
    mask_out: Annotated[Path | None, typer.Option("--mask-out", help="also write the repainted areas (white)")
                        ] = None,
    save_recipe: SaveRecipe = False,
    no_metadata: NoMetadata = False,
    no_watermark: NoWatermark = False,
    no_c2pa: NoC2pa = False,
    no_score: Annotated[bool, typer.Option(
        "--no-score", help="skip the fidelity score (each unit's detector run again on the output)")] = False,
) -> None:
    """Re-pose a photo: `kekong repose photo.png --to edited.json --prompt "a woman in a white shirt" -o moved.png`
    (warp, then an inpaint of the uncovered areas with an openpose unit on the edited skeleton)."""
    from kekong.cli.generate import run_and_write
    from kekong.cli.warp import parse_pin, read_pose
    from kekong.provenance.stamp import FORMATS, Layers
    from kekong.request import build_request

    if out.suffix.lower() not in FORMATS:
        raise ParameterError(f"{out}: generated images are written as .png, .jpg or .webp")
    if not image.is_file():
        raise ParameterError(f"{image}: no such file")
    after = read_pose(to, "--to").to_json()
    before = read_pose(source, "--from").to_json() if source is not None else None
    units = [] if no_pose_unit else [given(module="none", model=pose_model, weight=pose_weight)]
    units += [_unit(text) for text in control or []]
    spec = given(image=str(image), pose=after, source_pose=before, warp=mode, layered=layered,
                 pins=[parse_pin(p) for p in pin or []], mask_grow=mask_grow, pose_unit=None if no_pose_unit else 0)
    fields = given(prompt=prompt, negative_prompt=negative, model=model, seed=seed, steps=steps, cfg_scale=cfg,
                   sampler=sampler, width=width, height=height, denoising_strength=strength, mask_blur=mask_blur,
                   inpaint_only_masked=only_masked, only_masked_padding=padding, controls=units or None,
                   repose=spec)
    request = build_request(**fields)
    if warp_out is not None or mask_out is not None:
        from kekong.generation.repose import warp_photo
        from kekong.io import save_image

        done = warp_photo(request.repose)
        for path, picture in ((warp_out, done.image), (mask_out, done.mask)):
            if path is not None:
                typer.echo(f"wrote {save_image(picture, path)}")
    layers = Layers(metadata=not no_metadata, watermark=not no_watermark, c2pa=not no_c2pa)
    run_and_write(request, out, save_recipe=save_recipe, layers=layers, score=not no_score)
