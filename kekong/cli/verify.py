"""`kekong verify`: provenance of images, for people and for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def verify(
    images: Annotated[list[Path], typer.Argument(help="images to check")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per image, as a list")] = False,
) -> None:
    """Check where images came from: C2PA manifest, kekong watermark, parameters, SDXL watermark.
    Exit code (the worst over the files): 0 provenance found, 1 none found, 4 manifest stripped (the
    watermark or recipe says one was written), 2 tampered, 3 unreadable (worst)."""
    from kekong.provenance.verify import describe, worst
    from kekong.provenance.verify import verify as check

    verdicts = [check(path) for path in images]
    if as_json:
        typer.echo(json.dumps([v.as_json() for v in verdicts], indent=1, default=str))
    else:
        typer.echo("\n\n".join(describe(v) for v in verdicts))
    raise typer.Exit(int(worst([v.outcome for v in verdicts])))
