"""What the API routes and the UI both call: queue a generation, wait for it, read results,
run a detector, list models. One place, so the two front ends cannot drift apart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kekong.declaration import spec
from kekong.errors import ParameterError
from kekong.server.config import ServerConfig
from kekong.server.store import Job, JobStore
from kekong.server.worker import Worker

log = logging.getLogger("kekong.server")
DISK_SWEEP_S = 30.0  # how often --max-disk-gb is checked

OPTION_DEFAULTS: dict[str, Any] = {"sd_model_checkpoint": "kekong-shapes", "sd_vae": "Automatic",
                                   "CLIP_stop_at_last_layers": spec("clip_skip").default,
                                   "randn_source": spec("rng").default,
                                   "eta_noise_seed_delta": spec("eta_noise_seed_delta").default,
                                   "samples_format": "png", "enable_pnginfo": True, "control_net_no_detectmap": False,
                                   "show_progress_type": "TAESD"}


@dataclass
class Services:
    config: ServerConfig
    store: JobStore
    worker: Worker
    options: dict[str, Any] = field(default_factory=lambda: dict(OPTION_DEFAULTS))
    _stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, config: ServerConfig) -> Services:
        store = JobStore(config.store_dir())
        if not config.shared_store:  # a replica's peers run jobs now: the deployment recovered the store at its start
            store.recover()
        execute, slots = None, 1
        if config.ray is not None:  # jobs handed to a Ray actor pool (kekong serve --ray), one per actor at once
            from kekong.server.ray_jobs import RayJobs

            execute = RayJobs(None if config.ray == "local" else config.ray, config.ray_pool)
            slots = execute.slots
        worker = Worker(store, execute=execute, slots=slots, shared=config.shared_store)
        services = cls(config, store, worker)
        services.options.update(services._saved_options())
        worker.start()
        if config.keep_jobs_hours is not None or config.max_disk_gb is not None:
            threading.Thread(target=services._sweeper, name="kekong-retention", daemon=True).start()
        return services

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()
        close = getattr(self.worker.execute, "close", None)  # a Ray pool's actors (and its Ray)
        if close is not None:
            close()

    def _sweeper(self) -> None:
        """Retention: --keep-jobs-hours every quarter of the age (between 0.5 s and 10 min) deletes
        the finished jobs older than it; --max-disk-gb (checked every DISK_SWEEP_S) the finished
        jobs that finished first until the store fits. Both with their files."""
        hours, gb = self.config.keep_jobs_hours, self.config.max_disk_gb
        keep_s = float(hours or 0) * 3600
        period = min(max(keep_s / 4, 0.5), 600) if hours is not None else DISK_SWEEP_S
        if gb is not None:
            period = min(period, DISK_SWEEP_S)
        while not self._stopping.wait(period):
            try:
                by_age = self.store.sweep(keep_s) if hours is not None else []
                by_size = self.store.sweep_disk(int(gb * 1e9)) if gb is not None else []
            except Exception:  # a locked or full disk must not end retention for good
                log.exception("retention sweep failed")
                continue
            if by_age:
                log.info("retention: deleted %d finished job(s) older than %g h", len(by_age), hours)
            if by_size:
                log.info("retention: deleted %d finished job(s) to keep the store under %g GB", len(by_size), gb)

    # -- generation ------------------------------------------------------------------------
    def submit(self, fields: dict[str, Any], kind: str, answer: dict[str, Any] | None = None,
               idempotency_key: str | None = None, grid: Any = None, owner: str | None = None) -> tuple[Job, bool]:
        """Validate (request model, server limits, model names) and queue; (job, created). `grid`
        (a generation.grid.GridSpec): an X/Y/Z plot, every cell validated the same way before it is queued.
        `owner`: the caller's key id (security.owner_of), for the queue's fair order."""
        from kekong.generation.pipeline import steps_per_batch
        from kekong.request import build_request

        request = build_request(**fields)
        self.config.limits.check(request)
        check_models(request)
        total = steps_per_batch(request) * request.batch_count
        answer = dict(answer or {})
        if grid is not None:
            from kekong.server.grid_job import plan_cells

            fields, grid, cells = plan_cells(fields, grid)  # A1111's fixed seeds drawn now: the job runs these
            request = build_request(**fields)
            for cell in cells:
                self.config.limits.check(cell.request)
                check_models(cell.request)
            total = sum(steps_per_batch(cell.request) for cell in cells)
            answer["grid"] = grid.as_json()
        payload = {"request": request.model_dump(mode="json"), "answer": answer}
        job, created = self.store.submit(kind, payload, total, idempotency_key, max_active=self.config.max_queue,
                                         owner=owner)
        if created:
            self.worker.notify()
        return job, created

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has finished (woken by the worker, not by polling); the job goes on if
        the caller goes away. `timeout`: asyncio's TimeoutError after that many seconds."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def wake() -> None:  # on the worker's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, finished)

        unsubscribe = self.worker.when_finished(job_id, wake)
        try:
            await asyncio.wait_for(finished, timeout)
        finally:
            unsubscribe()
        job = self.store.get(job_id)
        assert job is not None
        return job

    def file(self, job: Job, name: str) -> Path:
        return self.store.output_dir(job.id) / name

    def image_b64(self, job: Job, name: str) -> str:
        return base64.b64encode(self.file(job, name).read_bytes()).decode()

    def preview(self, job_id: str | None = None) -> np.ndarray | None:
        """The running job's latest step (the `show_progress_type` option says how it is decoded)."""
        from kekong.generation.preview import render
        from kekong.models.load import load_base
        from kekong.models.patch import with_vae

        running = self.worker.running if job_id is None else self.worker.running_job(job_id)
        if running is None or running.latents is None:
            return None
        model = with_vae(load_base(running.model), running.vae)  # the job's view: no lock, no patched parts
        return render(running.latents, model, self.options["show_progress_type"])

    def preview_png(self) -> bytes | None:
        from kekong.io import encode_image

        image = self.preview()
        return None if image is None else encode_image(image, "PNG", compress_level=1)

    # -- options ---------------------------------------------------------------------------
    def set_options(self, values: dict[str, Any]) -> None:
        from kekong.server.inputs import model_name

        unknown = sorted(set(values) - set(OPTION_DEFAULTS))
        if unknown:
            raise ParameterError(f"unknown option(s) {', '.join(unknown)}; kekong has: {', '.join(OPTION_DEFAULTS)}")
        for key, value in values.items():
            _check_option(key, value)
            if key in ("sd_model_checkpoint", "sd_vae"):
                name = model_name(value, key)
                if name is not None:
                    from kekong.models.refs import resolve

                    resolve(name, "base" if key == "sd_model_checkpoint" else "vae")
                value = name or OPTION_DEFAULTS[key]
            self.options[key] = value
        path = self.store.root / "options.json"
        path.write_text(json.dumps({k: v for k, v in self.options.items() if v != OPTION_DEFAULTS[k]}))

    def _saved_options(self) -> dict[str, Any]:
        path = self.store.root / "options.json"
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in saved.items() if k in OPTION_DEFAULTS}

    # -- detectors -------------------------------------------------------------------------
    def detect(self, module: str, image: np.ndarray, res: int = 512, params: dict[str, Any] | None = None,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, dict | None]:
        """(control map, pose JSON or None). Detectors are pure functions and the mediapipe graphs they
        share lock themselves, so requests run side by side."""
        from kekong.detect import run

        result = run(module, image, res=res, mask=mask, **(params or {}))
        image_out = result.image if result.image.dtype == np.uint8 else np.clip(result.image * 255, 0, 255).astype(
            np.uint8)
        return image_out, result.data


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_OPTION_CHOICES = {"randn_source": spec("rng").choices, "samples_format": ("png",),
                   "enable_pnginfo": (True,), "control_net_no_detectmap": (True, False),
                   "show_progress_type": ("Approx cheap", "TAESD", "Full")}


def _check_option(key: str, value: Any) -> None:
    if key in _OPTION_CHOICES and not any(value == c and type(value) is type(c) for c in _OPTION_CHOICES[key]):
        raise ParameterError(f"option {key}: {value!r} is not supported; kekong takes "
                             + ", ".join(map(repr, _OPTION_CHOICES[key])))
    for option, target in (("CLIP_stop_at_last_layers", "clip_skip"), ("eta_noise_seed_delta", "eta_noise_seed_delta")):
        bounds = spec(target)  # the option sets the request field: its declared bounds
        if key == option and (type(value) is not int or not bounds.ge <= value <= bounds.le):
            raise ParameterError(f"option {key}: {value!r}; expected a whole number {bounds.bounds_text()}")


def check_models(request) -> None:
    """Every model the request names exists (and is a name, not a path) — before it is queued."""
    from kekong.models.ip_adapter import is_ip_module
    from kekong.models.refs import resolve
    from kekong.prompt.syntax import extract_loras
    from kekong.server.inputs import model_name

    names = [("model", request.model, "base"), ("vae", request.vae, "vae"), ("refiner", request.refiner, "base")]
    names += [(f"controls[{i}].model", unit.model, "ipadapter" if is_ip_module(unit.module) else "controlnet")
              for i, unit in enumerate(request.controls)]  # IP-Adapters are also looked for in ipadapter/
    names += [(f"loras[{i}].path", lora.path, "lora") for i, lora in enumerate(request.loras)]
    names += [(f"prompt <lora:{name}>", name, "lora") for name, _ in extract_loras(request.prompt)[1]]
    for where, name, role in names:
        if name is not None:
            resolve(model_name(name, where) or name, role)
