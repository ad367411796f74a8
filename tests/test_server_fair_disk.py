"""The queue is fair between API keys (each key's jobs take turns: one client's flood does not
hold up another's), and --max-disk-gb keeps the job store under a size by deleting the finished
jobs that finished first — never a queued or running one. The worker runs a fake, Event-gated
generation, so no image is generated."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kekong.cli import app as cli
from kekong.errors import ParameterError
from kekong.server import services as services_module
from kekong.server.config import ServerConfig
from kekong.server.security import owner_of
from kekong.server.status import JobStatus
from kekong.server.store import JobStore
from tests.test_server_queue import TINY, serve

KEYS = ("alice-key-0123", "bob-key-4567")


def test_claim_next_takes_turns_between_owners(tmp_path):
    store = JobStore(tmp_path)
    submitted = {}
    for name, owner in (("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("n1", None)):
        submitted[store.submit("generate", {"request": {"seed": len(submitted)}}, 1, owner=owner)[0].id] = name
    order = []
    while (job := store.claim_next()) is not None:
        order.append(submitted[job.id])
        store.finish(job.id, JobStatus.DONE, result={})
        time.sleep(0.01)  # `started` times apart
    assert order == ["a1", "b1", "n1", "a2", "a3"]  # each owner in turn, its own jobs first come first served
    plain = JobStore(tmp_path / "plain")  # no keys: one owner, plain arrival order
    ids = [plain.submit("generate", {"request": {"seed": n}}, 1)[0].id for n in range(3)]
    assert [plain.claim_next().id for _ in ids] == ids


class Recording:
    """A fake generation that waits for `gate` on its first job and records the order jobs run in."""

    def __init__(self) -> None:
        self.gate, self.started, self.ran = threading.Event(), threading.Event(), []

    def __call__(self, job, request, out_dir: Path, on_step) -> dict:
        self.ran.append(request.seed)
        self.started.set()
        assert self.gate.wait(30)
        return {"images": [], "maps": [], "model": None, "vae": None,
                "request": request.model_dump(mode="json", exclude={"init_image", "mask", "controls"})}


def test_a_flood_from_one_key_does_not_hold_up_another(tmp_path):
    fake = Recording()
    client = serve(tmp_path, fake, api_key=KEYS[0], more_api_keys=(KEYS[1],))
    try:
        alice, bob = ({"Authorization": f"Bearer {key}"} for key in KEYS)
        for n in range(4):
            client.post("/v1/jobs", json={**TINY, "seed": n}, headers=alice)
        assert fake.started.wait(10)
        answers = []  # bob's sync A1111 call waits for its job: sent from a thread
        thread = threading.Thread(target=lambda: answers.append(client.post(
            "/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2, "seed": 99},
            headers=bob)))
        thread.start()
        deadline = time.time() + 20
        while len(client.get("/v1/jobs", headers=alice).json()) < 5 and time.time() < deadline:
            time.sleep(0.02)
        fake.gate.set()
        thread.join(30)
        assert answers and answers[0].status_code == 200 and answers[0].json()["images"] == []  # the fake makes none
        while len(fake.ran) < 5 and time.time() < deadline:
            time.sleep(0.05)
        assert fake.ran == [0, 99, 1, 2, 3]  # bob's job second, not fifth
        assert client.get("/v1/jobs").status_code == 401  # no key
        assert client.get("/v1/jobs", headers={"X-API-Key": "mallory"}).status_code == 401
        import sqlite3

        with sqlite3.connect(client.app.state.services.store.path) as db:
            owners = {row[0] for row in db.execute("SELECT owner FROM jobs")}
        assert owners == {owner_of(KEYS[0]), owner_of(KEYS[1])}
        assert not any(key in str(owners) for key in KEYS)  # the short id, never the key
    finally:
        fake.gate.set()
        client.__exit__(None, None, None)


def _finished_job(store: JobStore, seed: int, size: int) -> str:
    job, _ = store.submit("generate", {"request": {"seed": seed}}, 1)
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == job.id
    store.output_dir(job.id).mkdir(parents=True)
    (store.output_dir(job.id) / "0.png").write_bytes(b"x" * size)
    store.finish(job.id, JobStatus.DONE, result={})
    time.sleep(0.01)
    return job.id


def test_sweep_disk_deletes_the_first_finished_until_the_store_fits(tmp_path):
    store = JobStore(tmp_path)
    first, second, third = (_finished_job(store, n, 100_000) for n in range(3))
    running, _ = store.submit("generate", {"request": {"seed": 9}}, 1)
    store.claim_next()
    store.output_dir(running.id).mkdir(parents=True)
    (store.output_dir(running.id) / "partial.png").write_bytes(b"y" * 300_000)
    base = store.disk_bytes() - 600_000  # the database's own files
    assert store.sweep_disk(base + 600_000) == []  # it fits: nothing deleted
    assert store.sweep_disk(base + 450_000) == [first, second]  # 600k → 500k → 400k: two go
    assert store.get(third) is not None and store.get(first) is None and not store.output_dir(first).exists()
    assert store.sweep_disk(0) == [third]  # never the running job, however far over
    assert store.get(running.id).status == JobStatus.RUNNING and store.output_dir(running.id).exists()


def test_max_disk_gb_runs_the_sweeper(tmp_path, monkeypatch):
    monkeypatch.setattr(services_module, "DISK_SWEEP_S", 0.2)
    fake = Recording()
    fake.gate.set()
    client = serve(tmp_path, fake, max_disk_gb=1e-9)  # one byte: every finished job goes
    try:
        job_id = client.post("/v1/jobs", json=TINY).json()["id"]
        deadline = time.time() + 20
        while client.get(f"/v1/jobs/{job_id}").status_code != 404 and time.time() < deadline:
            time.sleep(0.1)
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize(("config", "message"), [
    ({"max_disk_gb": 0}, "--max-disk-gb 0: must be above 0"),
    ({"more_api_keys": ("b",)}, "more API keys without a first one"),
    ({"api_key": "a", "more_api_keys": ("a",)}, "different from the others"),
])
def test_settings_that_make_no_sense_are_refused(config, message):
    with pytest.raises(ParameterError, match=message):
        ServerConfig(**config).check()


def test_the_flags_reach_the_server_config_and_their_help_is_declared_once(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr("kekong.server.app.create_app", lambda config: seen.append(config) or None)
    monkeypatch.setattr("uvicorn.Server.run", lambda self: None)
    done = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path), "--no-ui", "--max-disk-gb", "2.5",
                                    "--api-key", "k1", "--api-key", "k2"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert seen[-1].max_disk_gb == 2.5 and seen[-1].api_keys == ("k1", "k2")
    shown = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert " ".join(ServerConfig.help("max_disk_gb").split()[:6]) in " ".join(shown.split())


def _video_job(store: JobStore, upload: Path) -> str:
    job, _ = store.submit("video", {"request": {"seed": 1}, "answer": {"video": {"source": str(upload)}}}, 1)
    assert store.claim_next().id == job.id
    store.finish(job.id, JobStatus.DONE, result={})
    return job.id


def test_a_video_upload_counts_against_the_disk_and_goes_with_the_last_job_reading_it(tmp_path):
    store = JobStore(tmp_path)
    store.uploads.mkdir(parents=True)
    upload = store.uploads / ("ab" * 32 + ".mp4")
    upload.write_bytes(b"v" * 200_000)
    mine, theirs = _video_job(store, upload), _video_job(store, upload)
    assert store.disk_bytes() >= 200_000  # the upload is part of what the store takes
    assert store.delete(mine) and upload.is_file()  # the other job still reads it
    assert store.sweep_disk(store.disk_bytes() - 100_000) == [theirs]  # its upload freed the space
    assert not upload.exists()
