"""Writing an X/Y/Z grid: each cell stamped as any kekong image (infotext, recipe, watermark, C2PA),
and the contact sheet stamped too: the first cell's infotext plus A1111's `Script: X/Y/Z plot`,
`X Type`/`X Values` keys (as A1111's grid does), a `kekong-grid` chunk naming every cell by file
and sha256, its own watermark (registered to that list) and a C2PA manifest whose ingredients are
the cells (`componentOf`). Beside it a `grid.json` + `grid.csv` of every cell's parameters and
fidelity scores, and for a numeric X axis a plot of the scores against it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kekong.generation.grid import NOTHING, Axis, Cell, axis_text
from kekong.generation.grid_sheet import contact_sheet, label
from kekong.io import encode_image, write_atomic
from kekong.provenance.infotext import format_infotext
from kekong.provenance.stamp import Layers, infotext_params, marked, stamp

GRID_KEY = "kekong-grid"  # the sheet's PNG chunk: the axes and every cell by file and sha256
MAX_C2PA_CELLS = 64  # cells embedded as C2PA ingredients (with their own manifests); all are in GRID_KEY


def cell_name(cell: Cell) -> str:
    return "cell-" + "-".join(str(i) for i in cell.position)


@dataclass
class CellImage:
    """A cell once stamped to its file: what the sheet and grid.json need of it. Plain data, so a
    cell made elsewhere (a Ray actor, `kekong grid --ray`) comes back as one."""

    file: str
    seed: int
    image: np.ndarray  # as generated (the sheet is drawn from these, before any watermark)
    params: dict[str, Any]  # its infotext parameters (stamp.infotext_params)
    prompt: str
    negative_prompt: str
    fidelity: list[dict] | None = None


def stamp_cell(generated: Any, path: Path, layers: Layers) -> CellImage:
    """Stamp one cell's image to `path` (as every kekong image) and describe it for the sheet."""
    stamp(generated, path, layers=layers)
    request = generated.request
    return CellImage(path.name, generated.seed, generated.image, infotext_params(generated), request.prompt,
                     request.negative_prompt, generated.fidelity)


def write_grid(cells: list[Cell], results: list[Any], axes: list[Axis], out_dir: Path,
               layers: Layers | None = None, sub_grids: bool = False) -> dict[str, Any]:
    """Write the grid into `out_dir`; returns its summary (also grid.json). A result is a cell's
    `Generated` (stamped here), a `CellImage` (stamped where it was made, into `out_dir`), or None:
    a cell that was not made (the run was interrupted), blank on the sheet, as A1111 leaves it.
    `sub_grids`: one sheet per Z value too (`grid-z<i>.png`, A1111's "Include Sub Grids")."""
    layers = layers or Layers()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [r if r is None or isinstance(r, CellImage) else stamp_cell(r, out_dir / f"{cell_name(c)}.png", layers)
               for c, r in zip(cells, results, strict=True)]
    made = [g for g in results if g is not None]
    rows = []
    for cell, generated in zip(cells, results, strict=True):
        values = {axis.label: _plain(value) for axis, value in zip(axes, cell.values, strict=True)}
        if generated is None:
            rows.append({"file": None, "sha256": None, "position": list(cell.position), "seed": None, **values,
                         "fidelity": None, "missing": "not made: the grid was interrupted"})
            continue
        path = out_dir / generated.file
        rows.append({"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "position": list(cell.position), "seed": generated.seed, **values,
                     "fidelity": generated.fidelity})
    blank = np.zeros_like(made[0].image)
    images = [g.image if g is not None else blank for g in results]
    shape = tuple(len(a.values) for a in axes) + (1,) * (3 - len(axes))
    labels = [[label(axis, v) for v in axis.values] for axis in axes] + [[]] * (3 - len(axes))
    titles = [a.label if a.type is not NOTHING else "" for a in axes[:2]]
    z_labels = [f"{axes[2].label}: {v}" for v in labels[2]] if len(axes) > 2 and axes[2].type is not NOTHING else []
    summary = {"axes": [{"name": a.label, "values": [_plain(v) for v in a.values]} for a in axes],
               "cells": rows, "sheet": "grid.png"}
    files = [out_dir / row["file"] for row in rows if row["file"]]
    sheet = contact_sheet(images, shape, labels[0], labels[1], z_labels, titles)
    summary["provenance"] = stamp_sheet(sheet, out_dir / "grid.png", layers, grid_infotext(made[0], axes), summary,
                                        files)
    if sub_grids:
        per_z = shape[0] * shape[1]
        summary["sub_grids"] = []
        for z in range(shape[2]):
            name = f"grid-z{z}.png"
            part = contact_sheet(images[z * per_z:(z + 1) * per_z], (shape[0], shape[1], 1), labels[0], labels[1],
                                 [], titles)
            first = next((g for g in results[z * per_z:(z + 1) * per_z] if g is not None), made[0])
            stamp_sheet(part, out_dir / name, layers, grid_infotext(first, axes[:2]),
                        {**summary, "sheet": name, "z": z}, files[z * per_z:(z + 1) * per_z])
            summary["sub_grids"].append(name)
    write_atomic(out_dir / "grid.json", json.dumps(summary, indent=1).encode())
    write_atomic(out_dir / "grid.csv", _csv([r for r in rows if r["file"]], axes))
    plot = _plot([r for r in rows if r["file"]], axes[0])
    if plot is not None:
        write_atomic(out_dir / "fidelity.png", plot)
        summary["plot"] = "fidelity.png"
    return summary


def grid_infotext(first: CellImage, axes: list[Axis]) -> str:
    """A1111's grid infotext: the first cell's, plus `Script: X/Y/Z plot` and each axis's type and
    values (`Fixed X Values` for a seed axis, as A1111 writes the seeds it drew)."""
    params = dict(first.params)
    params.pop("Version", None)
    params["Script"] = "X/Y/Z plot"
    for letter, axis in zip("XYZ", axes, strict=False):
        if axis.type is NOTHING:
            continue
        params[f"{letter} Type"] = axis.type.name
        params[f"{letter} Values"] = axis_text(axis).partition(":")[2]
        if axis.type.name in ("Seed", "Var. seed"):
            params[f"Fixed {letter} Values"] = ", ".join(str(v) for v in axis.values)
    params["Version"] = "kekong"
    return format_infotext(first.prompt, first.negative_prompt, params)


def stamp_sheet(sheet: np.ndarray, path: Path, layers: Layers, infotext: str, summary: dict[str, Any],
                cells: list[Path]) -> dict[str, Any]:
    """Write a contact sheet with the provenance layers every kekong image gets: the infotext and
    the `kekong-grid` chunk, a watermark registered to the grid's summary, a C2PA manifest with the
    cells as ingredients. Returns its provenance record (as a recipe's `provenance`)."""
    sheet, record = marked(sheet, path, layers, {"grid": summary})
    chunk = {**summary, "provenance": record}
    pnginfo = {"parameters": infotext, GRID_KEY: json.dumps(chunk)} if layers.metadata else None
    encoded = encode_image(sheet, "PNG", pnginfo, name=str(path))
    if layers.c2pa:
        from kekong.provenance.credentials import Ingredient, sign_image

        ingredients = [Ingredient(f"grid cell {cell.name}", "componentOf", cell.read_bytes())
                       for cell in cells[:MAX_C2PA_CELLS]]
        assertion = {"layers": {"metadata": layers.metadata, "watermark": record["watermark"] != "off", "c2pa": True},
                     "watermark": record["watermark"], "grid": chunk if layers.metadata else None}
        encoded = sign_image(encoded, "image/png", title=path.name, edited=False, composite=True,
                             ingredients=ingredients, assertion=assertion)
    write_atomic(path, encoded)
    return record


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _csv(rows: list[dict[str, Any]], axes: list[Axis]) -> bytes:
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow(["file", "sha256", "seed", *(a.label for a in axes), "unit", "metric", "value"])
    for row in rows:
        scores = row["fidelity"] or [{"unit": "", "metric": "", "value": ""}]
        for score in scores:
            writer.writerow([row["file"], row["sha256"], row["seed"], *(row[a.label] for a in axes),
                             score.get("unit"), score.get("metric") or "", "" if score.get("value") is None
                             else score["value"]])
    return stream.getvalue().encode()


def _plot(rows: list[dict[str, Any]], axis: Axis) -> bytes | None:
    """Unit 0's fidelity against a numeric X axis (mean over the other axes), as a PNG."""
    if axis.type.kind is str or not any(row["fidelity"] for row in rows):
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    points: dict[float, list[float]] = {}
    metric = ""
    for row in rows:
        first = (row["fidelity"] or [{}])[0]
        if first.get("value") is not None:
            points.setdefault(float(row[axis.label]), []).append(first["value"])
            metric = first["metric"]
    if not points:
        return None
    xs = sorted(points)
    figure, plot = pyplot.subplots(figsize=(5, 3.2), dpi=100)
    plot.plot(xs, [sum(points[x]) / len(points[x]) for x in xs], marker="o")
    plot.set_xlabel(axis.label)
    plot.set_ylabel(f"unit 0 {metric}")
    plot.grid(alpha=0.3)
    figure.tight_layout()
    stream = io.BytesIO()
    figure.savefig(stream, format="png")
    pyplot.close(figure)
    return stream.getvalue()
