"""`kekong serve --ray`: the job record stays in the head's SQLite store, the generation runs on a Ray
actor; an actor killed with SIGKILL mid-job → the job runs again on a new actor with the same seed
and finishes. A local Ray (`num_cpus=2`), shut down after the module."""

from __future__ import annotations

import os
import signal
import time

import pytest

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
    started = Services.start(ServerConfig(data_dir=tmp_path / "store", ui=False, ray="local", ray_workers=1))
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
