"""`kekong serve --ray`: the job record stays in the head's SQLite store, the generation runs on a Ray
actor; an actor killed with SIGKILL mid-job → the job runs again on a new actor with the same seed
and finishes. A local Ray (`num_cpus=2`), shut down after the module."""

from __future__ import annotations

import os
import signal
import time

import pytest

from kekong.scale.bounds import WorkerBounds
from kekong.server.config import ServerConfig
from kekong.server.services import Services
from kekong.server.status import JobStatus

ray = pytest.importorskip("ray")
JOB = {"prompt": "a red star", "width": 64, "height": 64, "steps": 2, "seed": -1}


@pytest.fixture(scope="module")
def cluster():
    from kekong.scale.ray_pool import connect

    handler = signal.getsignal(signal.SIGTERM)  # ray.init installs its own and shutdown leaves it
    assert connect(None, cpus=2)
    yield
    ray.shutdown()
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture()
def services(cluster, tmp_path):
    config = ServerConfig(data_dir=tmp_path / "store", ui=False, ray="local", ray_pool=WorkerBounds(workers=1))
    started = Services.start(config)
    yield started
    started.stop()


def finished(services, job_id, timeout=300):
    assert services.worker.finished_event(job_id).wait(timeout)
    return services.store.get(job_id)


def test_a_job_runs_on_an_actor_and_is_recorded_on_the_head(services):
    job, _ = services.submit(JOB, "generate")
    done = finished(services, job.id)
    assert done.status == JobStatus.DONE, done.error
    assert done.result["ray"] == {"worker": "w1", "attempts": 1}
    assert done.step == done.total == 2  # progress caught up once the job came back
    [image] = done.result["images"]
    assert (services.store.output_dir(job.id) / image["file"]).is_file()
    bad, _ = services.submit({**JOB, "init_image": "data:image/png;base64,AAAA"}, "generate")
    failed = finished(services, bad.id)
    assert failed.status == JobStatus.FAILED and "Traceback" not in failed.error and "Ray" not in failed.error
    running, _ = services.submit({**JOB, "steps": 60}, "generate")  # seconds, even on an idle core
    while services.store.get(running.id).status != JobStatus.RUNNING:
        time.sleep(0.05)
    assert services.worker.cancel(running.id)  # reaches the actor's job when it comes back
    assert finished(services, running.id).status == JobStatus.CANCELLED


def test_a_worker_killed_mid_job_is_retried_on_another_with_the_same_seed(services):
    pids = services.worker.execute.pids()  # asked before the job: a busy actor answers after it
    job, _ = services.submit({**JOB, "steps": 40}, "generate")
    deadline = time.monotonic() + 120
    while services.store.get(job.id).status != JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # inside the actor's run (loading the model or sampling)
    os.kill(pids["w1"], signal.SIGKILL)
    done = finished(services, job.id)
    assert done.status == JobStatus.DONE, done.error
    assert done.result["ray"] == {"worker": "w2", "attempts": 2}
    assert services.worker.execute.lost == 1
    [image] = done.result["images"]
    again, _ = services.submit({**JOB, "steps": 40, "seed": image["seed"]}, "generate")
    [same] = finished(services, again.id).result["images"]
    assert same["seed"] == image["seed"] and same["infotext"] == image["infotext"]
    from kekong.io import load_image

    folder = services.store.output_dir
    assert (load_image(folder(job.id) / image["file"]) == load_image(folder(again.id) / same["file"])).all()


def test_two_actors_run_two_jobs_at_once_with_their_progress_and_cancel_reaching_the_actor(cluster, tmp_path):
    """Two workers: two jobs RUNNING together (a third waits queued), each one's steps move on the
    head while it runs on its actor (/v1/jobs/{id} and /sdapi/v1/progress), and a DELETE stops the
    job on its actor at the next step (it does not run to its end)."""
    from fastapi.testclient import TestClient

    from kekong.server.app import create_app

    config = ServerConfig(data_dir=tmp_path / "store", ui=False, ray="local", ray_pool=WorkerBounds(workers=2))
    with TestClient(create_app(config)) as client:
        services = client.app.state.services
        assert services.worker.slots == 2
        long = {**JOB, "steps": 150, "batch_count": 3}  # 450 steps: seconds to watch, even on an idle core
        ids = [client.post("/v1/jobs", json={**long, "seed": 5 + i}).json()["id"] for i in range(3)]
        deadline = time.monotonic() + 240
        seen_together = moved = False
        while time.monotonic() < deadline and not (seen_together and moved):
            statuses = [client.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
            running = [s for s in statuses if s["status"] == "running"]
            seen_together = seen_together or len(running) == 2
            assert len(running) <= 2 and statuses[2]["status"] in ("queued", "running")
            if len(running) == 2:
                assert statuses[2]["status"] == "queued"  # back-pressure: no third actor, no third job
            first = statuses[0]  # the oldest: the one A1111's progress shows
            moved = moved or (seen_together and first["status"] == "running" and 0 < first["progress"]["step"] < 450)
            time.sleep(0.2)
        assert seen_together and moved
        progress = client.get("/sdapi/v1/progress?skip_current_image=true").json()
        assert 0 < progress["state"]["sampling_step"] < 450 and progress["state"]["job"] == ids[0]
        assert progress["state"]["job_count"] == 3  # two running, one queued
        for job_id in ids:
            assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        for job_id in ids:
            assert services.worker.finished_event(job_id).wait(120)
        done = [services.store.get(job_id) for job_id in ids]
        assert [job.status for job in done] == [JobStatus.CANCELLED] * 3
        assert all(job.step < 450 for job in done[:2])  # stopped on the actor, not run to the end


def test_a1111_skip_reaches_the_job_on_its_actor(services):
    """/sdapi/v1/skip on a job running on an actor: its first batch ends early and is kept, the second runs."""
    job, _ = services.submit({**JOB, "steps": 100, "batch_count": 2, "seed": 9}, "generate")
    deadline = time.monotonic() + 240
    while services.worker.running_job(job.id) is None or services.worker.running_job(job.id).step < 2:
        assert time.monotonic() < deadline and not services.store.get(job.id).status.finished
        time.sleep(0.05)
    assert services.worker.skip() == job.id
    done = finished(services, job.id)
    assert done.status == JobStatus.DONE, done.error
    first, second = done.result["images"]
    assert done.result["stopped"] == ["skip"]
    assert "Stopped at step" in first["infotext"] and "(skip)" in first["infotext"]  # the actor's sampler obeyed
    assert "Stopped at step" not in second["infotext"]  # the next batch ran its 100 steps
