"""The X/Y plot panel: A1111's X/Y/Z plot axes (kekong.generation.grid: axis names, range syntax,
one seed for every cell) over the Generate tab's settings; each cell is a job on the server's
queue, and the cells come back as one labelled contact sheet plus the gallery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kekong.errors import KekongError
from kekong.generation import grid
from kekong.ui.gallery import caption

NOTHING = "Nothing"


def axis_names() -> list[str]:
    """A1111's axis labels as kekong.generation.grid declares them (unit 0's ControlNet axes)."""
    return [axis.name for axis in grid.AXIS_TYPES.values()]


def axes(x_type: str, x_values: str, y_type: str, y_values: str) -> list[grid.Axis]:
    """The panel's axes, parsed by the grid's own parser (`TYPE:VALUES`); Y is optional."""
    from kekong.errors import ParameterError

    if not x_type or x_type == NOTHING or not (x_values or "").strip():
        raise ParameterError("X/Y plot: pick an X axis type and give its values (e.g. Steps: 10-30 (+10))")
    found = [grid.parse_axis(f"{x_type}:{x_values}")]
    if y_type and y_type != NOTHING and (y_values or "").strip():
        found.append(grid.parse_axis(f"{y_type}:{y_values}"))
    return found


def cell_fields(cell: grid.Cell) -> dict[str, Any]:
    """A cell's request as job fields: only what was set, one image per cell."""
    return {**cell.request.model_dump(mode="json", exclude_unset=True), "batch_size": 1, "batch_count": 1}


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
    parts["sheet"] = gr.Image(label="X/Y plot", interactive=False, type="numpy", elem_id="grid-sheet")
    return parts


def run(ui: Any, parts: dict[str, Any], data: dict[Any, Any]) -> Iterator[tuple[Any, str, Any]]:
    """Plan every cell (all validated first), queue them one by one, then show the sheet; yields
    (sheet, status, gallery)."""
    import gradio as gr

    from kekong.generation.grid_sheet import contact_sheet, label
    from kekong.io import load_image

    try:
        chosen = axes(*(data.get(parts[k]) for k in ("x_type", "x_values", "y_type", "y_values")))
        cells = grid.plan(ui.collect(data), chosen)
    except KekongError as error:
        raise gr.Error(str(error)) from None
    images, gallery = [], []
    for index, cell in enumerate(cells):
        for _, status, job in ui.run_job(cell_fields(cell)):
            if job is None:
                yield gr.skip(), f"cell {index + 1} / {len(cells)}: {status}", gr.skip()
                continue
            item = job.result["images"][0]
            path = str(ui.services.file(job, item["file"]))
            images.append(load_image(path))
            where = ", ".join(f"{a.label} {label(a, v)}" for a, v in zip(chosen, cell.values, strict=True))
            gallery.append((path, f"{where} · {caption(item)}"))
    shape = (*(len(a.values) for a in chosen), *(1,) * (3 - len(chosen)))
    labels = [[label(a, v) for v in a.values] for a in chosen] + [[]]
    sheet = contact_sheet(images, shape, labels[0], labels[1], (), [a.label for a in chosen])
    yield sheet, f"done: {len(cells)} cells", gallery


def wire(ui: Any, gr: Any) -> None:
    parts = ui.grid
    results = ui.results_parts
    inputs = {*ui.inputs(), *(parts[k] for k in ("x_type", "x_values", "y_type", "y_values"))}

    def plot(data: dict[Any, Any]) -> Iterator[tuple[Any, str, Any]]:
        yield from run(ui, parts, data)

    parts["run"].click(plot, inputs, [parts["sheet"], results["status"], results["gallery"]])
