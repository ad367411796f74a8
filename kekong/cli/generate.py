"""`kekong generate`, `kekong replay` and `kekong models`: parse → core → print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kekong.cli.fields import NoC2pa, NoMetadata, NoServer, NoWatermark, SaveRecipe, given, option
from kekong.cli.output import StepBar, fidelity_text, output_paths
from kekong.cli.ray_options import CpusPerWorker, GpusPerWorker, Ray, Workers
from kekong.errors import KekongError, ParameterError
from kekong.provenance.stamp import FORMATS, Layers

UNIT_KEYS = {"model": "model", "weight": "weight", "start": "start", "end": "end", "mode": "mode",
             "resize": "resize_mode", "resize_mode": "resize_mode", "res": "res", "mask": "mask",
             "pixel_perfect": "pixel_perfect", "pp": "pixel_perfect", "enabled": "enabled", "hr": "hr_option",
             "hr_option": "hr_option"}


def parse_control(spec: str) -> dict[str, Any]:
    """`MODULE:PATH[,key=value…]` → a ControlUnit's fields; unknown keys are detector parameters."""
    module, sep, rest = spec.partition(":")
    if not sep or not module.strip() or not rest.strip():
        raise ParameterError(f"--control {spec!r}: expected MODULE:PATH[,key=value…] (MODULE `none` for a ready map)")
    path, *pairs = rest.split(",")
    unit: dict[str, Any] = {"module": module.strip(), "image": path.strip(), "params": {}}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ParameterError(f"--control {spec!r}: {pair!r} is not key=value")
        if key in UNIT_KEYS:
            unit[UNIT_KEYS[key]] = value.strip()
        else:
            unit["params"][key] = value.strip()
    return unit


def parse_parts(text: str | None) -> list[str] | None:
    """`--fast-parts deep_cache,control_reuse` → the list (None: not given)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def parse_lora(spec: str) -> dict[str, Any]:
    """`PATH[:WEIGHT]` (the weight after the last colon when it is a number)."""
    path, sep, weight = spec.rpartition(":")
    if sep and path:
        try:
            return {"path": path, "weight": float(weight)}
        except ValueError:
            pass
    return {"path": spec, "weight": 1.0}


def generate(
    prompt: Annotated[str | None, typer.Argument(help="what to draw")] = None,
    negative: Annotated[str | None, option("negative_prompt", "--negative", "-n", help="negative prompt")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help=".png, .jpg or .webp to write (-0001… for several)")] = Path("kekong.png"),
    model: Annotated[str | None, option("model", help="base model: file, folder, name or hub id")] = None,
    vae: Annotated[str | None, option("vae")] = None,
    refiner: Annotated[str | None, option("refiner")] = None,
    refiner_switch_at: Annotated[float | None, option("refiner_switch_at")] = None,
    prediction_type: Annotated[str | None, option("prediction_type")] = None,
    control: Annotated[list[str] | None, typer.Option(
        "--control", "-c", help="MODULE:PATH, or MODULE:PATH,key=value,… (repeatable); keys: model, weight, "
        "start, end, mode, resize, res, mask, pixel_perfect, or detector parameters")] = None,
    seed: Annotated[int | None, option("seed")] = None,
    subseed: Annotated[int | None, option("subseed")] = None,
    subseed_strength: Annotated[float | None, option("subseed_strength")] = None,
    seed_resize_from: Annotated[str | None, typer.Option(help="WxH: make the noise as for this size")] = None,
    rng: Annotated[str | None, option("rng")] = None,
    ensd: Annotated[int | None, option("eta_noise_seed_delta", "--ensd")] = None,
    hires: Annotated[bool | None, option("enable_hr", "--hires", help="hires fix: a second pass at a larger size")
                     ] = None,
    hr_scale: Annotated[float | None, option("hr_scale")] = None,
    hr_resize: Annotated[str | None, typer.Option(help="hires: WxH instead of --hr-scale")] = None,
    hr_upscaler: Annotated[str | None, option("hr_upscaler", help="hires: Latent (…), Lanczos, Nearest, None")
                           ] = None,
    hr_steps: Annotated[int | None, option("hr_second_pass_steps", "--hr-steps",
                                           help="hires: second-pass steps (0 = --steps)")] = None,
    hr_sampler: Annotated[str | None, option("hr_sampler_name", "--hr-sampler",
                                             help="hires: second-pass sampler (default: the same)")] = None,
    hr_prompt: Annotated[str | None, option("hr_prompt", help="hires: second-pass prompt (default: the same)")
                         ] = None,
    steps: Annotated[int | None, option("steps")] = None,
    cfg: Annotated[float | None, option("cfg_scale", "--cfg")] = None,
    sampler: Annotated[str | None, option("sampler", help="A1111 sampler name, e.g. 'DPM++ 2M', 'Euler a', UniPC")
                       ] = None,
    schedule: Annotated[str | None, option("scheduler", "--schedule")] = None,
    width: Annotated[int | None, option("width", "--width", "-W")] = None,
    height: Annotated[int | None, option("height", "--height", "-H")] = None,
    batch_size: Annotated[int | None, option("batch_size")] = None,
    batch_count: Annotated[int | None, option("batch_count")] = None,
    clip_skip: Annotated[int | None, option("clip_skip")] = None,
    lora: Annotated[list[str] | None, typer.Option(help="PATH[:WEIGHT] (repeatable)")] = None,
    detail: Annotated[list[str] | None, typer.Option(
        "--detail", help="fix faces or hands after generating (ADetailer): face or hand, then ,key=value "
        "pairs with ADetailer's names (denoising_strength, prompt, …), e.g. face,prompt=smiling (repeatable)")] = None,
    init: Annotated[str | None, option("init_image", "--init", help="init image (img2img / inpaint)")] = None,
    strength: Annotated[float | None, option("denoising_strength", "--strength")] = None,
    resize_mode: Annotated[str | None, option("resize_mode", help="init image: just (stretch), crop (cover) or fill "
                                              "(fit inside)")] = None,
    mask: Annotated[str | None, option("mask")] = None,
    mask_blur: Annotated[int | None, option("mask_blur")] = None,
    mask_invert: Annotated[bool | None, option("mask_invert", "--mask-invert", help="repaint the black part")
                           ] = None,
    only_masked: Annotated[bool | None, option("inpaint_only_masked", "--only-masked",
                                               help="inpaint the masked region at full size")] = None,
    padding: Annotated[int | None, option("only_masked_padding", "--padding")] = None,
    fill: Annotated[str | None, option("inpainting_fill", "--fill")] = None,
    request_file: Annotated[Path | None, typer.Option("--request", help="a request JSON (flags are ignored)")] = None,
    save_maps: Annotated[bool, typer.Option("--save-maps", help="write the control maps beside")] = False,
    save_recipe: SaveRecipe = False,
    no_metadata: NoMetadata = False,
    no_watermark: NoWatermark = False,
    no_c2pa: NoC2pa = False,
    c2pa_thumbnails: Annotated[bool, typer.Option(
        "--c2pa-thumbnails", help="embed thumbnails of the input images in the C2PA manifest")] = False,
    no_score: Annotated[bool, typer.Option(
        "--no-score", help="skip the fidelity score (the unit's detector run again on each output)")] = False,
    record_paths: Annotated[bool, typer.Option(
        "--record-paths", help="keep local paths of inputs and models in the recipe chunk/sidecar (never in "
        "C2PA); by default only file names, hashes and sizes are written")] = False,
    prompts_file: Annotated[Path | None, typer.Option(help="one prompt per line: a job each")] = None,
    batch_dir: Annotated[Path | None, typer.Option(help="a folder of images: a job each")] = None,
    batch_as: Annotated[str, typer.Option(help="the folder's images as: init, control or control:N")] = "init",
    out_dir: Annotated[Path | None, typer.Option(help="where batch jobs (and grids) write")] = None,
    x: Annotated[str | None, typer.Option("--x", help="X/Y/Z grid: AXIS:VALUES, e.g. 'Prompt S/R:red,blue' or "
                                                      "'CFG Scale:2-8 (+2)' (A1111's axis names and ranges)")] = None,
    y: Annotated[str | None, typer.Option("--y", help="grid: the second axis")] = None,
    z: Annotated[str | None, typer.Option("--z", help="grid: the third axis")] = None,
    ray: Ray = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    fast: Annotated[bool | None, option("fast", "--fast", help="fast mode: several times quicker, a little less "
                                        "faithful (deep features and ControlNet residuals reused between full steps)")
                    ] = None,
    fast_parts: Annotated[str | None, option("fast_parts", help="fast mode's accelerations, comma-separated "
                                             "(default: all)")] = None,
    fast_interval: Annotated[int | None, option("fast_interval")] = None,
    no_server: NoServer = False,
) -> None:
    """Generate images following a prompt and control images:
    `kekong generate "a red star" --control scribble_sketch:sketch.png -o star.png`.
    With --x/--y/--z (or as `kekong grid`), an X/Y/Z grid of images into --out-dir."""
    from kekong.request import build_request

    if request_file is not None:
        try:
            fields = json.loads(request_file.read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"{request_file}: not a readable request JSON ({exc})") from None
    else:
        fields = request_fields(locals())
    if out.suffix.lower() not in FORMATS:
        raise ParameterError(f"{out}: generated images are written as .png, .jpg or .webp")
    layers = Layers(metadata=not no_metadata, watermark=not no_watermark, c2pa=not no_c2pa,
                    c2pa_thumbnails=c2pa_thumbnails, record_paths=record_paths)
    if ray is not None or cpus_per_worker is not None:  # grids and batch jobs on Ray actors: kekong.cli.batch_path
        from kekong.cli.batch_path import on_ray

        if on_ray(locals(), fields, layers):
            return
    if x or y or z:
        from kekong.cli.batch_path import grid

        grid(fields, [a for a in (x, y, z) if a], out_dir or out.with_suffix(""), layers, not no_score)
        return
    if prompts_file is None and batch_dir is None:
        from kekong.cli import via_server

        if not no_server and via_server.served(fields, out, save_maps, save_recipe, layers, not no_score):
            return  # a `kekong serve` on this machine made it (this process imported no torch)
        run_and_write(build_request(**fields), out, save_maps, save_recipe, layers, not no_score)
        return
    from kekong.cli.batch_path import batch_jobs  # resumable, with summary.json, as with --ray

    batch_jobs(fields, prompts_file, batch_dir, batch_as, out_dir, out.suffix, save_recipe, layers, not no_score)


def request_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The request fields of generate's options (by parameter name; a missing or None one was not
    set, so the model's recommendation or the default applies). `kekong video` shares them."""
    from kekong.detail_spec import from_cli

    o = options.get
    lora, control, detail = o("lora"), o("control"), o("detail")
    fields = given(
        prompt=o("prompt"), negative_prompt=o("negative"), model=o("model"), vae=o("vae"),
        prediction_type=o("prediction_type"), refiner=o("refiner"), refiner_switch_at=o("refiner_switch_at"),
        seed=o("seed"), subseed=o("subseed"), subseed_strength=o("subseed_strength"), rng=o("rng"),
        eta_noise_seed_delta=o("ensd"),
        steps=o("steps"), cfg_scale=o("cfg"), sampler=o("sampler"), scheduler=o("schedule"), width=o("width"),
        height=o("height"), batch_size=o("batch_size"), batch_count=o("batch_count"), clip_skip=o("clip_skip"),
        loras=[parse_lora(s) for s in lora] if lora else None, init_image=o("init"),
        denoising_strength=o("strength"), resize_mode=o("resize_mode"), mask=o("mask"), mask_blur=o("mask_blur"),
        mask_invert=o("mask_invert"), inpaint_only_masked=o("only_masked"), only_masked_padding=o("padding"),
        inpainting_fill=o("fill"), controls=[parse_control(s) for s in control] if control else None,
        enable_hr=o("hires"), hr_scale=o("hr_scale"), hr_upscaler=o("hr_upscaler"),
        hr_second_pass_steps=o("hr_steps"), hr_sampler_name=o("hr_sampler"), hr_prompt=o("hr_prompt"),
        detail=[from_cli(text).model_dump() for text in detail] if detail else None,
        fast=o("fast"), fast_parts=parse_parts(o("fast_parts")), fast_interval=o("fast_interval"))
    if o("seed_resize_from") is not None:
        fields["seed_resize_from_w"], fields["seed_resize_from_h"] = parse_size("--seed-resize-from",
                                                                                o("seed_resize_from"))
    if o("hr_resize") is not None:
        fields["hr_resize_x"], fields["hr_resize_y"] = parse_size("--hr-resize", o("hr_resize"))
    return fields


def parse_size(flag: str, text: str | None) -> tuple[int, int]:
    """`512x768` → (512, 768); None → (0, 0), which the request reads as "off"."""
    if text is None:
        return 0, 0
    width, sep, height = text.lower().partition("x")
    if not (sep and width.strip().isdigit() and height.strip().isdigit()):
        raise ParameterError(f"{flag}: expected WIDTHxHEIGHT such as 512x768, got {text!r}")
    return int(width), int(height)


def run_and_write(request: Any, out: Path, save_maps: bool = False, save_recipe: bool = False,
                  layers: Layers | None = None, score: bool = True, server: bool = False) -> None:
    """Generate and write; with `server`, on a `kekong serve` running here when there is one (the
    same files as a local run), else here."""
    if server:
        from kekong.cli import via_server

        if via_server.wanted(no_server=False) and via_server.generate(request, out, save_maps, save_recipe,
                                                                      layers or Layers(), score):
            return
    from kekong.generation.pipeline import generate as run
    from kekong.generation.pipeline import steps_per_batch
    from kekong.io import save_image
    from kekong.provenance.stamp import stamp

    count = request.batch_size * request.batch_count
    with StepBar(steps_per_batch(request) * request.batch_count) as bar:
        results = run(request, on_step=bar)
    for generated, path in zip(results, output_paths(out, count), strict=True):
        if score and generated.units:
            from kekong.fidelity import score_generated

            generated.fidelity = score_generated(generated)  # recorded in the recipe too
        stamp(generated, path, recipe_sidecar=save_recipe, layers=layers or Layers())
        typer.echo(f"wrote {path} (seed {generated.seed})")
        for entry in generated.fidelity or []:
            typer.echo(f"  fidelity, unit {entry['unit']} ({entry['module']}): {fidelity_text(entry)}")
    if save_maps and results:
        for unit in results[0].units:
            if unit.detected is not None and unit.detected.dtype.name == "uint8":
                path = save_image(unit.detected, out.with_name(f"{out.stem}-control-{unit.index}.png"))
                typer.echo(f"wrote {path} (control map {unit.index}: {unit.unit.module})")


def replay(
    recipe: Annotated[Path, typer.Argument(help="recipe .json, a PNG/JPEG/WebP kekong wrote, or an image with "
                                                "only A1111's parameters")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")],
    inputs: Annotated[list[Path] | None, typer.Option(
        "--inputs", help="a folder holding the input images or models (repeatable); also looked in: the "
        "recipe's folder, the current folder")] = None,
    model: Annotated[str | None, typer.Option(help="A1111 images: the base model, when the one the infotext names "
                                                   "is not here")] = None,
    init: Annotated[str | None, typer.Option(help="A1111 img2img/inpaint images: the init image")] = None,
    mask: Annotated[str | None, typer.Option(help="A1111 inpaint images: the mask")] = None,
    control_image: Annotated[list[str] | None, typer.Option(
        help="A1111 images: each ControlNet unit's image, in unit order (an infotext carries none)")] = None,
) -> None:
    """Regenerate an image from its recipe (bit-identical on the same torch, threads and CPU).
    Inputs are found by file name and checked by sha256 (a missing one is named with its sha256).
    An image with only A1111's `parameters` is regenerated from them: models are matched here by hash,
    then by name; what the text does not carry (init image, mask, control images) is passed as options."""
    from kekong.provenance.replay import a1111_infotext, load_recipe
    from kekong.provenance.replay import replay as run
    from kekong.provenance.stamp import stamp

    if out.suffix.lower() not in FORMATS:
        raise ParameterError(f"{out}: generated images are written as .png, .jpg or .webp")
    from kekong.generation.pipeline import steps_per_batch
    from kekong.request import build_request

    overrides = given(model=model, init_image=init, mask=mask)
    try:
        data = load_recipe(recipe)
    except KekongError:
        infotext = a1111_infotext(recipe)
        if infotext is None:
            raise
        _replay_infotext(infotext, overrides, control_image or [], out)
        return
    if overrides or control_image:
        raise ParameterError("--model, --init, --mask and --control-image are for images with only A1111 "
                             "parameters; a kekong recipe names its own inputs (pass their folder with --inputs)")
    with StepBar(steps_per_batch(build_request(**data["request"]))) as bar:
        generated, warnings = run(data, on_step=bar, folders=[*(inputs or []), recipe.parent])
    for warning in warnings:
        typer.echo(f"warning: may not be bit-identical — {warning}", err=True)
    from kekong.provenance.marks import parse_id

    recorded = (data.get("provenance") or {}).get("watermark", "")
    stamp(generated, out, mark_id=parse_id(str(recorded)))  # the same image gets the same mark
    typer.echo(f"wrote {out} (seed {generated.seed})")


def _replay_infotext(infotext: str, overrides: dict[str, Any], control_images: list[str], out: Path) -> None:
    from kekong.generation.pipeline import generate, steps_per_batch
    from kekong.provenance.infotext_request import request_from_infotext
    from kekong.provenance.stamp import stamp

    request, warnings = request_from_infotext(infotext, overrides, control_images)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    with StepBar(steps_per_batch(request)) as bar:
        [generated] = generate(request.model_copy(update={"batch_size": 1, "batch_count": 1}), bar)
    stamp(generated, out)
    typer.echo(f"wrote {out} (seed {generated.seed}, from A1111 parameters)")


def models(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """List the models on this machine with A1111's hashes (models folder: KEKONG_MODELS_DIR)."""
    from kekong.models.catalog import local_models
    from kekong.models.hashes import legacy_hash, model_sha256
    from kekong.models.weights import models_dir

    rows = []
    for found in local_models():  # each once, with its kind (a ControlNet/ file is not also an IP-Adapter)
        path = found["path"]
        try:
            digest = model_sha256(path)
            legacy = legacy_hash(path) if path.is_file() else None
        except OSError as exc:
            raise KekongError(f"{path}: cannot read ({exc})") from None
        rows.append({"role": found["role"], "kind": found["kind"], "name": found["name"], "path": str(path),
                     "hash": digest[:10], "sha256": digest, "legacy_hash": legacy})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    typer.echo(f"models folder: {models_dir()}")
    if not rows:
        typer.echo("no models found (hub ids in the Hugging Face cache can still be named directly)")
    for row in rows:
        legacy = f" [{row['legacy_hash']}]" if row["legacy_hash"] else ""
        kind = f"  {row['kind']}" if row["kind"] not in ("base model", "ControlNet", "IP-Adapter", "LoRA", "VAE") \
            else ""  # a role's usual kind goes without saying
        typer.echo(f"{row['role']:<10} {row['name']}{legacy}{kind}  hash {row['hash']}  {row['path']}")

