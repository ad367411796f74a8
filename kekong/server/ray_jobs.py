"""`kekong serve --ray`: the head keeps the API, auth and the SQLite job record; each job's
generation runs on a Ray actor that holds its loaded pipelines (`JobActor`).

`RayJobs` is the worker's `Execute`: it takes a free actor, runs the job there (the same
`run_generation` as without Ray, writing into the job's folder — on a cluster a path every node
has), and answers its result. An actor that dies mid-job (its process killed, its node lost) is
replaced and the job runs again on the new one: at least once, and with the seed fixed before the
first try, so the retry makes the same image. A job that loses `max_attempts` actors fails with
that reason. The head restarting is as without Ray: the store marks running jobs interrupted.

Not done: step progress and cancelling a running job do not reach the actor (the job's progress
jumps to done; a cancel takes effect when it finishes), and the head's one worker thread hands the
pool one job at a time."""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from kekong.errors import KekongError
from kekong.server.store import Job

log = logging.getLogger("kekong.server")


class JobActor:
    """What runs inside each actor: a job's generation in its own process (its model cache)."""

    def __init__(self, name: str, threads: int | None = None) -> None:
        from kekong.models.load import quiet_loading

        quiet_loading()
        self.name = name
        self.threads = threads

    def run(self, job: Job, fields: dict[str, Any], out_dir: str) -> dict[str, Any]:
        import torch

        from kekong.request import build_request
        from kekong.server.worker import run_generation

        if self.threads:
            torch.set_num_threads(self.threads)
        return run_generation(job, build_request(**fields), Path(out_dir), lambda info: True)

    def pid(self) -> int:
        import os

        return os.getpid()


class RayJobs:
    """An actor pool behind the worker's `execute`."""

    def __init__(self, address: str | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, max_attempts: int = 3) -> None:
        from kekong.scale.ray_pool import connect

        self.cpus, self.gpus, self.max_attempts = cpus_per_worker, gpus_per_worker, max_attempts
        self.started_ray = connect(address, workers * cpus_per_worker, workers * gpus_per_worker)
        self.lost = 0
        self._made = 0
        self._lock = threading.Lock()
        self.free: queue.Queue = queue.Queue()
        self.actors: dict[str, Any] = {}
        for _ in range(workers):
            self._add()

    def _add(self) -> None:
        from kekong.scale.ray_pool import import_ray

        ray = import_ray()
        with self._lock:
            self._made += 1
            name = f"w{self._made}"
        actor = ray.remote(JobActor).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0,
                                             max_task_retries=0).remote(name, max(1, int(self.cpus)))
        self.actors[name] = actor
        self.free.put(name)

    def __call__(self, job: Job, request: Any, out_dir: Path, on_step: Any) -> dict[str, Any]:
        from ray.exceptions import RayActorError, RayTaskError

        from kekong.generation.pipeline import resolve_seed
        from kekong.scale.ray_pool import import_ray

        ray = import_ray()
        fixed = {"seed": resolve_seed(request.seed)}  # a retry makes the same image
        if request.subseed_strength:
            fixed["subseed"] = resolve_seed(request.subseed)
        fields = request.model_copy(update=fixed).model_dump(mode="json")
        for attempt in range(1, self.max_attempts + 1):
            name = self.free.get()
            try:
                result = ray.get(self.actors[name].run.remote(job, fields, str(out_dir)))
            except RayTaskError as error:  # the job's own error (a bad input …), as without Ray
                self.free.put(name)
                cause = getattr(error, "cause", None)
                raise (cause if isinstance(cause, Exception) else error) from None
            except RayActorError as error:
                self.lost += 1
                log.warning("job %s: worker %s lost (%s), attempt %d of %d", job.id, name, type(error).__name__,
                            attempt, self.max_attempts)
                self.actors.pop(name, None)
                self._add()
                continue
            self.free.put(name)
            caught_up(job, on_step)
            return {**result, "ray": {"worker": name, "attempts": attempt}}
        raise KekongError(f"lost {self.max_attempts} Ray workers running this job")

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


def caught_up(job: Job, on_step: Any) -> None:
    """The steps the actor ran, told to the worker once the job is back (its progress reaches done);
    a cancel asked for meanwhile takes effect now: the job ends cancelled."""
    from types import SimpleNamespace

    from kekong.generation.loop import Cancelled

    for _ in range(job.total):
        if on_step(SimpleNamespace(shown=None)) is False:
            raise Cancelled
