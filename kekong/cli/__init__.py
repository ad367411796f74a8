"""`kekong` command line: parse → call the core → print. No traceback reaches a user."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from kekong.cli.help_width import keep_help_whole
from kekong.errors import KekongError, ParameterError

app = typer.Typer(help="kekong (可控): controllable image generation with ControlNet.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
pose_app = typer.Typer(help="OpenPose JSON tools.", no_args_is_help=True)
keep_help_whole()  # flag names and long words whole at 80 columns
app.add_typer(pose_app, name="pose")


def _print_version(value: bool) -> None:
    if value:
        from kekong import __version__

        typer.echo(f"kekong {__version__}")
        raise typer.Exit()


@app.callback()
def options(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="show the core's decisions on stderr (weight precision, offloading, model "
        "cache evictions, where weights were found)")] = False,
        version: Annotated[bool, typer.Option(
            "--version", is_eager=True, callback=_print_version, help="print kekong's version and exit")] = False,
        ) -> None:
    """kekong (可控): controllable image generation with ControlNet."""
    if verbose:
        show_decisions()
    else:
        show_warnings()


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (not the stream at creation)."""

    @property
    def stream(self) -> object:  # logging reads it on every record
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def show_warnings() -> None:
    """The core's warnings (e.g. a ready map of the wrong polarity) as `warning: …` lines on stderr."""
    logger = logging.getLogger("kekong")
    if not any(getattr(h, "kekong_warnings", False) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.kekong_warnings = True
        logger.addHandler(handler)


def show_decisions() -> None:
    """The core logs its decisions (logging.getLogger(__name__), INFO) and shows nothing by itself: `-v`
    prints them on stderr."""
    import logging

    logger = logging.getLogger("kekong")
    if not any(getattr(h, "kekong_verbose", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        handler.kekong_verbose = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings → dict; a malformed pair is an error naming it."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter {pair!r} is not of the form key=value")
        params[key.strip()] = value.strip()
    return params


def _write_json(data: object, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


@app.command()
def detect(
    image: Annotated[Path | None, typer.Argument(help="photo or sketch to read")] = None,
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="detector name")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="control map to write")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="detector parameter key=value (repeatable)")] = None,
    res: Annotated[int | None, typer.Option(
        help="processor resolution (short side); default: the preprocessor's own (512; softedge_anyline 1280)")] = None,
    pixel_perfect: Annotated[bool, typer.Option(
        "--pixel-perfect", help="processor resolution from --width/--height")] = False,
    width: Annotated[int | None, typer.Option(
        help="target width: the map is written at --width x --height, fitted with --resize-mode")] = None,
    height: Annotated[int | None, typer.Option(help="target height")] = None,
    resize_mode: Annotated[str, typer.Option(
        help="Just Resize | Crop and Resize | Resize and Fill (or just/crop/fill)")] = "crop",
    fit: Annotated[bool, typer.Option(
        "--fit", help="fit the map to --width/--height with the resize mode (done whenever both are given; "
        "the flag stays for scripts)")] = False,
    mask: Annotated[Path | None, typer.Option(
        help="inpaint mask (white = repaint); default: the image's transparent pixels")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="write structured data (OpenPose JSON) here")] = None,
    list_all: Annotated[bool, typer.Option("--list", help="list every detector")] = False,
    as_json: Annotated[bool, typer.Option(help="with --list: machine-readable")] = False,
) -> None:
    """Turn a photo or sketch into a control map: `kekong detect photo.jpg -k canny -o map.png`."""
    if list_all:
        _print_list(as_json)
        return
    if image is None or kind is None or out is None:
        raise ParameterError("detect needs IMAGE, --kind and --out (or --list)")
    from kekong.detect import list_detectors, run
    from kekong.detect.inpaint import control_to_rgba, mask_from_alpha, mask_from_image
    from kekong.detect.registry import get
    from kekong.detect.resolution import ResizeMode, fit_to_target
    from kekong.io import load_image, load_image_rgba, save_image

    detector = get(kind)
    if json_out is not None and not detector.structured:  # before anything is written (as the extension:
        structured = ", ".join(d.name for d in list_detectors() if d.structured)  # only pose has JSON)
        raise ParameterError(f"--json writes OpenPose JSON, which only {structured} make; {kind} makes a map "
                             f"alone (drop --json)")
    params = parse_params(param or [])
    detector.validate(params)  # before reading anything
    mode = ResizeMode.parse(resize_mode)
    target = (height, width) if width and height else None
    if (pixel_perfect or fit) and target is None:
        raise ParameterError("--pixel-perfect and --fit need --width and --height")
    mask_array = None
    if detector.takes_mask:
        mask_array = (mask_from_image(load_image(mask)) if mask
                      else mask_from_alpha(load_image_rgba(image)))
    if res is None:
        from kekong.detect.extension_names import default_resolution

        res = default_resolution(kind)
    result = run(kind, load_image(image), res=res, pixel_perfect=pixel_perfect,
                 target_hw=target, resize_mode=mode, mask=mask_array, **params)
    control = result.image
    if target is not None:  # the size asked for, exactly (not the processor's 770x512 for a 451x300 photo)
        if result.data is not None and detector.structured:
            from kekong.detect.openpose import PoseResult

            result.data = PoseResult.from_json(result.data).fitted(width, height, mode).to_json()
        control = fit_to_target(control, target, mode)
    if control.dtype != "uint8":
        control = control_to_rgba(control)  # inpaint: masked pixels transparent
        if out.suffix.lower() != ".png":
            raise ParameterError(f"{kind} writes float maps as RGBA; use a .png output")
    save_image(control, out)
    typer.echo(f"wrote {out} ({control.shape[1]}x{control.shape[0]}, {kind})")
    if json_out is not None:
        if result.data is None:
            raise ParameterError(f"{kind} has no structured data to write with --json")
        _write_json(result.data, json_out)
        typer.echo(f"wrote {json_out}")


def _print_list(as_json: bool) -> None:
    from kekong.detect import list_detectors
    from kekong.detect.control_types import listing

    detectors = list_detectors()
    types = listing()
    if as_json:
        rows: list | dict = [{
            "name": d.name, "description": d.description, "feeds": list(d.feeds),
            "needs_weights": d.needs_weights, "approximates": d.approximates,
            "params": [{"name": p.name, "default": p.default, "min": p.min, "max": p.max,
                        "choices": list(p.choices) if p.choices else None, "help": p.help}
                       for p in d.params],
        } for d in detectors]
        typer.echo(json.dumps({"detectors": rows, "control_types": types}, indent=1))
        return
    for d in detectors:
        weights = f"needs weights: {d.needs_weights}" if d.needs_weights else "offline"
        typer.echo(f"{d.name}  [{weights}]")
        typer.echo(f"    {d.description}")
        if d.approximates:
            typer.echo(f"    classical stand-in for: {d.approximates}")
        if d.feeds:
            typer.echo(f"    feeds: {', '.join(d.feeds)}")
        for p in d.params:
            bounds = (f" one of {'/'.join(p.choices)}" if p.choices else
                      f" [{p.min}..{p.max}]" if p.min is not None else "")
            typer.echo(f"    - {p.name} = {p.default!r}{bounds}: {p.help}")
    typer.echo("\ncontrol types (sd-webui-controlnet's), per base family:")
    for control_type in types:
        support = "; ".join(f"{family}: {how}" for family, how in control_type["support"].items()
                            if not how.startswith("refused")) or control_type["support"]["sd15"]
        typer.echo(f"  {control_type['name']:16s} {support}")
        typer.echo(f"      modules: {', '.join(control_type['modules'])}")


@pose_app.command("render")
def pose_render(
    pose_json: Annotated[Path, typer.Argument(help="OpenPose JSON file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="control map to write")],
    width: Annotated[int | None, typer.Option(help="canvas width (default: the JSON's; one side alone keeps "
                                                     "the aspect ratio)")] = None,
    height: Annotated[int | None, typer.Option(help="canvas height")] = None,
    resize_mode: Annotated[str, typer.Option(
        help="a canvas of another shape: Resize and Fill (fit, black bands) | Crop and Resize | Just Resize "
             "(stretch); or fill/crop/just")] = "fill",
) -> None:
    """Render an OpenPose JSON file (kekong's, OpenPose's or a pose editor's) as a control map."""
    from kekong.detect.openpose import PoseResult, render_json
    from kekong.detect.resolution import ResizeMode
    from kekong.io import save_image

    if not pose_json.is_file():
        raise KekongError(f"{pose_json}: no such file")
    mode = ResizeMode.parse(resize_mode)
    for size in (width, height):
        if size is not None and not 16 <= size <= 8192:
            raise ParameterError(f"canvas size {size} is outside 16..8192")
    text = pose_json.read_text()
    if (width is None) != (height is None):  # one side given: the other follows the pose's aspect ratio
        pose = PoseResult.from_json(text)
        if width is None:
            width = max(1, round(height * pose.width / pose.height))
        else:
            height = max(1, round(width * pose.height / pose.width))
    canvas = render_json(text, width, height, mode)
    save_image(canvas, out)
    typer.echo(f"wrote {out} ({canvas.shape[1]}x{canvas.shape[0]})")


@app.command()
def demo(out: Annotated[Path, typer.Option(help="folder for the results")] = Path("demo-output"),
         ) -> None:
    """The main job on the built-in default: every offline detector on a bundled photo."""
    from kekong.demo import run_demo

    for line in run_demo(out):
        typer.echo(line)


# the commands register on `app` defined above
from kekong.cli import batch as cli_batch  # noqa: E402
from kekong.cli import generate as cli_generate  # noqa: E402
from kekong.cli import prompt as cli_prompt  # noqa: E402
from kekong.cli import repose as cli_repose  # noqa: E402
from kekong.cli import score as cli_score  # noqa: E402
from kekong.cli import serve as cli_serve  # noqa: E402
from kekong.cli import train as cli_train  # noqa: E402
from kekong.cli import verify as cli_verify  # noqa: E402
from kekong.cli import video as cli_video  # noqa: E402
from kekong.cli import warp as cli_warp  # noqa: E402

app.command()(cli_generate.generate)
app.command("grid", help="An X/Y/Z grid (A1111's X/Y/Z plot): generate's options plus --x/--y/--z AXIS:VALUES; "
            "e.g. `kekong grid \"a red star\" -c none:outline.png --x \"[ControlNet] Weight:0-1.5 [4]\" --out-dir grid`"
            )(cli_generate.generate)
app.command()(cli_batch.batch)
app.command()(cli_score.score)
app.command()(cli_generate.replay)
app.command()(cli_generate.models)
app.command()(cli_verify.verify)
app.command("video")(cli_video.video)
app.command()(cli_warp.warp)
app.command()(cli_repose.repose)
app.command()(cli_serve.serve)
app.add_typer(cli_train.data_app, name="data")
app.add_typer(cli_train.train_app, name="train")
app.add_typer(cli_train.bench_app, name="bench")
app.add_typer(cli_prompt.prompt_app, name="prompt")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def control_space_hint(argv: list[str]) -> str | None:
    """`generate --control canny in/star.png` (a space where the colon goes) would meet click's bare
    "unexpected extra argument" box; name the mistake and the syntax instead."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] not in ("generate", "grid", "score"):
        return None
    for index, arg in enumerate(argv):
        if arg in ("--control", "-c") and index + 2 < len(argv):
            value, following = argv[index + 1], argv[index + 2]
        elif arg.startswith("--control=") and index + 1 < len(argv):
            value, following = arg.partition("=")[2], argv[index + 1]
        else:
            continue
        looks_like_image = Path(following).is_file() or Path(following).suffix.lower() in IMAGE_SUFFIXES
        if ":" not in value and not following.startswith("-") and looks_like_image:
            return (f"--control {value} {following}: join the detector and the image with a colon, "
                    f"--control {value}:{following} (MODULE:PATH[,key=value…]; MODULE `none` for a ready map)")
    return None


def main() -> None:
    """Entry point: user errors print one line; anything else prints a short report."""
    hint = control_space_hint(sys.argv[1:])
    if hint:
        typer.echo(f"error: {hint}", err=True)
        sys.exit(2)
    from kekong.cli.ray_options import bare_ray_flag

    sys.argv[1:] = bare_ray_flag(sys.argv[1:])  # `--ray` alone: Ray in this process
    try:
        app()
    except KekongError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so without a wall of traceback
        runner = sys.modules.get("kekong.train.runner")  # only a training run can have stopped
        if runner is not None and isinstance(exc, runner.Stopped):  # Ctrl-C/SIGTERM, checkpoint saved
            typer.echo(str(exc), err=True)
            sys.exit(exc.exit_code)
        if os.environ.get("KEKONG_DEBUG"):
            raise
        typer.echo(f"error: unexpected {exc.__class__.__name__}: {exc} "
                   "(set KEKONG_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)

