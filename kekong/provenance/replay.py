"""Regenerate an image from its recipe (a .json file, or a PNG kekong wrote): beside the recipe it reads.

Provenance sits above generation: replay runs the pipeline, and nothing in generation imports provenance."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kekong.errors import KekongError, ParameterError
from kekong.io import source_sha256
from kekong.models.hashes import model_sha256
from kekong.provenance.credentials import read_credentials
from kekong.provenance.locate import located_request
from kekong.provenance.recipe import environment
from kekong.provenance.stamp import RECIPE_KEY, read_png_text
from kekong.request import build_request


def load_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise KekongError(f"{path}: no such file")
    if path.suffix.lower() == ".png":
        text = read_png_text(path).get(RECIPE_KEY)
        if text is None:
            text = _recipe_from_credentials(path)
        if text is None:
            raise KekongError(f"{path}: this PNG carries no kekong recipe")
    elif path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        text = _recipe_from_credentials(path)  # JPEG/WebP keep the recipe in the C2PA manifest
        if text is None:
            raise KekongError(f"{path}: this image carries no kekong recipe (its C2PA manifest holds it when "
                              "kekong wrote it with metadata on)")
    else:
        text = path.read_text()
    try:
        recipe = json.loads(text)
    except ValueError as exc:
        raise KekongError(f"{path}: the recipe is not valid JSON ({exc})") from None
    if not isinstance(recipe, dict) or recipe.get("kekong_recipe") not in (1, 2):
        raise KekongError(f"{path}: not a kekong recipe (version 1 or 2)")
    return recipe


def a1111_infotext(path: str | Path) -> str | None:
    """The A1111 `parameters` text of an image (PNG chunk or EXIF UserComment), or None."""
    from kekong.provenance.verify import read_metadata

    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        return None
    return read_metadata(path.read_bytes()).get("parameters") or None


def _recipe_from_credentials(path: Path) -> str | None:
    report = read_credentials(path.read_bytes(), path.suffix)
    recipe = (report.kekong or {}).get("recipe")
    return json.dumps(recipe) if recipe else None


def check_inputs(recipe: dict[str, Any]) -> None:
    """Every input image must be the one the recipe was made from (version 1 recipes: they record
    the paths; version 2 finds its inputs by name and sha256, provenance/locate.py)."""
    request = recipe["request"]
    expected = [(request.get("init_image"), recipe["inputs"].get("init_image_sha256"), "init image"),
                (request.get("mask"), recipe["inputs"].get("mask_sha256"), "mask")]
    for unit, unit_request in zip(recipe["models"]["controlnets"], request["controls"], strict=False):
        expected.append((unit_request.get("image") or request.get("init_image"), unit["image_sha256"],
                         f"control unit {unit['index']} image"))
        expected.append((unit_request.get("mask"), unit.get("mask_sha256"), f"control unit {unit['index']} mask"))
    for reference, digest, what in expected:
        if reference and digest and source_sha256(reference) != digest:
            raise ParameterError(f"the {what} {reference[:80]} is not the file the recipe was made from "
                                 "(its sha256 differs)")


def differences(recipe: dict[str, Any]) -> list[str]:
    """Why a replay might not be bit-identical: environment facts that differ."""
    now, then = environment(), recipe.get("environment", {})
    compared = ["torch", "diffusers", "threads", "cpu"] + [k for k in ("weights", "compute") if k in then]  # newer keys
    return [f"{key}: recipe {then.get(key)!r}, here {now[key]!r}" for key in compared if then.get(key) != now[key]]


def upgraded(fields: dict[str, Any]) -> dict[str, Any]:
    """A recipe's request fields with the value its kekong used for a field whose default changed since:
    a re-pose recorded without `layered` was warped by one MLS warp of the whole picture."""
    repose = fields.get("repose")
    if isinstance(repose, dict) and "layered" not in repose:
        return {**fields, "repose": {**repose, "layered": False}}
    return fields


def replay(recipe: dict[str, Any], on_step=None, folders: Sequence[Path] = ()):
    """The recipe's image, regenerated; returns (Generated, warnings). Inputs and models are looked
    for in `folders`, then the current folder (by name, then by sha256)."""
    from kekong.generation.pipeline import generate  # torch and diffusers: loaded when a replay runs

    warnings = []
    if recipe.get("kekong_recipe") == 1:
        check_inputs(recipe)
        fields = dict(recipe["request"])
    else:
        fields, warnings = located_request(recipe, [*map(Path, folders), Path.cwd()])
    fields = upgraded(fields)
    image = recipe["image"]
    # Re-run the image's own batch: batched kernels are not bit-identical to single runs.
    fields.update(seed=image["batch_seed"], batch_count=1)
    if image.get("subseed") is not None:  # the batch's first variation seed
        fields.update(subseed=(image["subseed"] - image["batch_position"]) % 2**32)
    request = build_request(**fields)
    warnings = [*differences(recipe), *warnings]
    results = generate(request, on_step)
    generated = results[image["batch_position"]]
    generated.index = image["index"]
    if fields.get("model") is None and model_sha256(generated.base.ref.path) != recipe["models"]["base"]["sha256"]:
        warnings.append(f"base model {generated.base.name} is not the file the recipe was made with")
    return generated, warnings
