"""`kekong prompt expand`: words → a weighted tag prompt."""

from __future__ import annotations

import json
from typing import Annotated

import typer

prompt_app = typer.Typer(help="Prompt tools.", no_args_is_help=True)


@prompt_app.command("expand")
def expand_command(
    text: Annotated[str, typer.Argument(help="plain words, e.g. 'a girl walking in the rain at night'")],
    negative: Annotated[str, typer.Option(help="themes to steer away from, comma-separated")] = "",
    count: Annotated[int, typer.Option(help="tags to add")] = 12,
    top_k: Annotated[int, typer.Option(help="candidates considered")] = 40,
    top_p: Annotated[float, typer.Option(help="nucleus sampling mass")] = 0.9,
    temperature: Annotated[float, typer.Option(help="sampling temperature (lower: closer to the ranking)")] = 0.05,
    seed: Annotated[int, typer.Option()] = 0,
    tags_only: Annotated[bool, typer.Option("--tags-only", help="leave the input text out")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="tags with scores and weights")] = False,
) -> None:
    """Expand a sentence into the tags diffusion models respond to (offline, MiniLM)."""
    from kekong.prompt.expand import expand

    result = expand(text, negative=negative, count=count, top_k=top_k, top_p=top_p, temperature=temperature,
                    seed=seed, tags_only=tags_only)
    typer.echo(json.dumps({"prompt": result.prompt, "tags": result.tags}, indent=1) if as_json else result.prompt)


@prompt_app.command("describe")
def describe_command(
    images: Annotated[list[str], typer.Argument(help="image files")],
    mode: Annotated[str, typer.Option(help="structure (offline, detectors), fast, best, negative")] = "structure",
    caption_model: Annotated[str | None, typer.Option(help="BLIP folder or cached hub id")] = None,
    clip_model: Annotated[str | None, typer.Option(help="CLIP folder or cached hub id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="tags and what they were read from")] = False,
) -> None:
    """Describe an image as a prompt (A1111's interrogate)."""
    from kekong.io import load_image
    from kekong.prompt.describe import describe_structure
    from kekong.prompt.interrogate import interrogate

    rows = []
    for path in images:
        image = load_image(path)
        result = describe_structure(image) if mode == "structure" else interrogate(image, mode, caption_model,
                                                                                    clip_model)
        rows.append({"image": path, "prompt": result.prompt, "tags": result.tags, "data": result.data})
        if not as_json:
            typer.echo(result.prompt if len(images) == 1 else f"{path}: {result.prompt}")
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
