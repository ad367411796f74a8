"""`kekong score`: how well an image (made by kekong or elsewhere) follows a control."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kekong.errors import ParameterError


def score(
    image: Annotated[Path, typer.Argument(help="the generated image")],
    control: Annotated[list[str], typer.Option(
        "--control", "-c", help="MODULE:PATH — the photo the unit's detector reads (as generate's --control), or "
        "none:MAP for a ready map (then --score-as names its kind); repeatable")],
    score_as: Annotated[str | None, typer.Option(help="for none:MAP, the detector whose maps it is (e.g. canny)")
                        ] = None,
    res: Annotated[int, typer.Option(help="processor resolution the detector runs at")] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Re-detect each control on IMAGE and compare (edge F1, pose PCK, depth RMSE, …):
    `kekong score out.png --control canny:photo.jpg`."""
    from kekong.cli.generate import fidelity_text
    from kekong.fidelity import score as run
    from kekong.io import load_image

    picture = load_image(str(image))
    rows = []
    for index, spec in enumerate(control):
        module, sep, path = spec.partition(":")
        if not sep or not path:
            raise ParameterError(f"--control {spec!r}: expected MODULE:PATH (e.g. canny:photo.jpg)")
        reference = load_image(path)
        if module.strip() == "none" and reference.shape[:2] != picture.shape[:2]:
            from kekong.detect.resolution import resize_map

            reference = resize_map(reference, picture.shape[:2])
        result = run(picture, module.strip(), reference, score_as=score_as, res=res)
        rows.append({"unit": index, "module": module.strip(), **result.as_dict()})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        typer.echo(f"unit {row['unit']} ({row['module']}): {fidelity_text(row)}")
