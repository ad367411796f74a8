"""`kekong serve --ray`: the head keeps the API, auth and the SQLite job record; each job's
generation runs on a Ray actor that holds its loaded pipelines (`JobActor`).

`RayJobs` is the worker's `Execute`. The worker runs as many jobs at once as there are actors
(`Worker(slots=workers)`, one thread per job) and claims no more: the rest wait in the store's
queue (back-pressure). Each job takes a free actor — one that ran the same model before when there
is one (model affinity) — and runs there (the same `run_generation` as without Ray, writing into
the job's folder: on a cluster a path every node has).

- **Progress and stopping.** The actor is threaded (`max_concurrency=2`), so while `run` works the
  head asks `poll` every `POLL_S`: the steps the job has made come back and are told to the worker
  (`/v1/jobs/{id}` and `/sdapi/v1/progress` move as for a local job), and what the worker answered
  — go on, cancel (DELETE), skip or interrupt — goes to the actor's next step.
- **A lost actor.** An actor that dies mid-job (its process killed, its node lost) is replaced and
  the job runs again on the new one: at least once, and with the seed fixed before the first try,
  so the retry makes the same image. Steps told once are not told again: progress waits until the
  retry passes them. A job that loses `max_attempts` actors fails with that reason. The head
  restarting is as without Ray: the store marks running jobs interrupted.
- Step previews (`current_image`) are not sent from the actor: a Ray job's preview is empty.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kekong.errors import KekongError
from kekong.scale.bounds import WorkerBounds
from kekong.server.store import Job

log = logging.getLogger("kekong.server")
POLL_S = 0.25  # how often the head asks a busy actor how far its job is


class JobActor:
    """What runs inside each actor: a job's generation in its own process (its model cache)."""

    def __init__(self, name: str, threads: int | None = None, gpus: float = 0.0) -> None:
        from kekong.models.load import quiet_loading
        from kekong.scale.placement import place

        quiet_loading()
        self.name = name
        self.threads = threads
        self.device = place(gpus)
        self.step = 0  # steps of the job under way
        self.answer: Any = True  # what its next step is told: True, False (cancel), "skip", "interrupt"

    def run(self, job: Job, fields: dict[str, Any], out_dir: str) -> dict[str, Any]:
        import torch

        from kekong.request import build_request
        from kekong.server.worker import run_generation

        if self.threads:
            torch.set_num_threads(self.threads)
        self.step, self.answer = 0, True
        return run_generation(job, build_request(**fields), Path(out_dir), self._on_step)

    def _on_step(self, info: Any) -> Any:
        from kekong.generation.loop import Stop

        self.step += 1
        answer = self.answer
        if answer in ("skip", "interrupt"):
            if answer == "skip":
                self.answer = True  # one batch only
            return Stop(answer)
        return answer

    def poll(self, answer: Any) -> int:
        """Steps made so far; `answer` is what the next step is told (the worker's latest word; a
        cancel is never taken back)."""
        if answer is not True and self.answer is not False:
            self.answer = answer
        return self.step

    def pid(self) -> int:
        import os

        return os.getpid()


class RayJobs:
    """An actor pool behind the worker's `execute`; `bounds.workers` jobs at once."""

    def __init__(self, address: str | None = None, bounds: WorkerBounds | None = None, max_attempts: int = 3) -> None:
        from kekong.scale.ray_pool import connect

        self.bounds = bounds or WorkerBounds()
        self.bounds.check()
        self.max_attempts = max_attempts
        self.started_ray = connect(address, *self.bounds.totals())
        self.lost = 0
        self._made = 0
        self._free = threading.Condition()
        self.idle: list[str] = []  # free actors, longest free first
        self.models: dict[str, str | None] = {}  # actor → the model it ran last
        self.actors: dict[str, Any] = {}
        for _ in range(self.bounds.workers):
            self._add()

    @property
    def slots(self) -> int:
        return self.bounds.workers

    def _add(self) -> None:
        from kekong.scale.ray_pool import import_ray

        ray = import_ray()
        bounds = self.bounds
        with self._free:
            self._made += 1
            name = f"w{self._made}"
        actor = ray.remote(JobActor).options(num_cpus=bounds.cpus_per_worker, num_gpus=bounds.gpus_per_worker,
                                             max_restarts=0, max_task_retries=0, max_concurrency=2)
        self.actors[name] = actor.remote(name, bounds.threads, bounds.gpus_per_worker)
        self._release(name, None)

    def _take(self, model: str | None) -> str:
        """A free actor, one that ran `model` last when there is one (its pipeline is loaded)."""
        with self._free:
            while not self.idle:
                self._free.wait()
            name = next((n for n in self.idle if self.models.get(n) == model), self.idle[0])
            self.idle.remove(name)
            return name

    def _release(self, name: str, model: str | None) -> None:
        with self._free:
            self.models[name] = model
            self.idle.append(name)
            self._free.notify()

    def __call__(self, job: Job, request: Any, out_dir: Path, on_step: Any) -> dict[str, Any]:
        from ray.exceptions import RayActorError, RayTaskError

        from kekong.generation.pipeline import resolve_seed
        from kekong.scale.ray_pool import import_ray

        ray = import_ray()
        fixed = {"seed": resolve_seed(request.seed)}  # a retry makes the same image
        if request.subseed_strength:
            fixed["subseed"] = resolve_seed(request.subseed)
        fields = request.model_copy(update=fixed).model_dump(mode="json")
        progress = Progress(on_step)
        for attempt in range(1, self.max_attempts + 1):
            name = self._take(request.model)
            try:
                result = self._run(ray, name, job, fields, out_dir, progress)
            except RayTaskError as error:  # the job's own error (a bad input, a cancel …), as without Ray
                self._release(name, request.model)
                cause = getattr(error, "cause", None)
                raise (cause if isinstance(cause, Exception) else error) from None
            except RayActorError as error:
                self.lost += 1
                log.warning("job %s: worker %s lost (%s), attempt %d of %d", job.id, name, type(error).__name__,
                            attempt, self.max_attempts)
                self.actors.pop(name, None)
                with self._free:
                    self.models.pop(name, None)
                self._add()
                continue
            self._release(name, request.model)
            progress.finish(job.total)
            return {**result, "ray": {"worker": name, "attempts": attempt}}
        raise KekongError(f"lost {self.max_attempts} Ray workers running this job")

    def _run(self, ray: Any, name: str, job: Job, fields: dict[str, Any], out_dir: Path,
             progress: Progress) -> dict[str, Any]:
        """Run on the actor, telling its steps to the worker and the worker's answers to the actor."""
        from ray.exceptions import GetTimeoutError, RayActorError

        actor = self.actors[name]
        done = actor.run.remote(job, fields, str(out_dir))
        while True:
            ready, _ = ray.wait([done], timeout=POLL_S)
            if ready:
                return ray.get(done)
            try:
                steps = ray.get(actor.poll.remote(progress.send()), timeout=30)
            except (RayActorError, GetTimeoutError):  # dead or stuck: `done` says which
                continue
            progress.reached(steps)

    def pids(self) -> dict[str, int]:
        from kekong.scale.ray_pool import import_ray

        ray = import_ray()
        return dict(zip(self.actors, ray.get([a.pid.remote() for a in self.actors.values()]), strict=True))

    def close(self) -> None:
        from kekong.scale.ray_pool import import_ray

        ray = import_ray()
        for actor in self.actors.values():
            ray.kill(actor)
        self.actors.clear()
        if self.started_ray:
            ray.shutdown()


class Progress:
    """A job's steps as the worker hears them: each step an actor reports is told once (a retry's
    steps only once it passes what was told), and the worker's latest answer kept for the actor."""

    def __init__(self, on_step: Any) -> None:
        self.on_step = on_step
        self.told = 0  # steps told to the worker (a retry's steps are told once it passes them)
        self.answer: Any = True  # True, False (cancel), "skip", "interrupt"

    def send(self) -> Any:
        """The answer for the actor: a skip is sent once (it ends one batch), a cancel and an
        interrupt stay."""
        answer = self.answer
        if answer == "skip":
            self.answer = True
        return answer

    def reached(self, steps: int) -> None:
        from kekong.generation.loop import Stop

        while self.told < steps:
            said = self.on_step(SimpleNamespace(shown=None))
            self.told += 1
            if said is False:
                self.answer = False
            elif isinstance(said, Stop) and self.answer is not False:
                self.answer = said.value  # "skip" or "interrupt", sent to the actor's next step

    def finish(self, total: int) -> None:
        """The job is back: its remaining steps told (progress reaches done); a cancel asked for
        meanwhile takes effect now, the job ends cancelled."""
        from kekong.generation.loop import Cancelled

        while self.told < total:
            self.told += 1
            if self.on_step(SimpleNamespace(shown=None)) is False:
                raise Cancelled
