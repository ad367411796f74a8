"""`--ray` beyond `kekong batch`, on a local Ray cluster (`num_cpus=2`, one for the module): a grid's
cells, a video's frames and generate's --prompts-file jobs go through the batch path onto two actors
and give the same bytes as the run in one process (same seeds, one torch thread each); the jobs'
summary makes a re-run skip what is finished. Watermark and C2PA off: they carry a random id and a
signing time."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch

from kekong.provenance.stamp import Layers
from kekong.scale.bounds import WorkerBounds

ray = pytest.importorskip("ray")
LAYERS = Layers(metadata=True, watermark=False, c2pa=False)
TWO = WorkerBounds(workers=2, cpus_per_worker=1.0)
FIELDS = {"prompt": "a red star", "width": 64, "height": 64, "steps": 2, "seed": 11}


@pytest.fixture(scope="module")
def cluster():
    from kekong.scale.ray_pool import connect

    handler = signal.getsignal(signal.SIGTERM)  # ray.init installs its own and shutdown leaves it
    assert connect(None, cpus=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the local runs as each actor runs (the recipe records the thread count)
    yield
    torch.set_num_threads(threads)
    ray.shutdown()
    signal.signal(signal.SIGTERM, handler)


def files(folder, pattern: str = "*.png") -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob(pattern))}


def test_a_grid_on_two_actors_is_the_grid_made_in_one_process(cluster, tmp_path):
    from kekong.cli.batch_path import grid

    axes = ["CFG Scale:3,7", "Prompt S/R:red,blue"]
    grid(dict(FIELDS), axes, tmp_path / "alone", LAYERS, True)  # no Ray
    grid(dict(FIELDS), axes, tmp_path / "ray", LAYERS, True, "local", TWO)
    alone, spread = files(tmp_path / "alone"), files(tmp_path / "ray")
    assert sorted(spread) == ["cell-0-0-0.png", "cell-0-1-0.png", "cell-1-0-0.png", "cell-1-1-0.png", "grid.png"]
    assert alone == spread  # the cells and the stamped sheet, byte for byte
    assert (tmp_path / "alone" / "grid.json").read_bytes() == (tmp_path / "ray" / "grid.json").read_bytes()


def test_video_frames_on_two_actors_are_the_frames_made_in_one_process(cluster, tmp_path):
    from kekong.scale.frames import run_frames
    from kekong.scale.ray_pool import RayPool
    from kekong.video import run as video_run
    from kekong.video.spec import build_settings
    from tests.test_video_run import source_folder

    pytest.importorskip("av")
    source_folder(tmp_path / "src", count=3)
    settings = build_settings(fps=8, flow_strength=0, same_noise=False)
    fields = {**FIELDS, "controls": [{"module": "canny", "res": 64}]}
    alone = video_run.plan(tmp_path / "src", tmp_path / "alone.mp4", settings, fields)
    video_run.run(alone)
    spread = video_run.plan(tmp_path / "src", tmp_path / "ray.mp4", settings, fields)
    seen = []
    with RayPool(TWO) as pool:
        run_frames(spread, pool, on_frame=seen.append)
        assert {s["name"] for s in pool.stats()} == {"w1", "w2"}
    assert sorted(d.done for d in seen) == [1, 2, 3]
    made = files(spread.folder)
    assert sorted(made) == ["000000.png", "000001.png", "000002.png"] and made == files(alone.folder)
    assert len({bytes(v) for v in made.values()}) == 3  # fresh noise per frame: three different frames
    assert json.loads((spread.folder / "recipe.json").read_text())["request"]["seed"] == 11
    with pytest.raises(Exception, match="--flow-strength 0"):  # a flow start chains the frames: refused
        run_frames(video_run.plan(tmp_path / "src", tmp_path / "f.mp4", build_settings(fps=8), {**fields, "steps": 4}),
                   pool)


def test_prompts_file_jobs_on_ray_are_named_as_locally_and_a_rerun_skips_them(cluster, tmp_path, capsys):
    from kekong.cli.batch_path import batch_jobs
    from kekong.io import save_image

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red star\na blue circle\n")
    save_image(np.full((64, 64, 3), 255, np.uint8), tmp_path / "sketch.png")
    fields = {**FIELDS, "controls": [{"module": "scribble_sketch", "image": str(tmp_path / "sketch.png")}]}
    batch_jobs(dict(fields), prompts, None, "init", tmp_path / "alone", ".png", False, LAYERS)  # no Ray
    batch_jobs(dict(fields), prompts, None, "init", tmp_path / "ray", ".png", False, LAYERS, True, "local", TWO)
    spread = files(tmp_path / "ray")
    assert sorted(spread) == ["00000-a-red-star.png", "00001-a-blue-circle.png"]
    assert spread == files(tmp_path / "alone")  # the names and the bytes of the run in one process
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert [e["status"] for e in summary["lines"]] == ["done", "done"] and summary["lines"][0]["fidelity"]
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.png")}
    capsys.readouterr()
    batch_jobs(dict(fields), prompts, None, "init", tmp_path / "ray", ".png", False, LAYERS, True, "local", TWO)
    assert "0 to run, 2 finished before" in capsys.readouterr().out
    prompts.write_text("a red star\na green circle\n")  # job 2 changed: only it runs again
    batch_jobs(dict(fields), prompts, None, "init", tmp_path / "ray", ".png", False, LAYERS, True, "local", TWO)
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert [e["status"] for e in summary["lines"]] == ["resumed", "done"]
    assert (tmp_path / "ray" / "00000-a-red-star.png").stat().st_mtime_ns == before["00000-a-red-star.png"]
    assert (tmp_path / "ray" / "00001-a-green-circle.png").is_file()
