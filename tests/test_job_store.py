"""One form through the server: a job's row holds the validated request with its images as
content-addressed files beside the store (no base64 in SQLite), the worker reads it back once
with the images as paths, old base64 rows still run, and waiting on a job is woken by the worker.

The worker here runs a fake generation (an Event-gated function), so no image is generated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from kekong.errors import ImageError
from kekong.request import build_request
from kekong.server.config import ServerConfig
from kekong.server.services import Services
from kekong.server.status import JobStatus
from kekong.server.store import JobStore
from kekong.server.worker import Worker


def png(seed: int, size: int = 96) -> bytes:
    """A noisy PNG (its base64 is tens of kB, so a row that kept it could not hide it)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, "PNG")
    return stream.getvalue()


def uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


INIT, UNIT = png(1), png(2)


def fields(init: bytes = INIT, unit: bytes = UNIT) -> dict:
    return {"prompt": "a red star", "width": 64, "height": 64, "steps": 2, "seed": 7, "init_image": uri(init),
            "controls": [{"module": "none", "image": uri(unit), "weight": 0.5}]}


class FakeGeneration:
    """Records what the worker hands over and finishes when released (or at once)."""

    def __init__(self, gated: bool = False, error: Exception | None = None) -> None:
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.error = error
        self.calls: list[tuple[str, object]] = []

    def __call__(self, job, request, out_dir, on_step) -> dict:
        self.calls.append((job.id, request))
        assert self.gate.wait(30)
        if self.error is not None:
            raise self.error
        return {"images": [], "maps": [], "request": {}, "model": None, "vae": None}


class TimedStore(JobStore):
    """Notes when each job's end was written: the moment a waiter may learn of it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.finished_at: dict[str, float] = {}

    def finish(self, job_id, status, result=None, error=None) -> None:
        super().finish(job_id, status, result=result, error=error)
        self.finished_at[job_id] = time.perf_counter()


def make(tmp_path: Path, fake: FakeGeneration | None = None, start: bool = True,
         store_class: type[JobStore] = JobStore) -> Services:
    config = ServerConfig(data_dir=tmp_path / "server", ui=False)
    store = store_class(config.store_dir())
    worker = Worker(store, execute=fake or FakeGeneration())
    services = Services(config, store, worker)
    if start:
        worker.start()
    return services


def wait(services: Services, job_id: str, timeout: float = 30):
    return asyncio.run(services.wait(job_id, timeout=timeout))


def sqlite_bytes(store: JobStore) -> bytes:
    """The database and its WAL files as they are now (SQLite may remove the -shm/-wal file meanwhile)."""
    return b"".join(_read_if_there(p) for p in store.path.parent.glob("jobs.sqlite*"))


def _read_if_there(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # the worker's connection closed between the listing and the read
        return b""


def test_a_row_holds_references_and_the_images_are_files_beside_it(tmp_path):
    old = os.umask(0o027)
    try:
        services = make(tmp_path, start=False)
        job, _ = services.submit(fields(), "generate")
    finally:
        os.umask(old)
    store = services.store
    with sqlite3.connect(store.path) as db:
        payload, = db.execute("SELECT payload FROM jobs WHERE id = ?", (job.id,)).fetchone()
    assert len(payload) < 2500  # the two images alone are over 50 kB of base64
    request = json.loads(payload)["request"]
    digests = [hashlib.sha256(INIT).hexdigest(), hashlib.sha256(UNIT).hexdigest()]
    assert request["init_image"] == f"sha256:{digests[0]}" and request["controls"][0]["image"] == f"sha256:{digests[1]}"
    assert request["controls"][0]["weight"] == 0.5 and request["mask"] is None
    raw = sqlite_bytes(store)  # the database and its WAL: no trace of either image's base64
    for data in (INIT, UNIT):
        assert base64.b64encode(data)[1000:1100] not in raw
    assert b"base64," not in raw
    for digest, data in zip(digests, (INIT, UNIT), strict=True):
        path = store.root / "blobs" / f"{digest}.png"
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # as open() would make it under umask 027


def test_two_jobs_with_one_image_share_its_blob_until_the_last_is_deleted(tmp_path):
    services = make(tmp_path, start=False)
    store = services.store
    first, _ = services.submit(fields(), "generate")
    second, _ = services.submit(fields(unit=INIT), "generate")  # the init image again, as its unit image too
    blobs = sorted(p.name for p in (store.root / "blobs").iterdir())
    assert blobs == sorted(f"{hashlib.sha256(d).hexdigest()}.png" for d in (INIT, UNIT))
    assert store.get(second.id).payload["request"]["controls"][0]["image"] == \
        store.get(second.id).payload["request"]["init_image"]
    assert not store.delete(first.id)  # still queued: never deleted
    for job in (first, second):
        assert services.worker.cancel(job.id)
    assert store.delete(first.id) and store.get(first.id) is None
    assert sorted(p.name for p in (store.root / "blobs").iterdir()) == [f"{hashlib.sha256(INIT).hexdigest()}.png"]
    assert store.delete(second.id)
    assert list((store.root / "blobs").iterdir()) == []
    assert not store.delete(second.id)


def test_the_worker_gets_the_submitted_request_with_its_images_as_files(tmp_path):
    fake = FakeGeneration()
    services = make(tmp_path, fake)
    mask = png(3)
    sent = {**fields(), "mask": uri(mask)}
    job, _ = services.submit(sent, "generate")
    assert wait(services, job.id).status == JobStatus.DONE
    (job_id, request), = fake.calls  # read once, handed over once
    assert job_id == job.id
    expected = build_request(**sent).model_dump(mode="json")
    got = request.model_dump(mode="json")
    for key, data in (("init_image", INIT), ("mask", mask)):
        assert Path(got[key]).read_bytes() == data
        got[key] = expected[key]
    assert Path(got["controls"][0]["image"]).read_bytes() == UNIT
    got["controls"][0]["image"] = expected["controls"][0]["image"]
    assert got == expected


def test_an_error_names_the_field_not_the_blob_path(tmp_path):
    fake = FakeGeneration(gated=True)
    services = make(tmp_path, fake)
    job, _ = services.submit(fields(), "generate")
    while not fake.calls:
        time.sleep(0.01)
    fake.error = ImageError(f"{fake.calls[0][1].init_image}: not a readable image")
    fake.gate.set()
    failed = wait(services, job.id)
    assert failed.status == JobStatus.FAILED and failed.error == "init_image: not a readable image"


def test_an_old_row_with_base64_images_still_runs(tmp_path):
    root = tmp_path / "server"
    root.mkdir()
    sent = fields()
    with sqlite3.connect(root / "jobs.sqlite") as db:  # a store as kekong wrote it before blobs
        db.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, "
                   "idempotency_key TEXT UNIQUE, kind TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL, "
                   "step INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, error TEXT, result TEXT, "
                   "created REAL NOT NULL, started REAL, finished REAL)")
        old = {"request": build_request(**sent).model_dump(mode="json"), "answer": {}}
        db.execute("INSERT INTO jobs (id, kind, payload, status, total, created) VALUES (?, ?, ?, ?, ?, ?)",
                   ("0123456789abcdef", "generate", json.dumps(old), "queued", 2, time.time()))
    fake = FakeGeneration()
    services = make(tmp_path, fake)
    assert wait(services, "0123456789abcdef").status == JobStatus.DONE
    (_, request), = fake.calls
    assert Path(request.init_image).read_bytes() == INIT and Path(request.controls[0].image).read_bytes() == UNIT
    assert b"base64," not in sqlite_bytes(services.store)  # migrated when the store was opened
    services.worker.stop()
    assert services.store.delete("0123456789abcdef")
    assert list((root / "blobs").iterdir()) == []  # the migrated row's blobs go with it


def test_a_blob_no_row_references_is_swept_at_start_up(tmp_path):
    services = make(tmp_path, start=False)
    services.submit(fields(), "generate")
    orphan = services.store.root / "blobs" / f"{'0' * 64}.png"
    orphan.write_bytes(png(9))
    recent = services.store.root / "blobs" / f"{'1' * 64}.png"
    recent.write_bytes(png(10))  # may be a submit under way: kept
    os.utime(orphan, (time.time() - 3600,) * 2)
    for path in (services.store.root / "blobs").iterdir():
        if path not in (orphan, recent):
            os.utime(path, (time.time() - 3600,) * 2)  # old, but referenced
    services.store.recover()
    assert not orphan.exists() and recent.exists()
    assert len(list((services.store.root / "blobs").iterdir())) == 3


def test_waiting_is_woken_when_the_job_finishes(tmp_path):
    """No fixed-interval poll: each wait returns within a few ms of the job's end being written
    (a 50 ms poll would average 25 ms late)."""
    fake = FakeGeneration(gated=True)
    services = make(tmp_path, fake, store_class=TimedStore)
    lags = []

    async def one(delay: float) -> None:
        job, _ = services.submit(fields(), "generate")
        asyncio.get_running_loop().call_later(delay, fake.gate.set)
        finished = await services.wait(job.id, timeout=30)
        lags.append(time.perf_counter() - services.store.finished_at[job.id])
        assert finished.status == JobStatus.DONE
        fake.gate.clear()

    for delay in (0.05, 0.063, 0.071, 0.088, 0.094, 0.102, 0.117, 0.129):  # phases a poller could not match
        asyncio.run(one(delay))
    assert max(lags) < 0.05 and sum(lags) / len(lags) < 0.015, lags
    assert services.worker._waiters == {}  # nothing left subscribed


def test_a_wait_times_out_and_unsubscribes_and_a_finished_job_needs_no_wait(tmp_path):
    fake = FakeGeneration(gated=True)
    services = make(tmp_path, fake)
    job, _ = services.submit(fields(), "generate")
    with pytest.raises(asyncio.TimeoutError):
        wait(services, job.id, timeout=0.05)
    assert services.worker._waiters == {}
    fake.gate.set()
    assert wait(services, job.id).status == JobStatus.DONE
    started = time.perf_counter()
    assert services.worker.finished_event(job.id).is_set() and wait(services, job.id).status == JobStatus.DONE
    assert time.perf_counter() - started < 0.5


class SlowClaimStore(JobStore):
    """Pauses once a claimed job's row says running, before the worker has it in hand."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.claimed = threading.Event()

    def claim_next(self):
        job = super().claim_next()
        if job is not None:
            self.claimed.set()
            time.sleep(0.3)
        return job


def test_a_job_cancelled_while_it_is_being_claimed_is_still_cancelled(tmp_path):
    # DELETE answered 409 when it came between the store's claim and the worker's hold on the job
    from kekong.generation.loop import Cancelled

    gate = threading.Event()

    def one_step(job, request, out_dir, on_step) -> dict:
        assert gate.wait(10)  # the job runs until the test has asked it to stop
        if on_step(SimpleNamespace(shown=None)) is False:  # as the denoising loop does
            raise Cancelled
        return {"images": [], "maps": [], "request": {}, "model": None, "vae": None}

    services = make(tmp_path, one_step, store_class=SlowClaimStore)
    job, _ = services.submit(fields(), "generate")
    assert services.store.claimed.wait(10)
    assert services.worker.cancel(job.id)  # waits for the claim to finish, then stops the run
    gate.set()
    assert wait(services, job.id).status == JobStatus.CANCELLED
    services.worker.stop()
