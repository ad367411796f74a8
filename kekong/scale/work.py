"""One manifest line run to its files: generate, score, stamp. The same code runs in the batch's own
process and inside each Ray actor (`PipelineWorker`), so a line's output does not depend on where
it ran (given the same torch thread count, which the recipe records).

A task is plain data (JSON-able), so it crosses to an actor as it is: the request fields with
inputs as absolute paths (or `data:` URIs), and the output paths. Paths are read where the actor
runs: on a cluster the manifest's images, the models and the output folder must be on a path every
node has (a shared file system)."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kekong.errors import KekongError

log = logging.getLogger(__name__)


@dataclass
class Task:
    line: int
    fields: dict[str, Any]
    outputs: list[str]  # one path per image, in order
    recipe_hash: str
    model: str  # what must be loaded (model affinity)
    layers: dict[str, bool] = field(default_factory=dict)
    score: bool = True
    attempts: int = 0  # earlier tries lost with their worker
    kind: str = "image"  # image: each output stamped (batch lines, grid cells); frame: saved as made (video)
    keep: bool = False  # the entry carries each image as grid_record.CellImage (a grid's sheet is drawn from them)
    recipe: str | None = None  # frame: write the frame's recipe JSON here (a video's frame 0)
    sidecar: bool = False  # image: the recipe JSON beside each (generate --save-recipe)


def run_task(task: Task, threads: int | None = None, on_step: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A summary entry: status done (outputs, seeds, fidelity) or failed (error); never raises
    for a bad request or input. `on_step`: called after each denoising step (a progress bar)."""
    started = time.perf_counter()
    try:
        entry = _generate(task, threads, on_step)
    except KekongError as error:
        entry = {"status": "failed", "error": str(error)}
    except Exception as error:  # a bug in one line must not end the batch
        log.error("line %d failed:\n%s", task.line, traceback.format_exc())
        entry = {"status": "failed", "error": f"internal error: {type(error).__name__}: {error}"}
    return {"line": task.line, "recipe_hash": task.recipe_hash, **entry,
            "seconds": round(time.perf_counter() - started, 3), "attempts": task.attempts + 1}


def _generate(task: Task, threads: int | None, on_step: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    import torch

    from kekong.generation.pipeline import generate
    from kekong.provenance.stamp import Layers, stamp
    from kekong.request import build_request

    if threads:
        torch.set_num_threads(threads)
    request = build_request(**task.fields)
    results = generate(request, on_step=on_step)
    if len(results) != len(task.outputs):
        raise KekongError(f"made {len(results)} images, expected {len(task.outputs)}")
    if task.kind == "frame":
        return _frame(task, results)
    fidelity, kept = [], []
    for generated, out in zip(results, task.outputs, strict=True):
        if task.score and generated.units:
            from kekong.fidelity import score_generated

            generated.fidelity = score_generated(generated)  # recorded in the recipe too
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if task.keep:
            from kekong.provenance.grid_record import stamp_cell

            kept.append(stamp_cell(generated, Path(out), Layers(**task.layers)))
        else:
            # an atomic write: a file there is whole
            stamp(generated, out, recipe_sidecar=task.sidecar, layers=Layers(**task.layers))
        fidelity.append(generated.fidelity)
    entry = {"status": "done", "outputs": [Path(out).name for out in task.outputs],
             "seeds": [generated.seed for generated in results], "fidelity": fidelity if any(fidelity) else None}
    return {**entry, "kept": kept} if task.keep else entry


def _frame(task: Task, results: list[Any]) -> dict[str, Any]:
    """A video frame: the image saved as made (the video's writer marks the frames), and for the
    first frame the recipe beside, as `kekong.video.run` writes them."""
    import json

    from kekong.io import save_image, write_atomic

    [generated] = results
    if task.recipe:
        from kekong.provenance.recipe import build_recipe

        write_atomic(Path(task.recipe), json.dumps(build_recipe(generated)).encode())
    save_image(generated.image, Path(task.outputs[0]))
    return {"status": "done", "outputs": [Path(task.outputs[0]).name], "seeds": [generated.seed], "fidelity": None}


class PipelineWorker:
    """A worker holding its loaded pipelines (the model cache of its process); Ray runs one per
    actor. It keeps which models it ran, for affinity checks and the summary."""

    def __init__(self, name: str, threads: int | None = None, gpus: float = 0.0) -> None:
        from kekong.models.load import quiet_loading
        from kekong.scale.placement import place

        quiet_loading()
        self.name = name
        self.threads = threads
        self.device = place(gpus)  # the CUDA device Ray assigned this actor, or cpu
        self.models: dict[str, int] = {}  # model → lines run with it
        self.loaded: list[str] = []  # models in the order this worker first loaded them

    def run(self, task: Task | dict[str, Any]) -> dict[str, Any]:
        task = task if isinstance(task, Task) else Task(**task)
        if task.model not in self.models:
            self.loaded.append(task.model)
        self.models[task.model] = self.models.get(task.model, 0) + 1
        return {**run_task(task, self.threads), "worker": self.name}

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "pid": os.getpid(), "device": self.device, "models": dict(self.models),
                "loaded": list(self.loaded)}
