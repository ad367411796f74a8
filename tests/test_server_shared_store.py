"""A store shared by several server processes (Ray Serve replicas, kekong.server.ray_serve): a job
queued through one is run by whichever worker claims it, and a wait on the first is woken when the
other finishes it (from the store: no signal crosses processes). Two Services on one folder stand
for two replicas; the generation is a fake."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from kekong.server.config import ServerConfig
from kekong.server.services import Services
from kekong.server.status import JobStatus
from kekong.server.store import JobStore
from kekong.server.worker import Worker
from tests.test_job_store import FakeGeneration


def replica(tmp_path, fake, start: bool) -> Services:
    config = ServerConfig(data_dir=tmp_path / "server", ui=False, shared_store=True)
    store = JobStore(config.store_dir())
    worker = Worker(store, execute=fake, shared=True)
    if start:
        worker.start()
    return Services(config, store, worker)


def test_a_job_run_by_another_replica_wakes_the_wait_on_this_one(tmp_path):
    quiet, busy = FakeGeneration(), FakeGeneration()
    front = replica(tmp_path, quiet, start=False)  # takes the POST; its worker claims nothing here
    threading.Thread(target=front.worker._watch, daemon=True).start()  # but its waiters watch the store
    back = replica(tmp_path, busy, start=True)  # claims the job and runs it
    try:
        job, _ = front.submit({"prompt": "x", "width": 64, "height": 64, "steps": 2}, "generate")
        done = asyncio.run(front.wait(job.id, timeout=20))
        assert done.status == JobStatus.DONE and [call[0] for call in busy.calls] == [job.id] and not quiet.calls
    finally:
        front.worker.stop()
        back.worker.stop()


def test_a_replica_does_not_recover_the_store_its_peers_run(tmp_path, monkeypatch):
    store = JobStore(tmp_path / "server")
    job, _ = store.submit("generate", {"request": {"prompt": "x"}, "answer": {}}, 2)
    assert store.claim_next().id == job.id  # running in a peer
    started = Services.start(ServerConfig(data_dir=tmp_path / "server", ui=False, shared_store=True))
    try:
        assert started.store.get(job.id).status == JobStatus.RUNNING  # not marked interrupted
    finally:
        started.stop()


def test_the_deployment_without_ray_serve_says_how_to_install_it(monkeypatch):
    from kekong.errors import KekongError
    from kekong.server import ray_serve

    monkeypatch.setitem(sys.modules, "ray.serve", None)
    with pytest.raises(KekongError, match=r"pip install 'kekong\[ray-serve\]'"):
        ray_serve.application(ServerConfig())


@pytest.mark.parametrize(("scaling", "message"), [
    ({"min_replicas": -1}, "--min-replicas -1: at least 0"), ({"max_replicas": 0}, "--max-replicas 0: at least 1"),
    ({"min_replicas": 3, "max_replicas": 2}, "--max-replicas 2: at least --min-replicas"),
    ({"cpus_per_replica": 0}, "--cpus-per-replica 0: at least 0.1"),
])
def test_replica_bounds_are_checked(scaling, message):
    from kekong.errors import ParameterError
    from kekong.server.ray_serve import Scaling

    with pytest.raises(ParameterError, match=message):
        Scaling(**scaling).check()
