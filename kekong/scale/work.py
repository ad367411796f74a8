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


def run_task(task: Task, threads: int | None = None) -> dict[str, Any]:
    """A summary entry: status done (outputs, seeds, fidelity) or failed (error); never raises
    for a bad request or input."""
    started = time.perf_counter()
    try:
        entry = _generate(task, threads)
    except KekongError as error:
        entry = {"status": "failed", "error": str(error)}
    except Exception as error:  # a bug in one line must not end the batch
        log.error("line %d failed:\n%s", task.line, traceback.format_exc())
        entry = {"status": "failed", "error": f"internal error: {type(error).__name__}: {error}"}
    return {"line": task.line, "recipe_hash": task.recipe_hash, **entry,
            "seconds": round(time.perf_counter() - started, 3), "attempts": task.attempts + 1}


def _generate(task: Task, threads: int | None) -> dict[str, Any]:
    import torch

    from kekong.generation.pipeline import generate
    from kekong.provenance.stamp import Layers, stamp
    from kekong.request import build_request

    if threads:
        torch.set_num_threads(threads)
    request = build_request(**task.fields)
    results = generate(request)
    if len(results) != len(task.outputs):
        raise KekongError(f"made {len(results)} images, expected {len(task.outputs)}")
    fidelity = []
    for generated, out in zip(results, task.outputs, strict=True):
        if task.score and generated.units:
            from kekong.fidelity import score_generated

            generated.fidelity = score_generated(generated)  # recorded in the recipe too
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        stamp(generated, out, layers=Layers(**task.layers))  # an atomic write: a file there is whole
        fidelity.append(generated.fidelity)
    return {"status": "done", "outputs": [Path(out).name for out in task.outputs],
            "seeds": [generated.seed for generated in results],
            "fidelity": fidelity if any(fidelity) else None}


class PipelineWorker:
    """A worker holding its loaded pipelines (the model cache of its process); Ray runs one per
    actor. It keeps which models it ran, for affinity checks and the summary."""

    def __init__(self, name: str, threads: int | None = None) -> None:
        from kekong.models.load import quiet_loading

        quiet_loading()
        self.name = name
        self.threads = threads
        self.models: dict[str, int] = {}  # model → lines run with it
        self.loaded: list[str] = []  # models in the order this worker first loaded them

    def run(self, task: Task | dict[str, Any]) -> dict[str, Any]:
        task = task if isinstance(task, Task) else Task(**task)
        if task.model not in self.models:
            self.loaded.append(task.model)
        self.models[task.model] = self.models.get(task.model, 0) + 1
        return {**run_task(task, self.threads), "worker": self.name}

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "pid": os.getpid(), "models": dict(self.models), "loaded": list(self.loaded)}
