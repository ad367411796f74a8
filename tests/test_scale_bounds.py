"""Worker bounds declared once (kekong.scale.bounds) and what derives from them: every command's
--workers/--cpus-per-worker/--gpus-per-worker, ServerConfig, the pools; the actor's CUDA device
from Ray's GPU ids; the server's worker running as many jobs at once as it has slots, the rest
waiting queued (back-pressure), each job's progress its own. No Ray and no generation here."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from kekong.errors import ParameterError
from kekong.scale.bounds import WorkerBounds
from kekong.server.config import ServerConfig
from kekong.server.status import JobStatus
from kekong.server.store import JobStore
from kekong.server.worker import Worker

RAY_COMMANDS = ("batch", "grid", "generate", "video", "serve")


@pytest.mark.parametrize(("given", "message"), [
    ({"workers": 0}, "--workers 0: must be a whole number at least 1"),
    ({"workers": 2.5}, "--workers 2.5: must be a whole number"),
    ({"workers": 5000}, "--workers 5000: must be a whole number at least 1 and at most 1024"),
    ({"cpus_per_worker": 0.0}, "--cpus-per-worker 0.0: must be above 0"),
    ({"gpus_per_worker": -0.5}, "--gpus-per-worker -0.5: must be at least 0"),
])
def test_a_bound_out_of_its_declaration_is_named_by_its_flag(given, message):
    with pytest.raises(ParameterError, match=message.replace(".", r"\.")):
        WorkerBounds.build(**given)
    with pytest.raises(ParameterError, match=message.replace(".", r"\.")):  # the server checks the same rule
        ServerConfig(ray="local", ray_pool=WorkerBounds(**given)).check()


def test_defaults_and_totals():
    bounds = WorkerBounds.build(workers=None, cpus_per_worker=2.5, gpus_per_worker=None)
    assert (bounds.workers, bounds.threads, bounds.totals()) == (2, 2, (5.0, 0.0))
    assert ServerConfig().ray_pool == WorkerBounds()


def test_every_command_with_ray_takes_the_declared_bounds():
    import typer.main

    from kekong.cli import app

    commands = typer.main.get_command(app).commands
    for command in RAY_COMMANDS:
        params = {param.opts[0]: param for param in commands[command].params}
        assert "--ray" in params, command
        for name in ("workers", "cpus_per_worker", "gpus_per_worker"):
            declared, param = WorkerBounds.declared(name), params[WorkerBounds.flag(name)]
            low = declared["ge"] if declared["ge"] is not None else declared["gt"]
            assert (param.min, param.max, param.default) == (low, declared["le"], None), (command, name)
            assert declared["help"] in param.help and f"default {declared['default']:g}" in param.help


def test_the_actor_takes_the_cuda_device_ray_assigned(monkeypatch):
    from kekong.scale import placement

    assert placement.gpu_index([3], "3") == 0  # Ray narrowed CUDA_VISIBLE_DEVICES to the actor's GPU
    assert placement.gpu_index(["1"], "0,1") == 1
    assert placement.gpu_index([2], None) == 2  # RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: the id itself
    set_to = []
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get_gpu_ids=lambda: [5]))
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", set_to.append)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert placement.place(1.0) == "cuda:0" and set_to == [0]
    assert placement.place(0.0) == "cpu" and set_to == [0]  # no GPU reserved: nothing set
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert placement.place(1.0) == "cpu"


class Gated:
    """A fake generation: each job makes `steps` steps, then waits for its gate."""

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []

    def __call__(self, job, request, out_dir, on_step) -> dict:
        gate = self.gates.setdefault(job.id, threading.Event())
        self.started.append(job.id)
        for _ in range(self.steps):
            on_step(types.SimpleNamespace(shown=None))
        assert gate.wait(30)
        return {"images": [], "maps": [], "request": {}, "model": None, "vae": None}


def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_worker_with_two_slots_runs_two_jobs_at_once_and_keeps_the_third_queued(tmp_path):
    store = JobStore(tmp_path / "server")
    fake = Gated()
    worker = Worker(store, execute=fake, slots=2)
    request = {"prompt": "x", "width": 64, "height": 64, "steps": 5}
    jobs = [store.submit("generate", {"request": request, "answer": {}}, 5)[0] for _ in range(3)]
    worker.start()
    try:
        until(lambda: len(fake.started) == 2)
        time.sleep(0.3)  # a third slot would have claimed it by now
        first, second, third = (store.get(job.id) for job in jobs)
        assert [first.status, second.status, third.status] == [JobStatus.RUNNING, JobStatus.RUNNING,
                                                               JobStatus.QUEUED]
        until(lambda: all(worker.running_job(job.id) and worker.running_job(job.id).step == 3 for job in jobs[:2]))
        assert worker.running.job_id == jobs[0].id and worker.running_job(jobs[2].id) is None  # oldest first
        assert worker.cancel(jobs[1].id) and worker.running_job(jobs[1].id).cancel
        assert not worker.running_job(jobs[0].id).cancel  # a cancel is the job's own
        fake.gates.setdefault(jobs[0].id, threading.Event()).set()
        until(lambda: store.get(jobs[0].id).status == JobStatus.DONE)
        until(lambda: jobs[2].id in fake.started)  # its slot freed: the queued job starts
        for job in jobs:
            fake.gates.setdefault(job.id, threading.Event()).set()
        until(lambda: all(store.get(job.id).status.finished for job in jobs))
        # each job's progress written on its own clock (one job's write does not hold back the other's)
        assert all(store.get(job.id).step >= 1 for job in jobs) and worker.runs == {}
    finally:
        for gate in fake.gates.values():
            gate.set()
        worker.stop()


def test_a_ray_jobs_steps_and_the_workers_answers_cross_between_head_and_actor():
    """The head's Progress tells each step the actor reports once and keeps the worker's answer; the
    actor's step callback obeys it at its next step (skip once, cancel and interrupt for good)."""
    from kekong.generation.loop import Stop
    from kekong.server.ray_jobs import JobActor, Progress

    answers = iter([True, True, Stop.BATCH, True, False])
    told = []

    def on_step(info):
        told.append(info)
        return next(answers)

    progress = Progress(on_step)
    progress.reached(2)
    assert len(told) == 2 and progress.send() is True
    progress.reached(2)  # a retry's actor starts again from 0: steps told once are not told again
    assert len(told) == 2
    progress.reached(3)
    assert progress.send() == "skip" and progress.send() is True  # a skip is sent once
    progress.reached(5)
    assert progress.send() is False and progress.send() is False  # a cancel stays

    actor = JobActor("w1")
    assert actor.device == "cpu"
    assert actor._on_step(None) is True and actor.poll("skip") == 1
    assert actor._on_step(None) is Stop.BATCH and actor._on_step(None) is True  # one batch skipped
    actor.poll("interrupt")
    assert actor._on_step(None) is Stop.ALL
    actor.poll(False)
    assert actor._on_step(None) is False and actor.poll(True) == 5 and actor._on_step(None) is False
