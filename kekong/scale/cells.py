"""An X/Y/Z grid's cells through the batch path (`kekong grid --ray`): each cell a `work.Task` run
by an executor — this process or the Ray actor pool, model affinity included (a `Checkpoint name`
axis sends each model's cells to the actors holding it). Each cell is generated, scored and
stamped where it runs, into the grid's folder under the name the grid writer gives it, and comes
back as a `grid_record.CellImage`; the sheet and grid.json are then written here, as for a grid
made in one process (the same bytes, given the same torch thread count)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kekong.errors import KekongError
from kekong.generation.grid import Cell
from kekong.provenance.grid_record import CellImage, cell_name
from kekong.provenance.stamp import Layers
from kekong.scale.run import Executor
from kekong.scale.work import Task


def cell_tasks(cells: list[Cell], folder: Path, layers: Layers, score: bool = True) -> list[Task]:
    """One task per cell (numbered from 1 in the grid's order), its first image only, as the grid runs it."""
    from kekong.models.refs import DEFAULT_BASE

    tasks = []
    for number, cell in enumerate(cells, start=1):
        request = cell.request.model_copy(update={"batch_size": 1, "batch_count": 1})
        fields = request.model_dump(mode="json", exclude_unset=True)  # unset: the model's recommendation applies
        tasks.append(Task(number, fields, [str(folder / f"{cell_name(cell)}.png")], "",
                          request.model or DEFAULT_BASE, asdict(layers), score, keep=True))
    return tasks


def run_cells(cells: list[Cell], executor: Executor, folder: Path, layers: Layers, score: bool = True,
              progress: Callable[[dict[str, Any]], None] | None = None) -> list[CellImage]:
    """Every cell made by `executor`, in the grid's order; a cell that fails fails the grid, named."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[int, CellImage] = {}
    failed: list[str] = []

    def done(entry: dict[str, Any]) -> None:
        if entry["status"] == "done":
            made[entry["line"]] = entry["kept"][0]
        else:
            cell = cells[entry["line"] - 1]
            failed.append(f"grid cell {cell_name(cell)}: {entry.get('error')}")
        if progress is not None:
            progress(entry)

    executor.run(cell_tasks(cells, folder, layers, score), done)
    if failed:
        raise KekongError("; ".join(failed))
    return [made[number] for number in range(1, len(cells) + 1)]
