"""Model-carried defaults: the settings a base model recommends, used where the user set nothing.

A model folder's `kekong.json` (or `NAME.kekong.json` beside a single `.safetensors` file) may carry
`"recommended": {"cfg_scale": 2, ...}`. A field the request did not set (pydantic's
`model_fields_set`: the CLI, the Python API and kekong's own HTTP API pass on only what was given)
takes the model's recommendation, else the request's declared default (A1111's). A1111's routes fill
every field with A1111's defaults, so what those clients send — or leave out — is honoured as A1111
would. The request that runs, and so the infotext and the recipe, holds the value used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kekong.errors import KekongError, ParameterError
from kekong.request import GenerationRequest, build_request

# What a model may recommend: how it samples, never what the image shows or where it comes from.
RECOMMENDABLE = ("steps", "cfg_scale", "sampler", "scheduler", "clip_skip", "denoising_strength")


def settings_file(path: Path) -> Path:
    """Where a model keeps its kekong settings: inside its folder, or beside its single file."""
    return path / "kekong.json" if path.is_dir() else path.with_name(path.stem + ".kekong.json")


def model_defaults(model: str | None) -> dict[str, Any]:
    """The settings `model` (a base-model reference; None = the shipped default) recommends; {} when
    it recommends none or cannot be found here (loading it will name that problem). Reads one small
    JSON file: no weights are loaded."""
    from kekong.models.refs import DEFAULT_BASE, resolve

    try:
        path = resolve(model or DEFAULT_BASE, "base").path
    except KekongError:
        return {}
    return read_recommended(settings_file(path))


def read_recommended(file: Path) -> dict[str, Any]:
    """The `recommended` table of a settings file, checked against the request's declaration."""
    if not file.is_file():
        return {}
    try:
        table = json.loads(file.read_text()).get("recommended", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise ParameterError(f"{file.name}: not a readable kekong settings file ({exc})") from None
    if not isinstance(table, dict):
        raise ParameterError(f"{file.name}: `recommended` must be a table of request fields")
    unknown = sorted(set(table) - set(RECOMMENDABLE))
    if unknown:
        raise ParameterError(f"{file.name}: a model cannot recommend {', '.join(unknown)} "
                             f"(it may recommend {', '.join(RECOMMENDABLE)})")
    try:
        build_request(**table)  # the declared bounds and choices apply to a model's settings too
    except ParameterError as error:
        raise ParameterError(f"{file.name}: recommended settings: {error}") from None
    return table


def with_model_defaults(request: GenerationRequest, recommended: dict[str, Any] | None = None) -> GenerationRequest:
    """`request` with each field it left unset taken from the model's recommendation."""
    if recommended is None:
        recommended = model_defaults(request.model)
    given = request.model_fields_set
    unset = {name: value for name, value in recommended.items()
             if name not in given and not (name == "scheduler" and "sampler" in given)}  # "DPM++ 2M Karras" sets both
    if not unset:
        return request
    return build_request(**{**request.model_dump(exclude_unset=True), **unset})
