"""The X/Y plot panel: A1111's X/Y/Z plot axes (kekong.generation.grid: axis names, range syntax,
one seed for every cell) over the Generate tab's settings, queued as one grid job on the server
(the API's X/Y/Z plot): the stamped contact sheet, which names its cells, plus the cells in the
gallery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kekong.errors import KekongError
from kekong.generation import grid
from kekong.ui.gallery import caption

NOTHING = "Nothing"


def axis_names() -> list[str]:
    """A1111's axis labels as kekong.generation.grid declares them (unit 0's ControlNet axes)."""
    return [axis.name for axis in grid.AXIS_TYPES.values() if axis is not grid.NOTHING]


def axes(x_type: str, x_values: str, y_type: str, y_values: str) -> list[grid.Axis]:
    """The panel's axes, parsed by the grid's own parser (`TYPE:VALUES`); Y is optional."""
    from kekong.errors import ParameterError

    if not x_type or x_type == NOTHING or not (x_values or "").strip():
        raise ParameterError("X/Y plot: pick an X axis type and give its values (e.g. Steps: 10-30 (+10))")
    found = [grid.parse_axis(f"{x_type}:{x_values}")]
    if y_type and y_type != NOTHING and (y_values or "").strip():
        found.append(grid.parse_axis(f"{y_type}:{y_values}"))
    return found


def build(gr: Any) -> dict[str, Any]:
    names = axis_names()
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["x_type"] = gr.Dropdown(names, value="Prompt S/R", label="X type", elem_id="grid-x-type")
        parts["x_values"] = gr.Textbox(label="X values", placeholder="red, blue, green", elem_id="grid-x-values")
    with gr.Row():
        parts["y_type"] = gr.Dropdown([NOTHING, *names], value=NOTHING, label="Y type", elem_id="grid-y-type")
        parts["y_values"] = gr.Textbox(label="Y values", placeholder="1-3 or 0.5-1.5 [3]", elem_id="grid-y-values")
    parts["run"] = gr.Button("Run X/Y plot", elem_id="grid-run")
    parts["sheet"] = gr.Image(label="X/Y plot", interactive=False, type="filepath", elem_id="grid-sheet")
    return parts


def run(ui: Any, parts: dict[str, Any], data: dict[Any, Any]) -> Iterator[tuple[Any, str, Any]]:
    """Plan every cell (all validated first), queue the grid as one job, stream its progress,
    then show the stamped sheet and the cells; yields (sheet, status, gallery)."""
    import gradio as gr

    try:
        chosen = axes(*(data.get(parts[k]) for k in ("x_type", "x_values", "y_type", "y_values")))
        spec = grid.GridSpec([grid.axis_text(axis) for axis in chosen], lone_images=True)
        job, _ = ui.services.submit(ui.collect(data), "ui", grid=spec)
    except KekongError as error:
        raise gr.Error(str(error)) from None
    finished = ui.services.worker.finished_event(job.id)
    while not finished.wait(0.3):
        running = ui.services.worker.running_job(job.id)
        mine = running is not None
        yield gr.skip(), f"step {running.step} / {running.total}" if mine else "queued", gr.skip()
    job = ui.services.store.get(job.id)
    if job.status != "done":
        raise gr.Error(f"{job.status}: {job.error}")
    sheets = [item for item in job.result["images"] if item.get("sheet")]
    cells = [item for item in job.result["images"] if not item.get("sheet")]
    gallery = []
    for item in cells:
        where = ", ".join(f"{name} {value}" for name, value in _values(job.result["grid"], item))
        gallery.append((str(ui.services.file(job, item["file"])), f"{where} · {caption(item)}"))
    yield str(ui.services.file(job, sheets[0]["file"])), f"done: {len(cells)} cells", gallery


def _values(summary: dict[str, Any], item: dict[str, Any]) -> list[tuple[str, Any]]:
    """A cell's value on each axis, from the grid's summary (its row is the cell's file)."""
    row = next(r for r in summary["cells"] if r["file"] == item["file"])
    return [(axis["name"], row[axis["name"]]) for axis in summary["axes"]]


def wire(ui: Any, gr: Any) -> None:
    parts = ui.grid
    results = ui.results_parts
    inputs = {*ui.inputs(), *(parts[k] for k in ("x_type", "x_values", "y_type", "y_values"))}

    def plot(data: dict[Any, Any]) -> Iterator[tuple[Any, str, Any]]:
        yield from run(ui, parts, data)

    parts["run"].click(plot, inputs, [parts["sheet"], results["status"], results["gallery"]])
