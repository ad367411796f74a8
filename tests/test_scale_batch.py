"""`kekong batch MANIFEST --out DIR` without Ray: one request per line, outputs named by line and
recipe hash, bad lines recorded (not fatal), a re-run skips finished lines, an interrupted batch
resumes where it stopped. The shipped kekong-shapes model at 64 px, 2 steps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kekong.io import save_image
from kekong.scale.manifest import read_manifest
from kekong.scale.run import Local, Options, run_batch
from tests.test_cli import kekong

SMALL = {"width": 64, "height": 64, "steps": 2}


def requests(count: int, **extra) -> list[dict]:
    colours = ["red", "blue", "green", "yellow", "purple", "orange"]
    return [{"prompt": f"a {colours[i % 6]} star", "seed": 10 + i, **SMALL, **extra} for i in range(count)]


def write_manifest(path, rows: list) -> None:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))


@pytest.fixture()
def folder(tmp_path):
    save_image(np.full((64, 64, 3), 255, np.uint8), tmp_path / "in" / "sketch.png")
    return tmp_path


LAYERS = {"metadata": True, "watermark": False, "c2pa": False}


def test_lines_become_named_outputs_and_bad_lines_are_recorded(folder):
    rows = [*requests(2),
            {"prompt": "a star from a sketch", **SMALL, "seed": 3, "controls": [{"module": "none",
                                                                               "image": "in/sketch.png"}]},
            "# a comment",
            "not json",
            {"prompt": "x", "steps": 9999},
            {"prompt": "y", **SMALL, "init_image": "in/missing.png"},
            {"prompt": "z", **SMALL, "init_image": "https://example.com/cat.png"}]
    write_manifest(folder / "m.jsonl", rows)
    done = kekong("batch", str(folder / "m.jsonl"), "--out", str(folder / "out"), "--no-c2pa")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads((folder / "out" / "summary.json").read_text())
    by_line = {entry["line"]: entry for entry in summary["lines"]}
    assert sorted(by_line) == [1, 2, 3, 5, 6, 7, 8]  # the comment line is no request
    assert [by_line[n]["status"] for n in (1, 2, 3)] == ["done"] * 3
    assert by_line[5]["error"].startswith("not JSON")
    assert "steps" in by_line[6]["error"] and "150" in by_line[6]["error"]
    assert by_line[7]["error"] == "init_image: cannot read missing.png"
    assert "URL inputs are off (pass --allow-urls)" in by_line[8]["error"]
    assert summary["counts"] == {"lines": 7, "done": 3, "resumed": 0, "failed": 4}
    for n in (1, 2, 3):
        [name] = by_line[n]["outputs"]
        assert name == f"{n:05d}-{by_line[n]['recipe_hash'][:12]}.png" and (folder / "out" / name).is_file()
        assert by_line[n]["seconds"] > 0 and by_line[n]["seeds"] == [rows[n - 1]["seed"]]
    fidelity = by_line[3]["fidelity"][0][0]  # the control unit was scored
    assert fidelity["module"] == "none" and fidelity["metric"]
    assert str(folder) not in (folder / "out" / "summary.json").read_text()  # no local path on record


def test_a_rerun_skips_finished_lines_and_runs_changed_ones(folder):
    write_manifest(folder / "m.jsonl", requests(3))
    options = Options(folder / "out", layers=LAYERS)
    first = run_batch(folder / "m.jsonl", options)
    assert first["counts"]["done"] == 3
    files = {p.name: p.stat().st_mtime_ns for p in (folder / "out").glob("*.png")}
    changed = requests(3)
    changed[1]["seed"] = 99
    write_manifest(folder / "m.jsonl", changed)
    second = run_batch(folder / "m.jsonl", options)
    assert [e["status"] for e in second["lines"]] == ["resumed", "done", "resumed"]
    assert second["lines"][0]["seeds"] == [10]  # a resumed line keeps what its run recorded
    kept = {p.name: p.stat().st_mtime_ns for p in (folder / "out").glob("*.png")}
    assert all(kept[name] == mtime for name, mtime in files.items())  # nothing finished was rewritten
    assert len(kept) == 4 and second["lines"][1]["outputs"][0] not in files


def test_the_hash_follows_the_image_bytes_not_its_path(folder, tmp_path_factory):
    row = {"prompt": "p", **SMALL, "init_image": "in/sketch.png"}
    write_manifest(folder / "m.jsonl", [row])
    [here] = read_manifest(folder / "m.jsonl")
    moved = tmp_path_factory.mktemp("moved")
    save_image(np.full((64, 64, 3), 255, np.uint8), moved / "in" / "sketch.png")
    write_manifest(moved / "m.jsonl", [row])
    [there] = read_manifest(moved / "m.jsonl")
    assert here.recipe_hash == there.recipe_hash
    save_image(np.full((64, 64, 3), 0, np.uint8), moved / "in" / "sketch.png")
    [other] = read_manifest(moved / "m.jsonl")
    assert other.recipe_hash != here.recipe_hash
    assert read_manifest(folder / "m.jsonl", {"suffix": ".jpg"})[0].recipe_hash != here.recipe_hash


def test_an_interrupted_batch_resumes_where_it_stopped(folder):
    write_manifest(folder / "m.jsonl", requests(4))
    options = Options(folder / "out", layers=LAYERS)
    seen = []

    def interrupt(entry):
        seen.append(entry["line"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C after two lines

    with pytest.raises(KeyboardInterrupt):
        run_batch(folder / "m.jsonl", options, Local(), progress=interrupt)
    on_record = json.loads((folder / "out" / "summary.json").read_text())
    assert [e["line"] for e in on_record["lines"]] == [1, 2]
    ran = []
    resumed = run_batch(folder / "m.jsonl", options, progress=lambda entry: ran.append(entry["line"]))
    assert ran == [3, 4]
    assert [e["status"] for e in resumed["lines"]] == ["resumed", "resumed", "done", "done"]


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere.jsonl", "--out", "o"], "nowhere.jsonl: cannot read the manifest"),
    (["empty.jsonl", "--out", "o"], "no request lines"),
    (["empty.jsonl", "--out", "o", "--format", "gif"], "--format gif"),
    (["empty.jsonl", "--out", "o", "--ray", "nonsense"], "Got unexpected extra argument"),
])
def test_batch_mistakes_are_named(tmp_path, args, message):
    (tmp_path / "empty.jsonl").write_text("\n# nothing\n")
    done = kekong("batch", *args, cwd=tmp_path)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_a_bare_ray_flag_means_a_local_ray():
    from kekong.cli.ray_options import bare_ray_flag

    assert bare_ray_flag(["batch", "m.jsonl", "--ray"]) == ["batch", "m.jsonl", "--ray", "local"]
    assert bare_ray_flag(["batch", "--ray", "m.jsonl"]) == ["batch", "--ray", "local", "m.jsonl"]
    assert bare_ray_flag(["batch", "--ray", "--workers", "2"]) == ["batch", "--ray", "local", "--workers", "2"]
    assert bare_ray_flag(["--ray", "auto"]) == ["--ray", "auto"]
    assert bare_ray_flag(["--ray", "ray://head:10001"]) == ["--ray", "ray://head:10001"]


def test_a_free_worker_takes_its_model_and_switches_only_for_a_backlog():
    from collections import deque

    from kekong.scale.bounds import WorkerBounds
    from kekong.scale.ray_pool import RayPool, Slot
    from kekong.scale.work import Task

    def queues(**counts):
        return {model: deque(Task(i, {}, [], "", model) for i in range(n)) for model, n in counts.items()}

    pool = RayPool(WorkerBounds(workers=4))
    a1, a2, b1, fresh = Slot("a1", None, "A"), Slot("a2", None, "A"), Slot("b1", None, "B"), Slot("new", None)
    pool.slots = [a1, a2, b1, fresh]
    assert pool.pick(a1, queues(A=1, B=5)).model == "A"  # its own model first
    assert pool.pick(fresh, queues(A=3, B=3)).model == "B"  # the model fewest workers hold
    assert pool.pick(b1, queues(A=2)) is None  # A's two holders run 2 lines in one round: b1 waits
    assert pool.pick(b1, queues(A=3)).model == "A"  # a backlog beyond one round: b1 switches
    assert pool.pick(a1, queues()) is None


def test_the_record_names_paths_relative_to_the_manifest_the_working_folder_or_home(monkeypatch, tmp_path):
    from pathlib import Path

    from kekong.scale.run import scrub_paths

    monkeypatch.setattr(Path, "home", lambda: Path("/home/ada"))
    monkeypatch.chdir(tmp_path)
    text = (f"cannot read {tmp_path}/jobs/in/a.png; cannot read {tmp_path}/b.png; "
            "cannot read /home/ada/photos/c.png; cannot read /srv/d.png")
    assert scrub_paths(text, [f"{tmp_path}/jobs", str(Path.cwd())]) == \
        "cannot read in/a.png; cannot read b.png; cannot read ~/photos/c.png; cannot read /srv/d.png"
