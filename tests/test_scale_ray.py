"""`kekong batch --ray` on a local Ray cluster (`num_cpus=2`, started once for the module and shut
down after): actors give the same bytes as one process, a worker killed with SIGKILL mid-batch
loses no line and records none twice, lines go to the actor holding their model.

The 20-line runs are slow (Ray actors start, load torch and the model): `make bench` runs them
with KEKONG_SLOW=1."""

from __future__ import annotations

import json
import os
import signal

import pytest

from kekong.scale.run import Local, Options, run_batch
from tests.test_scale_batch import requests, write_manifest

ray = pytest.importorskip("ray")
slow = pytest.mark.skipif(not os.environ.get("KEKONG_SLOW"), reason="slow: make bench runs it (KEKONG_SLOW=1)")
LAYERS = {"metadata": True, "watermark": False, "c2pa": False}  # C2PA carries its signing time: bytes differ


@pytest.fixture(scope="module")
def cluster():
    from kekong.scale.ray_pool import connect

    handler = signal.getsignal(signal.SIGTERM)  # ray.init installs its own and shutdown leaves it
    assert connect(None, cpus=2)  # this module's own Ray, not one left by someone else
    yield
    ray.shutdown()
    signal.signal(signal.SIGTERM, handler)


def pool(workers=2, cpus=1.0):
    from kekong.scale.bounds import WorkerBounds
    from kekong.scale.ray_pool import RayPool

    return RayPool(WorkerBounds(workers, cpus))


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def same_as_one_process(tmp_path, count: int) -> None:
    write_manifest(tmp_path / "m.jsonl", requests(count))
    alone = run_batch(tmp_path / "m.jsonl", Options(tmp_path / "alone", layers=LAYERS), Local(threads=1))
    with pool() as actors:
        spread = run_batch(tmp_path / "m.jsonl", Options(tmp_path / "ray", layers=LAYERS), actors)
    assert alone["counts"]["done"] == spread["counts"]["done"] == count
    assert files(tmp_path / "alone") == files(tmp_path / "ray") and len(files(tmp_path / "ray")) == count
    assert {entry["worker"] for entry in spread["lines"]} == {"w1", "w2"}  # both actors ran lines


def test_two_workers_write_the_same_bytes_as_one_process(cluster, tmp_path):
    same_as_one_process(tmp_path, 6)


@slow
def test_twenty_lines_on_two_workers_are_byte_identical(cluster, tmp_path):
    same_as_one_process(tmp_path, 20)


def killed_mid_batch(tmp_path, count: int) -> None:
    write_manifest(tmp_path / "m.jsonl", requests(count, steps=12))  # long enough to be killed while running
    actors = pool().start()
    try:
        pids = {stats["name"]: stats["pid"] for stats in actors.stats()}
        killed = []

        def kill_one(entry):
            if not killed:
                busy = [slot.name for slot in actors.busy() if slot.name in pids]
                victim = busy[0] if busy else next(iter(pids))
                os.kill(pids[victim], signal.SIGKILL)
                killed.append(victim)

        summary = run_batch(tmp_path / "m.jsonl", Options(tmp_path / "out", layers=LAYERS), actors,
                            progress=kill_one)
    finally:
        actors.close()
    lines = [entry["line"] for entry in summary["lines"]]
    assert lines == list(range(1, count + 1))  # every line once in the record
    assert all(entry["status"] == "done" for entry in summary["lines"])
    assert actors.lost == 1 and any(entry["attempts"] == 2 for entry in summary["lines"])
    assert {entry["worker"] for entry in summary["lines"]} >= {"w3"}  # the replacement took the line
    assert len(files(tmp_path / "out")) == count
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["counts"]["done"] == count


def test_a_worker_killed_mid_batch_loses_no_line(cluster, tmp_path):
    killed_mid_batch(tmp_path, 6)


@slow
def test_a_worker_killed_in_a_twenty_line_batch_loses_no_line(cluster, tmp_path):
    killed_mid_batch(tmp_path, 20)


def test_lines_go_to_the_actor_that_holds_their_model(cluster, tmp_path):
    from tests.tiny_models import build_tiny_base

    other = build_tiny_base(tmp_path / "tiny")
    rows = [{**row, "model": str(other)} if i % 2 else row for i, row in enumerate(requests(8))]
    write_manifest(tmp_path / "m.jsonl", rows)
    with pool(workers=4, cpus=0.5) as actors:
        summary = run_batch(tmp_path / "m.jsonl", Options(tmp_path / "out", layers=LAYERS), actors)
        stats = actors.stats()
    assert summary["counts"]["done"] == 8
    assert all(len(actor["loaded"]) == 1 for actor in stats), stats  # each actor loaded one model, once
    held = sorted(actor["loaded"][0] for actor in stats)
    assert held == sorted(["kekong-shapes", "kekong-shapes", str(other), str(other)])


def test_a_pool_without_ray_says_how_to_install_it(monkeypatch):
    import builtins

    from kekong.errors import KekongError
    from kekong.scale import ray_pool

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(KekongError, match=r"pip install 'kekong\[ray\]'"):
        ray_pool.import_ray()


@slow
def test_the_command_line_runs_a_batch_on_its_own_local_ray(tmp_path):
    from tests.test_cli import kekong

    write_manifest(tmp_path / "m.jsonl", [*requests(3), "not json"])
    done = kekong("batch", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "out"), "--ray", "--workers", "2",
                  "--no-c2pa")
    assert done.returncode == 1 and "Traceback" not in done.stderr  # line 4 failed, the others ran
    assert "(Ray: 2 workers)" in done.stdout and "3 done, 0 finished before, 1 failed" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {entry.get("worker") for entry in summary["lines"][:3]} <= {"w1", "w2"}
    again = kekong("batch", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "out"), "--ray", "--no-c2pa")
    assert "0 to run, 3 finished before" in again.stdout  # and no Ray started for nothing
