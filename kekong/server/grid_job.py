"""An X/Y/Z plot as one job (A1111's `script_name: "x/y/z plot"`): its cells planned and checked
when it is queued, run one after another by the worker with the core's grid (kekong.generation.grid)
and written by its grid writer (cells stamped, the sheet stamped and naming its cells).

The result lists the images in A1111's order — the grid, the per-Z grids, then the cells — and
which of them A1111 would answer with (`grid.answer`: the cells only with "Include Sub Images",
the per-Z grids only with "Include Sub Grids")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kekong.generation.grid import Cell, GridSpec, axis_text, fix_seeds, plan, run


def plan_cells(fields: dict[str, Any], spec: GridSpec) -> tuple[dict[str, Any], GridSpec, list[Cell]]:
    """(fields and spec with A1111's fixed seeds drawn, so the job runs exactly what was checked,
    every cell's request)."""
    axes = spec.parsed()
    if spec.fixed_seeds:
        fields, axes = fix_seeds(fields, axes)
        spec = GridSpec([axis_text(a) for a in axes], spec.fixed_seeds, spec.lone_images, spec.sub_grids,
                        spec.warnings)
    return fields, spec, plan(fields, axes, fixed_seeds=spec.fixed_seeds)


def run_grid(request: Any, out_dir: Path, on_step: Callable[[Any], Any], answer: dict[str, Any]) -> dict[str, Any]:
    """Generate every cell (after an interrupt the rest stay blank, as A1111 leaves them), write
    the grid, describe its images."""
    from kekong.generation.loop import Stop
    from kekong.generation.pipeline import generate
    from kekong.provenance.grid_record import write_grid
    from kekong.provenance.stamp import Layers, describe

    spec = GridSpec.from_json(answer["grid"])
    axes = spec.parsed()
    cells = plan(request.model_dump(), axes, fixed_seeds=spec.fixed_seeds)
    interrupted = False

    def step(info: Any) -> Any:
        nonlocal interrupted
        said = on_step(info)
        interrupted = interrupted or said is Stop.ALL
        return said

    def one(cell_request: Any) -> list[Any]:
        if interrupted:
            return [None]
        made = generate(cell_request, on_step=step)
        if answer.get("score", True):
            from kekong.fidelity import score_generated

            for generated in made:
                generated.fidelity = score_generated(generated) if generated.units else None
        return made or [None]

    results = run(cells, one)
    summary = write_grid(cells, results, axes, out_dir, Layers(**answer.get("layers", {})), sub_grids=spec.sub_grids)
    made = [g for g in results if g is not None]
    sheets = [summary["sheet"], *summary.get("sub_grids", [])]
    from PIL import Image

    images = []
    for name in sheets:
        with Image.open(out_dir / name) as sheet:
            images.append({"file": name, "sheet": True, "seed": made[0].seed, "subseed": made[0].subseed,
                           "prompt": made[0].prompt_used, "negative_prompt": made[0].negative_used,
                           "infotext": sheet.text.get("parameters", ""), "width": sheet.width,
                           "height": sheet.height, "fidelity": None})
    for row, generated in zip(summary["cells"], results, strict=True):
        if generated is not None:
            images.append({"file": row["file"], "seed": generated.seed, "subseed": generated.subseed,
                           "prompt": generated.prompt_used, "negative_prompt": generated.negative_used,
                           "infotext": describe(generated)[0], "width": int(generated.image.shape[1]),
                           "height": int(generated.image.shape[0]), "fidelity": generated.fidelity,
                           "position": row["position"]})
    sent = [0, *(range(1, len(sheets)) if spec.sub_grids else ()),
            *(range(len(sheets), len(images)) if spec.lone_images else ())]
    first = made[0]
    return {"images": images, "maps": [], "warnings": [],
            "grid": {"axes": summary["axes"], "cells": summary["cells"], "answer": sent,
                     "interrupted": interrupted},
            "request": request.model_dump(mode="json", exclude={"init_image", "mask", "controls"}),
            "model": {"name": first.base.name, "hash": first.base.hash},
            "vae": first.vae.name if first.vae is not None else None}
