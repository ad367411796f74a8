"""A batch's lines on a Ray actor pool: one actor per worker, each a `work.PipelineWorker` holding
its loaded pipelines, so a model loads once per actor, not once per line.

- **Where Ray runs.** `connect(None)` starts Ray inside this process (local, the embedded mode);
  `connect("auto")` joins the cluster this machine belongs to, `connect("ray://host:10001")` a
  remote one through Ray Client. A Ray already started by the caller (a test, a notebook) is used
  as it is and left running.
- **Model affinity.** A free actor takes the next line for the model it holds. An actor that holds
  none takes the model the fewest actors hold. An actor whose model has no lines left switches
  only when another model's backlog is more than its holders can run in one round — otherwise it
  waits, and no model is loaded twice for a line or two.
- **Back-pressure.** One line in flight per actor; the rest wait here, in the driver, so the
  object store and the actors' queues never hold more than `workers` lines.
- **A lost worker.** When an actor dies (its process killed, its node gone), its line goes back to
  the front of the queue and a new actor takes its place: at-least-once execution, each line
  recorded once (outputs are written atomically under a name fixed by the recipe, so a second run
  of a line writes the same bytes to the same file). A line that loses `max_attempts` workers is
  recorded failed.
- **Model files** are read by each actor from its own file system: a path every node has (shared
  storage, or the package's shipped model installed on every node). Nothing is sent through the
  object store but the tasks (request JSON) and the summary entries.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kekong.errors import KekongError, ParameterError
from kekong.scale.bounds import WorkerBounds
from kekong.scale.work import PipelineWorker, Task

log = logging.getLogger(__name__)

INSTALL = "Ray is not installed: pip install 'kekong[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise KekongError(INSTALL) from None
    return ray


def connect(address: str | None, cpus: float | None = None, gpus: float | None = None) -> bool:
    """Start or join Ray; True when this call started it (and should shut it down)."""
    # Ray's driver replaces builtins.print with its tqdm-aware one (process-wide, never undone) once a
    # worker's progress bar reaches it: not in a process that merely uses kekong.
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address not in (None, "", "local", "auto") and not address.startswith("ray://"):
        raise ParameterError(f"--ray {address!r}: expected nothing (a local Ray), auto, or ray://HOST:PORT")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                              # Ray starts workers 15 nice levels below itself; here the workers are the work
                              "_system_config": {"worker_niceness": 0}}
    if address in (None, "", "local"):
        kwargs["address"] = "local"  # a new Ray of our own, even where `ray start` runs one
        if cpus is not None:
            kwargs["num_cpus"] = max(1, math.ceil(cpus))
        if gpus:
            kwargs["num_gpus"] = math.ceil(gpus)
    else:
        kwargs = {"address": address, "logging_level": logging.WARNING}
    try:
        ray.init(**kwargs)
    except Exception as error:  # Ray's own connection errors are many kinds
        raise KekongError(f"--ray {address or '(local)'}: could not start or join Ray ({error})") from None
    return True


@dataclass
class Slot:
    """One actor and what the pool knows of it."""

    name: str
    handle: Any
    model: str | None = None  # the model it holds (the last it was given)
    task: Task | None = None  # in flight
    ref: Any = None


@dataclass
class RayPool:
    """Run tasks on `bounds.workers` actors (see the module's text)."""

    bounds: WorkerBounds = field(default_factory=WorkerBounds)
    max_attempts: int = 3
    address: str | None = None
    slots: list[Slot] = field(default_factory=list)
    lost: int = 0  # actors that died and were replaced
    _started_ray: bool = False
    _made: int = 0

    def __post_init__(self) -> None:
        self.bounds.check()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> RayPool:
        self._started_ray = connect(self.address, *self.bounds.totals())
        self.slots = [self._new_slot() for _ in range(self.bounds.workers)]
        return self

    def close(self) -> None:
        ray = import_ray()
        for slot in self.slots:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(slot.handle)
        self.slots = []
        if self._started_ray:
            ray.shutdown()

    def __enter__(self) -> RayPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_slot(self) -> Slot:
        ray = import_ray()
        self._made += 1
        name = f"w{self._made}"
        bounds = self.bounds
        actor = ray.remote(PipelineWorker).options(num_cpus=bounds.cpus_per_worker, num_gpus=bounds.gpus_per_worker,
                                                   max_restarts=0, max_task_retries=0)
        return Slot(name, actor.remote(name, bounds.threads, bounds.gpus_per_worker))

    # -- running ---------------------------------------------------------------------------
    def run(self, tasks: list[Task], done: Any) -> None:
        ray = import_ray()
        from ray.exceptions import RayActorError

        if not self.slots:
            self.start()
        queues: dict[str, deque[Task]] = {}
        for task in tasks:
            queues.setdefault(task.model, deque()).append(task)
        flying: dict[Any, Slot] = {}
        while any(queues.values()) or flying:
            for slot in self.slots:
                if slot.task is None:
                    task = self.pick(slot, queues)
                    if task is not None:
                        slot.task, slot.model = task, task.model
                        slot.ref = slot.handle.run.remote(task)
                        flying[slot.ref] = slot
            if not flying:  # nobody could take a line: cannot happen while an actor lives
                raise KekongError("the Ray pool has no worker left to run the batch")
            ready, _ = ray.wait(list(flying), num_returns=1)
            for ref in ready:
                slot = flying.pop(ref)
                task, slot.task, slot.ref = slot.task, None, None
                try:
                    done(ray.get(ref))
                except RayActorError as error:
                    self._replace(slot, task, queues, done, error)

    def _replace(self, slot: Slot, task: Task, queues: dict[str, deque[Task]], done: Any, error: Exception) -> None:
        self.lost += 1
        log.warning("worker %s lost while running line %d (%s); its line is queued again", slot.name, task.line,
                    type(error).__name__)
        index = self.slots.index(slot)
        self.slots[index] = self._new_slot()
        task.attempts += 1
        if task.attempts >= self.max_attempts:
            done({"line": task.line, "recipe_hash": task.recipe_hash, "status": "failed", "seconds": 0.0,
                  "attempts": task.attempts, "worker": slot.name,
                  "error": f"lost {task.attempts} workers running it (the last: {reason(error)})"})
        else:
            queues.setdefault(task.model, deque()).appendleft(task)

    def pick(self, slot: Slot, queues: dict[str, deque[Task]]) -> Task | None:
        """The next task for this free actor (model affinity), or None: it waits."""
        if slot.model is not None and queues.get(slot.model):
            return queues[slot.model].popleft()
        waiting = [model for model, queue in queues.items() if queue]
        if not waiting:
            return None
        holders = {model: sum(1 for s in self.slots if s.model == model and s is not slot) for model in waiting}
        if slot.model is None:
            model = min(waiting, key=lambda m: (holders[m], -len(queues[m])))
            return queues[model].popleft()
        behind = [m for m in waiting if len(queues[m]) > holders[m]]  # more than one round for its holders
        if not behind:
            return None
        model = max(behind, key=lambda m: len(queues[m]) / max(1, holders[m]))
        return queues[model].popleft()

    def stats(self) -> list[dict[str, Any]]:
        """Each live actor's record: name, pid, the models it ran (lines per model)."""
        ray = import_ray()
        return ray.get([slot.handle.stats.remote() for slot in self.slots])

    def busy(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.task is not None]


def reason(error: Exception) -> str:
    """The first line of why Ray says an actor died (a crash in its start names the exception)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0][:300] if lines else type(error).__name__)
