"""The worker: one thread that takes queued jobs in order, runs them through the core and files
their results. Progress and the latest step's latents stay in memory for `/progress` and the UI.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kekong.errors import KekongError
from kekong.server.store import CANCELLED, DONE, FAILED, Job, JobStore

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
    cancel: bool = False


class Worker:
    def __init__(self, store: JobStore, progress_interval: float = 0.25) -> None:
        self.store = store
        self.progress_interval = progress_interval
        self.running: Running | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._finished: dict[str, threading.Event] = {}
        self._last_write = 0.0  # when progress was last written to the store

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kekong-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stop = True
            if self.running is not None:
                self.running.cancel = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """A job was queued."""
        with self._wake:
            self._wake.notify_all()

    def finished_event(self, job_id: str) -> threading.Event:
        event = self._finished.setdefault(job_id, threading.Event())
        job = self.store.get(job_id)
        if job is not None and job.status not in ("queued", "running"):
            event.set()
        return event

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False when it has already finished."""
        if self.store.cancel_queued(job_id):
            self._signal(job_id)
            return True
        running = self.running
        if running is not None and running.job_id == job_id:
            running.cancel = True
            return True
        return False

    def interrupt(self) -> str | None:
        """Cancel whatever runs now (A1111's /interrupt); its id, or None when idle."""
        running = self.running
        if running is None:
            return None
        running.cancel = True
        return running.job_id

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._stop:
                    return
            job = self.store.claim_next()
            if job is None:
                with self._wake:
                    if not self._stop:
                        self._wake.wait(timeout=1.0)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        from kekong.generation.loop import Cancelled

        self.running = Running(job.id, model=job.payload["request"].get("model"),
                               vae=job.payload["request"].get("vae"), total=job.total,
                               started=time.time())
        try:
            result = execute(job, self.store.output_dir(job.id), self._on_step)
            self.store.finish(job.id, DONE, result=result)
        except Cancelled:
            self.store.finish(job.id, CANCELLED, error="cancelled while running")
        except KekongError as error:
            self.store.finish(job.id, FAILED, error=str(error))
        except Exception as error:  # a bug: keep serving, record what happened
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self.store.finish(job.id, FAILED, error=f"internal error: {type(error).__name__}: {error}")
        finally:
            self.running = None
            self._signal(job.id)

    def _on_step(self, info: Any) -> bool:
        running = self.running
        if running is None:
            return True
        running.step += 1
        running.latents = info.latents
        now = time.time()
        if now - self._last_write >= self.progress_interval or running.step == running.total:
            self._last_write = now
            self.store.progress(running.job_id, running.step, running.total)
        return not running.cancel

    def _signal(self, job_id: str) -> None:
        self._finished.setdefault(job_id, threading.Event()).set()


def execute(job: Job, out_dir: Path, on_step: Any) -> dict[str, Any]:
    """Generate a job's images, stamp each into `out_dir`, and describe them."""
    from kekong.generation.pipeline import generate
    from kekong.io import save_image
    from kekong.provenance.stamp import Layers, describe, stamp
    from kekong.request import build_request

    request = build_request(**job.payload["request"])
    answer = job.payload.get("answer", {})
    layers = Layers(**answer.get("layers", {}))
    results = generate(request, on_step=on_step)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for generated in results:
        path = stamp(generated, out_dir / f"{generated.index}.png", layers=layers)
        infotext, _ = describe(generated)
        images.append({"file": path.name, "seed": generated.seed, "subseed": generated.subseed,
                       "prompt": generated.prompt_used, "negative_prompt": generated.negative_used,
                       "infotext": infotext, "width": int(generated.image.shape[1]),
                       "height": int(generated.image.shape[0])})
    maps = []
    if results and answer.get("send_maps", True):
        for unit in results[0].units:
            if unit.detected is not None and unit.detected.dtype.name == "uint8" and unit.unit.module != "none":
                if not answer.get("unit_maps", {}).get(str(unit.index), True):
                    continue
                path = save_image(unit.detected, out_dir / f"map-{unit.index}.png")
                maps.append({"file": path.name, "unit": unit.index, "module": unit.unit.module})
    first = results[0] if results else None
    return {"images": images, "maps": maps,
            "request": (first.request if first else request).model_dump(
                mode="json", exclude={"init_image", "mask", "controls"}),
            "model": {"name": first.base.name, "hash": first.base.hash} if first else None,
            "vae": first.vae.name if first is not None and first.vae is not None else None}
