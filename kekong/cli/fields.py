"""CLI options built from the request's field declarations (help, default, min/max come from there).

Options default to None, so a command passes on only what the user set: a field left out takes the
model's recommendation or the request's default (kekong/generation/defaults.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel

from kekong.declaration import FieldSpec, spec
from kekong.request import GenerationRequest

# (the option's flags, the field, its model) for every option made here: the field-walk test reads it
DECLARED: list[tuple[tuple[str, ...], str, type[BaseModel]]] = []


def option(name: str, *flags: str, model: type[BaseModel] = GenerationRequest, help: str | None = None) -> Any:
    """A `typer.Option` for the field `name`: its help, default and bounds as the field declares them."""
    field = spec(name, model)
    DECLARED.append((flags or ("--" + name.replace("_", "-"),), name, model))
    return typer.Option(*flags, help=help_text(field, help), min=field.ge, max=field.le)


def help_text(field: FieldSpec, help: str | None = None) -> str:
    text = help or field.help or field.name.replace("_", " ")
    notes = []
    if field.choices:
        notes.append(field.bounds_text())
    if field.default not in (None, "", [], {}) and "default" not in text:
        notes.append(f"default: {field.default}")
    return text + (f" ({'; '.join(notes)})" if notes else "")  # not [..]: rich reads that as markup


def given(**values: Any) -> dict[str, Any]:
    """The options the user set (None = left out)."""
    return {key: value for key, value in values.items() if value is not None}


# The output-layer flags every command that writes images takes (generate, repose, batch).
SaveRecipe = Annotated[bool, typer.Option("--save-recipe", help="write the recipe JSON beside")]
NoMetadata = Annotated[bool, typer.Option("--no-metadata", help="no parameters/recipe chunks")]
NoWatermark = Annotated[bool, typer.Option("--no-watermark", help="no invisible watermark")]
NoC2pa = Annotated[bool, typer.Option("--no-c2pa", help="no signed C2PA manifest")]
NoServer = Annotated[bool, typer.Option(
    "--no-server", help="generate in this process even when a `kekong serve` runs on this machine (by default "
    "it is used, its models already loaded; KEKONG_NO_SERVER=1 does the same)")]
