"""`kekong data shapes|figures`, `kekong train base|controlnet`, `kekong bench control|pose`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kekong.errors import KekongError, ParameterError

data_app = typer.Typer(help="Training datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train a base model or a ControlNet (resumable).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks of trained models.", no_args_is_help=True)

# The options every synthetic dataset writer takes.
Count = Annotated[int, typer.Option(min=1, max=1_000_000, help="samples to write")]
Size = Annotated[int, typer.Option(min=32, max=512, help="image size in pixels")]
Seed = Annotated[int, typer.Option(help="the generator's seed (held-out sets use other seeds)")]


@data_app.command("shapes")
def data_shapes(
    out: Annotated[Path, typer.Argument(help="folder to write (fill layout)")],
    count: Count = 20_000,
    size: Size = 64,
    seed: Seed = 0,
) -> None:
    """Synthetic shapes: outlines and scribbles as conditions, colours named in the prompt."""
    from kekong.train.shapes import write_dataset

    write_dataset(out, count, size, seed)
    typer.echo(f"wrote {count} samples to {out} (prompt.json, source/, scribble/, target/)")


@data_app.command("figures")
def data_figures(
    out: Annotated[Path, typer.Argument(help="folder to write (fill layout, plus pose/ JSON)")],
    count: Count = 8_000,
    size: Size = 64,
    seed: Seed = 0,
) -> None:
    """Synthetic people in OpenPose poses: pose maps as conditions, clothes, hair and background named."""
    from kekong.train.figures import write_dataset

    write_dataset(out, count, size, seed)
    typer.echo(f"wrote {count} samples to {out} (prompt.json, source/, target/, pose/)")


def _load_data(data: str, size: int, limit: int | None, detector: str | None, seed: int):
    from kekong.train.data import load_captioned, load_fill, shapes_set

    if data == "shapes":
        return shapes_set(limit or 20_000, size, seed)
    folder = Path(data)
    if not folder.is_dir():
        raise KekongError(f"{folder}: no such dataset folder (or use `shapes` for the synthetic set)")
    if (folder / "prompt.json").is_file() and detector is None:
        return load_fill(folder, size, limit)
    if detector is None:
        raise ParameterError(f"{folder} has no prompt.json; name a --detector to compute conditions")
    return load_captioned(folder, size, detector, limit)


@train_app.command("base")
def train_base_command(
    out: Annotated[Path, typer.Option(help="run folder (checkpoints, log, the model in out/model)")],
    data: Annotated[str, typer.Option(help="fill-layout folder, or `shapes` (generated in memory)")] = "shapes",
    size: Annotated[int, typer.Option(help="training resolution")] = 64,
    limit: Annotated[int | None, typer.Option(help="use at most this many samples")] = None,
    vae_steps: Annotated[int, typer.Option()] = 1500,
    unet_steps: Annotated[int, typer.Option()] = 3000,
    batch_size: Annotated[int, typer.Option()] = 32,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train a small text-to-image model from scratch (VAE, then UNet; MiniLM text encoder)."""
    from kekong.train.base import train_base

    folder = train_base(_load_data(data, size, limit, None, seed), out, vae_steps, unet_steps, batch_size, seed)
    typer.echo(f"wrote {folder}")


@train_app.command("controlnet")
def train_controlnet_command(
    base: Annotated[str, typer.Option(help="base model (file, folder, name or hub id)")],
    out: Annotated[Path, typer.Option(help="run folder (checkpoints, log; the ControlNet in out/controlnet)")],
    data: Annotated[str, typer.Option(help="fill-layout folder, image folder (+ --detector), or `shapes`")] = "shapes",
    detector: Annotated[str | None, typer.Option(help="compute conditions with this detector, e.g. canny")] = None,
    size: Annotated[int, typer.Option()] = 64,
    limit: Annotated[int | None, typer.Option()] = None,
    steps: Annotated[int, typer.Option()] = 2000,
    batch_size: Annotated[int, typer.Option()] = 32,
    grad_accum: Annotated[int, typer.Option(help="gradient accumulation steps")] = 1,
    lr: Annotated[float, typer.Option()] = 2e-4,
    prompt_dropout: Annotated[float, typer.Option(min=0, max=1, help="share of empty prompts")] = 0.5,
    timestep_bias: Annotated[str, typer.Option(
        help="uniform, cubic (favours high noise), or cubic-then-uniform (its last third uniform)"),
    ] = "cubic-then-uniform",
    unlock_decoder: Annotated[bool, typer.Option(
        help="train the base UNet's decoder too (sd_locked=False); the tuned base is saved to out/base")] = False,
    unlock_after: Annotated[float, typer.Option(
        min=0, max=0.95, help="share of the run before the decoder unlocks (the ControlNet converges first)")] = 0.5,
    control_dropout: Annotated[float, typer.Option(
        min=0, max=0.95, help="share of samples trained without the ControlNet (with --unlock-decoder)")] = 0.0,
    controlnet: Annotated[str | None, typer.Option(
        help="go on training this ControlNet instead of a new copy of the base's encoder")] = None,
    validate_every: Annotated[int, typer.Option()] = 250,
    checkpoint_every: Annotated[int, typer.Option()] = 200,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train a ControlNet from a base model's encoder; logs a controllability metric."""
    import copy

    from kekong.models.load import load_base, load_controlnet
    from kekong.models.refs import resolve
    from kekong.train.controlnet import save_controlnet, save_tuned_base, train_controlnet
    from kekong.train.diffusion import TIMESTEP_BIASES
    from kekong.train.runner import RunSettings

    if timestep_bias not in TIMESTEP_BIASES:
        raise ParameterError(f"--timestep-bias must be one of {', '.join(TIMESTEP_BIASES)}, not {timestep_bias!r}")
    if control_dropout and not unlock_decoder:
        raise ParameterError("--control-dropout only matters with --unlock-decoder (a locked base learns nothing "
                             "from samples without the ControlNet)")
    if unlock_decoder and resolve(base, "base").path.is_file():
        raise ParameterError(f"--unlock-decoder tunes the base's UNet, saved as a copy of the base's diffusers folder; "
                             f"{base} is a single file: convert it to a diffusers folder first")
    settings = RunSettings(out, steps, batch_size, lr, seed, grad_accum, checkpoint_every, validate_every)
    model = load_base(base)
    start = copy.deepcopy(load_controlnet(controlnet)[0]).float() if controlnet else None  # the cache's stays
    dataset = _load_data(data, size, limit, detector, seed)
    trained = train_controlnet(model, dataset, settings, prompt_dropout, timestep_bias=timestep_bias,
                               unlock_decoder=unlock_decoder, control_dropout=control_dropout,
                               unlock_after=unlock_after, controlnet=start)
    typer.echo(f"wrote {save_controlnet(trained, out / 'controlnet')}")
    if unlock_decoder:
        typer.echo(f"wrote {save_tuned_base(model, out / 'base')} (use this base with the ControlNet)")


@bench_app.command("control")
def bench_control(
    base: Annotated[str | None, typer.Option(help="base model (default: kekong-shapes)")] = None,
    controlnet: Annotated[str | None, typer.Option(help="ControlNet (default: the base's outline one)")] = None,
    count: Annotated[int, typer.Option(help="held-out conditions")] = 200,
    steps: Annotated[int, typer.Option()] = 20,
    cfg: Annotated[float, typer.Option(min=1, max=30, help="CFG scale (2: kekong-shapes' best)")] = 2.0,
    weight: Annotated[float, typer.Option(min=0, max=2, help="ControlNet weight")] = 1.0,
    baseline: Annotated[bool, typer.Option(help="also run the base alone (chance)")] = True,
    validation: Annotated[bool, typer.Option(
        "--validation", help="score on the validation conditions (to tune settings), not the held-out ones")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Shape IoU and colour accuracy on held-out shapes, with the ControlNet and without."""
    from kekong.train.bench import HELD_OUT_SEED, VALIDATION_SEED, run_bench

    result = run_bench(base, controlnet, count, steps, cfg, weight, baseline,
                       seed=VALIDATION_SEED if validation else HELD_OUT_SEED)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for row in result["rows"]:
        typer.echo(f"{row['name']:<14} IoU {row['iou']:.3f}  colour accuracy {row['colour_accuracy']:.3f}  "
                   f"(shape {row['shape_colour']:.3f}, background {row['background_colour']:.3f})  "
                   f"{row['ms_per_image']:.0f} ms/image")


@bench_app.command("pose")
def bench_pose(
    base: Annotated[str, typer.Option(help="base model")] = "kekong-figures",
    controlnet: Annotated[str | None, typer.Option(help="ControlNet (default: the base's openpose one)")] = None,
    count: Annotated[int, typer.Option(min=1, max=10_000, help="held-out skeletons")] = 200,
    detected: Annotated[int, typer.Option(min=0, max=10_000, help="samples with skeletons detected on photos")] = 40,
    steps: Annotated[int, typer.Option(min=1, max=150)] = 20,
    cfg: Annotated[float, typer.Option(min=1, max=30, help="CFG scale (2: kekong-figures' recommendation)")] = 2.0,
    weight: Annotated[float, typer.Option(min=0, max=2, help="ControlNet weight")] = 1.0,
    baseline: Annotated[bool, typer.Option(help="also run the base alone (chance)")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Figure-mask IoU, limb placement and colour accuracy on held-out and photo-detected skeletons."""
    from kekong.train.pose_bench import run_bench

    result = run_bench(base, controlnet, count, detected, steps, cfg, weight, baseline)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for row in result["rows"]:
        typer.echo(f"{row['set']:<9} {row['name']:<14} IoU {row['iou']:.3f}  limbs {row['limbs']:.3f}  "
                   f"colour accuracy {row['colour_accuracy']:.3f} (shirt {row['shirt']:.3f}, lower "
                   f"{row['lower']:.3f}, background {row['background']:.3f})  {row['ms_per_image']:.0f} ms/image")
