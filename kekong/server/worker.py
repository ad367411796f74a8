"""The worker: one thread that takes queued jobs in order, runs them through the core and files
their results. Progress and the latest step's latents stay in memory for `/progress` and the UI.
Whoever waits for a job subscribes to its end (`when_finished`); the worker calls them when it
files the result, so nobody polls.

`slots` jobs run at once (1 here; `kekong serve --ray` has one per Ray actor, each job in a thread
of its own): the worker claims a job only while a slot is free, so the rest wait, durable, in the
store's queue (back-pressure). A `shared` store is one that other processes' workers also take jobs
from (Ray Serve replicas, kekong.server.ray_serve): a waiter there is also told of jobs they finish.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kekong.errors import KekongError
from kekong.server.status import JobStatus
from kekong.server.store import Job, JobStore

log = logging.getLogger("kekong.server")


@dataclass
class Running:
    """What the worker is doing now."""

    job_id: str
    model: str | None = None  # the base model's reference (previews decode in its latent space)
    vae: str | None = None  # the request's VAE ("Full" previews decode with it)
    step: int = 0
    total: int = 0
    started: float = 0.0
    latents: Any = None  # the latest step's latents (a preview is decoded only when asked for)
    last_write: float = 0.0  # when its progress was last written to the store
    cancel: bool = False  # DELETE /v1/jobs/{id}: stop and keep nothing
    stop: Any = None  # a generation.loop.Stop: end the batch now and keep it (A1111's skip / interrupt)
    stopped: list[str] | None = None  # the Stops the generation obeyed, in order ("skip", "interrupt")


# (job, request, out_dir, on_step); on_step answers False (cancel), a generation.loop.Stop, or True
Execute = Callable[[Job, Any, Path, Callable[[Any], Any]], dict[str, Any]]


class Worker:
    def __init__(self, store: JobStore, progress_interval: float = 0.25, execute: Execute | None = None,
                 slots: int = 1, shared: bool = False) -> None:
        self.store = store
        self.shared = shared  # other processes run jobs of this store too (Ray Serve replicas): waits also poll it
        self.progress_interval = progress_interval
        self.execute: Execute = execute or run_generation
        self.slots = max(1, slots)
        self.runs: dict[str, Running] = {}  # job id → what runs, oldest first
        self._threads: list[threading.Thread] = []
        self._wake = threading.Condition()
        # held from claiming a job in the store until it is in self.runs: a cancel in between would
        # find it neither queued nor running
        self._claiming = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._waiters: dict[str, list[Callable[[], None]]] = {}  # job id → called once it has finished
        self._waiters_lock = threading.Lock()

    @property
    def running(self) -> Running | None:
        """The job that has run longest (A1111's one current job), or None when idle."""
        return next(iter(list(self.runs.values())), None)

    def running_job(self, job_id: str) -> Running | None:
        """What runs for this job, or None when it does not run now."""
        return self.runs.get(job_id)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kekong-worker", daemon=True)
        self._thread.start()
        if self.shared:
            threading.Thread(target=self._watch, name="kekong-watch", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stop = True
            for running in list(self.runs.values()):
                running.cancel = True
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in [self._thread, *self._threads]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def notify(self) -> None:
        """A job was queued."""
        with self._wake:
            self._wake.notify_all()

    def when_finished(self, job_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once the job has finished (from the worker's thread; at once when it
        already has, or there is no such job). Returns what undoes the subscription."""
        with self._waiters_lock:
            self._waiters.setdefault(job_id, []).append(callback)
        job = self.store.get(job_id)  # after subscribing: a job that ends meanwhile is seen either way
        if job is None or job.status.finished:
            self._signal(job_id)
        return lambda: self._unsubscribe(job_id, callback)

    def finished_event(self, job_id: str) -> threading.Event:
        """An event set once the job has finished."""
        event = threading.Event()
        self.when_finished(job_id, event.set)
        return event

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it has already finished."""
        with self._claiming:
            cancelled = self.store.cancel_queued(job_id)
            running = self.runs.get(job_id)
        if cancelled:
            self._signal(job_id)
            return True
        if running is not None:
            running.cancel = True
            return True
        return False

    def interrupt(self) -> str | None:
        """A1111's /interrupt: the running job stops at its next step and keeps what it has made
        (the batch under way decoded as it is, no further batch); its id, or None when idle."""
        running = self.running
        if running is None:
            return None
        from kekong.generation.loop import Stop  # loaded already: a job runs

        running.stop = Stop.ALL
        return running.job_id

    def skip(self) -> str | None:
        """A1111's /skip: the batch under way ends at its next step, kept as it is, and the job
        goes on with its next batch; the job's id, or None when idle."""
        running = self.running
        if running is None:
            return None
        from kekong.generation.loop import Stop  # loaded already: a job runs

        if running.stop is None:
            running.stop = Stop.BATCH
        return running.job_id

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stop:
                    return
                if len(self.runs) >= self.slots:  # every slot busy: the queue waits in the store
                    self._wake.wait(timeout=1.0)
                    continue
            with self._claiming:
                job = self.store.claim_next()
                if job is not None:
                    running = Running(job.id, model=job.payload["request"].get("model"),
                                      vae=job.payload["request"].get("vae"), total=job.total,
                                      started=time.time(), stopped=[])
                    self.runs[job.id] = running
            if job is None:
                with self._wake:
                    if not self._stop:
                        self._wake.wait(timeout=1.0)
                continue
            if self.slots == 1:
                self._run(job, running)
                continue
            thread = threading.Thread(target=self._run, args=(job, running), name=f"kekong-job-{job.id}",
                                      daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _run(self, job: Job, running: Running) -> None:
        from kekong.generation.loop import Cancelled
        from kekong.request import build_request

        names: dict[str, str] = {}  # blob path → the fields it is (a message names those, not the path)
        try:
            fields, names = self.store.request_fields(job)
            request = build_request(**fields)  # the stored request, read back once
            result = self.execute(job, request, self.store.output_dir(job.id),
                                  lambda info: self._on_step(running, info))
            if running.stopped:
                result = {**result, "stopped": running.stopped}  # some images are partial
            self.store.finish(job.id, JobStatus.DONE, result=result)
        except Cancelled:
            self.store.finish(job.id, JobStatus.CANCELLED, error="cancelled while running")
        except KekongError as error:
            self.store.finish(job.id, JobStatus.FAILED, error=self.store.blobs.scrub(str(error), names))
        except Exception as error:  # a bug: keep serving, record what happened
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            detail = self.store.blobs.scrub(f"{type(error).__name__}: {error}", names)
            self.store.finish(job.id, JobStatus.FAILED, error=f"internal error: {detail}")
        finally:
            with self._wake:
                self.runs.pop(job.id, None)
                self._wake.notify_all()  # a slot is free
            self._signal(job.id)

    def _on_step(self, running: Running, info: Any) -> Any:
        running.step += 1
        running.latents = info.shown  # the predicted clean latents where the sampler gives them (A1111)
        now = time.time()
        if now - running.last_write >= self.progress_interval or running.step == running.total:
            running.last_write = now
            self.store.progress(running.job_id, running.step, running.total)
        if running.cancel:
            return False
        stop = running.stop
        if stop is not None:
            running.stopped = [*(running.stopped or []), stop.value]
            if stop.value == "skip":
                running.stop = None  # one batch only
            return stop
        return True

    def _watch(self, period: float = 0.5) -> None:
        """A shared store: a job another process finishes is not signalled here, so whoever waits
        for one learns it from the store (every `period` seconds)."""
        while True:
            with self._wake:
                if self._stop:
                    return
            for job_id in list(self._waiters):
                job = self.store.get(job_id)
                if job is None or job.status.finished:
                    self._signal(job_id)
            time.sleep(period)

    def _signal(self, job_id: str) -> None:
        """The job has finished: call (and forget) whoever waits for it."""
        with self._waiters_lock:
            callbacks = self._waiters.pop(job_id, [])
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one waiter's failure must not stop the worker or the others
                log.exception("a waiter for job %s failed", job_id)

    def _unsubscribe(self, job_id: str, callback: Callable[[], None]) -> None:
        with self._waiters_lock:
            callbacks = self._waiters.get(job_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._waiters.pop(job_id, None)


def run_generation(job: Job, request: Any, out_dir: Path, on_step: Callable[[Any], Any]) -> dict[str, Any]:
    """Generate a job's images from its request, stamp each into `out_dir`, and describe them."""
    from kekong.generation.pipeline import generate
    from kekong.io import save_image
    from kekong.provenance.stamp import Layers, describe, stamp

    answer = job.payload.get("answer", {})
    if job.kind == "video":  # video to video: the frames into the job's folder, then the MP4
        from kekong.server.video_run import run_video_job

        return run_video_job(job, request, out_dir, on_step)
    if answer.get("local"):  # `kekong generate` through this server: the CLI stamps what comes back
        from kekong.server.local_run import run_local

        return run_local(request, out_dir, on_step, answer)
    if answer.get("grid"):  # A1111's X/Y/Z plot: one job, a cell at a time
        from kekong.server.grid_job import run_grid

        return run_grid(request, out_dir, on_step, answer)
    layers = Layers(**answer.get("layers", {}))
    from kekong.detect.polarity import collected_warnings

    with collected_warnings() as warnings:  # e.g. a ready map of the wrong polarity
        results = generate(request, on_step=on_step)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for generated in results:
        if answer.get("score", True) and generated.units:
            from kekong.fidelity import score_generated

            generated.fidelity = score_generated(generated)  # in the recipe and in the answer
        path = stamp(generated, out_dir / f"{generated.index}.png", layers=layers)
        infotext, _ = describe(generated)
        images.append({"file": path.name, "seed": generated.seed, "subseed": generated.subseed,
                       "prompt": generated.prompt_used, "negative_prompt": generated.negative_used,
                       "infotext": infotext, "width": int(generated.image.shape[1]),
                       "height": int(generated.image.shape[0]), "fidelity": generated.fidelity})
    maps = []
    if results and answer.get("send_maps", True):
        for unit in results[0].units:
            if unit.detected is not None and unit.detected.dtype.name == "uint8" and unit.unit.module != "none":
                if not answer.get("unit_maps", {}).get(str(unit.index), True):
                    continue
                path = save_image(unit.detected, out_dir / f"map-{unit.index}.png")
                maps.append({"file": path.name, "unit": unit.index, "module": unit.unit.module})
    first = results[0] if results else None
    return {"images": images, "maps": maps, "warnings": warnings,
            "request": (first.request if first else request).model_dump(
                mode="json", exclude={"init_image": True, "mask": True, "controls": True, "repose": {"image"}}),
            "model": {"name": first.base.name, "hash": first.base.hash} if first else None,
            "vae": first.vae.name if first is not None and first.vae is not None else None}
