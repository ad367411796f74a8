"""A bounded queue and bounded disk: --max-queue (429 + Retry-After), DELETE of a finished job and
its files, --keep-jobs-hours retention, and validated list paging. The worker runs a fake,
Event-gated generation that writes one file, so no image is generated."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kekong.errors import ParameterError
from kekong.scale.bounds import WorkerBounds
from kekong.server.app import create_app
from kekong.server.config import ServerConfig
from kekong.server.status import JobStatus
from tests.server_helpers import b64_png, star_outline

TINY = {"prompt": "a red star", "width": 64, "height": 64, "steps": 2}


class Gated:
    """A generation that waits for `gate` and writes 0.png into the job's folder."""

    def __init__(self, open_: bool = False) -> None:
        self.gate = threading.Event()
        if open_:
            self.gate.set()

    def __call__(self, job, request, out_dir: Path, on_step) -> dict:
        assert self.gate.wait(30)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "0.png").write_bytes(b"png")
        return {"images": [{"file": "0.png", "seed": 1, "subseed": None, "prompt": "", "negative_prompt": "",
                            "infotext": "", "width": 64, "height": 64, "fidelity": None}],
                "maps": [], "request": {}, "model": None, "vae": None}


def serve(tmp_path: Path, fake: Gated, **config) -> TestClient:
    client = TestClient(create_app(ServerConfig(data_dir=tmp_path / "server", ui=False, **config)))
    client.__enter__()
    client.app.state.services.worker.execute = fake
    return client


def wait_status(client: TestClient, job_id: str, statuses: tuple[str, ...], timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job.get("status") in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id}: {job}")


def test_a_full_queue_answers_429_with_retry_after_on_both_apis(tmp_path):
    fake = Gated()
    client = serve(tmp_path, fake, max_queue=2)
    try:
        first = client.post("/v1/jobs", json=TINY, headers={"Idempotency-Key": "a"})
        second = client.post("/v1/jobs", json=TINY)
        assert first.status_code == second.status_code == 202
        wait_status(client, first.json()["id"], ("running",))
        full = client.post("/v1/jobs", json=TINY)
        assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
        assert "--max-queue" in full.json()["detail"] and "2 jobs" in full.json()["detail"]
        a1111 = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2})
        assert a1111.status_code == 429 and a1111.headers["retry-after"]
        replay = client.post("/v1/jobs", json=TINY, headers={"Idempotency-Key": "a"})  # not a new job
        assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
        assert len(client.get("/v1/jobs").json()) == 2  # the refused ones left no row
        fake.gate.set()
        wait_status(client, second.json()["id"], ("done",))
        assert client.post("/v1/jobs", json=TINY).status_code == 202  # room again
    finally:
        fake.gate.set()
        client.__exit__(None, None, None)


def test_delete_removes_a_finished_job_and_its_files_and_cancels_an_unfinished_one(tmp_path):
    fake = Gated()
    client = serve(tmp_path, fake)
    root = tmp_path / "server"
    shared = "data:image/png;base64," + b64_png(star_outline())
    own = "data:image/png;base64," + b64_png(255 - star_outline())
    try:
        body = {**TINY, "controls": [{"module": "none", "image": shared}]}
        running = client.post("/v1/jobs", json={**body, "init_image": own}).json()["id"]
        wait_status(client, running, ("running",))
        queued = client.post("/v1/jobs", json=body).json()["id"]
        assert len(list((root / "blobs").iterdir())) == 2
        cancelled = client.delete(f"/v1/jobs/{queued}")  # queued: cancelled, not deleted
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert client.delete(f"/v1/jobs/{running}").status_code == 200  # running: asked to stop
        again = client.delete(f"/v1/jobs/{running}")
        assert again.status_code == 409 and "still running" in again.json()["detail"]
        fake.gate.set()
        wait_status(client, running, ("done",))  # the fake does not stop on cancel: it finishes
        assert (root / "jobs" / running / "0.png").exists()
        gone = client.delete(f"/v1/jobs/{running}")
        assert gone.status_code == 204 and gone.content == b""
        assert client.get(f"/v1/jobs/{running}").status_code == 404
        assert client.get(f"/v1/jobs/{running}/images/0").status_code == 404
        assert client.delete(f"/v1/jobs/{running}").status_code == 404
        assert not (root / "jobs" / running).exists()
        assert len(list((root / "blobs").iterdir())) == 1  # its own init image went; the shared map stays
        assert client.delete(f"/v1/jobs/{queued}").status_code == 204  # a cancelled job is finished too
        assert list((root / "blobs").iterdir()) == []
    finally:
        fake.gate.set()
        client.__exit__(None, None, None)


@pytest.mark.parametrize(("query", "named"), [
    ("limit=-1", "limit"), ("limit=0", "limit"), ("limit=1e20", "limit"), ("limit=501", "limit"),
    ("limit=99999999999999999999999", "limit"), ("offset=-1", "offset"), ("offset=1.5", "offset"),
])
def test_list_paging_is_bounded_and_a_bad_value_names_the_parameter(tmp_path, query, named):
    client = serve(tmp_path, Gated(open_=True))
    try:
        answer = client.get(f"/v1/jobs?{query}")
        assert answer.status_code == 422 and answer.json()["detail"].startswith(f"query.{named}:"), answer.json()
    finally:
        client.__exit__(None, None, None)


def test_list_pages_newest_first(tmp_path):
    client = serve(tmp_path, Gated(open_=True))
    try:
        ids = [client.post("/v1/jobs", json={**TINY, "seed": n}).json()["id"] for n in range(3)]
        assert [j["id"] for j in client.get("/v1/jobs?limit=2").json()] == ids[::-1][:2]
        assert [j["id"] for j in client.get("/v1/jobs?limit=2&offset=2").json()] == ids[:1]
        assert client.get("/v1/jobs?offset=10").json() == []
    finally:
        client.__exit__(None, None, None)


def test_sweep_deletes_only_finished_jobs_older_than_the_age(tmp_path):
    fake = Gated()
    client = serve(tmp_path, fake)
    try:
        old, recent = (client.post("/v1/jobs", json={**TINY, "seed": n}).json()["id"] for n in (1, 2))
        fake.gate.set()
        wait_status(client, recent, ("done",))
        fake.gate.clear()
        running = client.post("/v1/jobs", json={**TINY, "seed": 3}).json()["id"]
        queued = client.post("/v1/jobs", json={**TINY, "seed": 4}).json()["id"]
        wait_status(client, running, ("running",))
        store = client.app.state.services.store
        with sqlite3.connect(store.path) as db:  # `old` finished two hours ago; the active ones look old too
            db.execute("UPDATE jobs SET finished = ? WHERE id = ?", (time.time() - 7200, old))
            db.execute("UPDATE jobs SET created = ?, started = ? WHERE id IN (?, ?)",
                       (time.time() - 9000, time.time() - 9000, running, queued))
        assert store.sweep(3600) == [old]
        assert store.get(old) is None and not store.output_dir(old).exists()
        assert store.get(recent).status == JobStatus.DONE and store.output_dir(recent).exists()
        assert store.sweep(0) == [recent]  # never the running or queued one
        assert {store.get(running).status, store.get(queued).status} == {JobStatus.RUNNING, JobStatus.QUEUED}
    finally:
        fake.gate.set()
        client.__exit__(None, None, None)


def test_keep_jobs_hours_runs_the_sweeper(tmp_path):
    client = serve(tmp_path, Gated(open_=True), keep_jobs_hours=1 / 3600)  # one second
    try:
        job_id = client.post("/v1/jobs", json=TINY).json()["id"]
        wait_status(client, job_id, ("done",))
        deadline = time.time() + 10
        while client.get(f"/v1/jobs/{job_id}").status_code != 404 and time.time() < deadline:
            time.sleep(0.1)
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert not (tmp_path / "server" / "jobs" / job_id).exists()
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize(("config", "message"), [
    ({"max_queue": 0}, "--max-queue 0"), ({"keep_jobs_hours": 0}, "--keep-jobs-hours 0"),
    ({"keep_jobs_hours": -2.0}, "--keep-jobs-hours -2.0"),
    # kekong serve --ray: a negative CPU count was Ray's ValueError traceback at start-up; no actor hung every job
    ({"ray": "local", "ray_pool": WorkerBounds(cpus_per_worker=-1.0)}, "--cpus-per-worker -1.0"),
    ({"ray": "local", "ray_pool": WorkerBounds(cpus_per_worker=0.0)}, "--cpus-per-worker 0.0"),
    ({"ray": "local", "ray_pool": WorkerBounds(workers=0)}, "--workers 0"),
    ({"ray": "local", "ray_pool": WorkerBounds(gpus_per_worker=-1)}, "--gpus-per-worker -1"),
])
def test_nonsense_queue_and_retention_settings_are_refused(config, message):
    with pytest.raises(ParameterError, match=message.replace(".", r"\.")):
        ServerConfig(**config).check()


def test_serve_ray_without_ray_installed_says_so_before_starting(monkeypatch):
    from kekong.errors import KekongError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where the extra is not installed
    with pytest.raises(KekongError, match=r"Ray is not installed: pip install 'kekong\[ray\]'"):
        ServerConfig(ray="local").check()
    ServerConfig().check()  # without --ray nothing asks for it
