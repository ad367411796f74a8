"""Writing an X/Y/Z grid: each cell stamped as any kekong image (infotext, recipe, watermark, C2PA),
the contact sheet carrying the first cell's infotext (as A1111's grid does) and a `kekong-grid`
chunk naming every cell by file and sha256, a `grid.json` + `grid.csv` of every cell's parameters
and fidelity scores, and for a numeric X axis a plot of the scores against it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from kekong.generation.grid import Axis, Cell
from kekong.generation.grid_sheet import contact_sheet, label
from kekong.io import encode_image, write_atomic
from kekong.provenance.stamp import Layers, describe, stamp


def cell_name(cell: Cell) -> str:
    return "cell-" + "-".join(str(i) for i in cell.position)


def write_grid(cells: list[Cell], results: list[Any], axes: list[Axis], out_dir: Path,
               layers: Layers | None = None) -> dict[str, Any]:
    """Write the grid into `out_dir`; returns its summary (also grid.json)."""
    layers = layers or Layers()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for cell, generated in zip(cells, results, strict=True):
        path = stamp(generated, out_dir / f"{cell_name(cell)}.png", layers=layers)
        rows.append({"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "position": list(cell.position), "seed": generated.seed,
                     **{axis.label: _plain(value) for axis, value in zip(axes, cell.values, strict=True)},
                     "fidelity": generated.fidelity})
    shape = tuple(len(a.values) for a in axes) + (1,) * (3 - len(axes))
    labels = [[label(axis, v) for v in axis.values] for axis in axes] + [[]] * (3 - len(axes))
    sheet = contact_sheet([g.image for g in results], shape, labels[0], labels[1],
                          [f"{axes[2].label}: {v}" for v in labels[2]], [a.label for a in axes[:2]])
    summary = {"axes": [{"name": a.label, "values": [_plain(v) for v in a.values]} for a in axes],
               "cells": rows, "sheet": "grid.png"}
    infotext, _ = describe(results[0])
    pnginfo = {"parameters": infotext, "kekong-grid": json.dumps(summary)} if layers.metadata else None
    write_atomic(out_dir / "grid.png", encode_image(sheet, "PNG", pnginfo))
    write_atomic(out_dir / "grid.json", json.dumps(summary, indent=1).encode())
    write_atomic(out_dir / "grid.csv", _csv(rows, axes))
    plot = _plot(rows, axes[0])
    if plot is not None:
        write_atomic(out_dir / "fidelity.png", plot)
        summary["plot"] = "fidelity.png"
    return summary


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
