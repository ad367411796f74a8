"""Batch jobs from the command line: a folder of images (as init or control images) and a prompts
file, each output named after its job and stamped, summary.json recording each, a re-run skipping
what is finished; a bad input is reported and skipped, and the other jobs still run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kekong.io import save_image
from kekong.provenance.infotext import parse_infotext
from kekong.provenance.stamp import read_png_text
from tests.test_cli import kekong
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn")
    photos = root / "photos"
    for name, value in (("a", 40), ("b", 200)):
        save_image(np.full((64, 64, 3), value, np.uint8), photos / f"{name}.png")
    (root / "prompts.txt").write_text("a red star\n\n# a comment\na blue circle\n")
    return root


def common(root):
    return ["--model", str(root / "base"), "-W", "64", "-H", "64", "--steps", "2", "--seed", "5", "--no-c2pa"]


def test_each_folder_image_is_an_init_image_and_names_its_output(setup, tmp_path):
    done = kekong("generate", "a cat", *common(setup), "--batch-dir", str(setup / "photos"), "--strength", "0.5",
                  "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["a.png", "b.png"]
    assert "Denoising strength: 0.5" in read_png_text(tmp_path / "a.png")["parameters"]


def test_prompts_file_times_control_images(setup, tmp_path):
    done = kekong("generate", *common(setup), "-c", f"none:-,model={setup / 'cn'}", "--batch-as", "control",
                  "--batch-dir", str(setup / "photos"), "--prompts-file", str(setup / "prompts.txt"),
                  "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["00000-a-red-star-a.png", "00000-a-red-star-b.png",
                                                             "00001-a-blue-circle-a.png",
                                                             "00001-a-blue-circle-b.png"]
    prompt, _, params = parse_infotext(read_png_text(tmp_path / "00001-a-blue-circle-b.png")["parameters"])
    assert prompt == "a blue circle" and "ControlNet 0" in params


def test_a_rerun_skips_the_finished_jobs_and_runs_a_changed_one(setup, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red star\na blue circle\n")
    run = ("generate", *common(setup), "--prompts-file", str(prompts), "--out-dir", str(tmp_path / "out"))
    assert kekong(*run).returncode == 0
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png")}
    assert sorted(first) == ["00000-a-red-star.png", "00001-a-blue-circle.png"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(e["status"], e["outputs"]) for e in summary["lines"]] == [("done", ["00000-a-red-star.png"]),
                                                                        ("done", ["00001-a-blue-circle.png"])]
    prompts.write_text("a red star\na green circle\n")  # job 2 changed: only it runs again
    again = kekong(*run)
    assert again.returncode == 0 and "2 jobs — 1 to run, 1 finished before" in again.stdout
    assert (tmp_path / "out" / "00000-a-red-star.png").stat().st_mtime_ns == first["00000-a-red-star.png"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["status"] for e in summary["lines"]] == ["resumed", "done"]
    assert (tmp_path / "out" / "00001-a-green-circle.png").is_file()


def test_a_bad_image_is_skipped_and_the_rest_still_run(setup, tmp_path):
    folder = tmp_path / "in"
    save_image(np.full((64, 64, 3), 90, np.uint8), folder / "good.png")
    (folder / "broken.png").write_bytes(b"not a png")
    done = kekong("generate", "x", *common(setup), "--batch-dir", str(folder), "--out-dir", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "skipped broken" in done.stderr and "1 of 2 jobs skipped" in done.stderr
    assert [p.name for p in (tmp_path / "out").glob("*.png")] == ["good.png"]


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-dir", "nowhere", "--out-dir", "o"], "nowhere: not a folder"),
    (["--batch-dir", "."], "need --out-dir"),
    (["--batch-as", "control", "--batch-dir", ".", "--out-dir", "o"], "no control unit 0"),
])
def test_batch_mistakes_are_named(setup, tmp_path, args, message):
    save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "x.png")
    done = kekong("generate", "x", *common(setup), *args, cwd=tmp_path)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("prompt", "name"), [
    ("a blue circle", "a-blue-circle"),
    ("(masterpiece:1.2), a girl <lora:style:0.8>, [rain]", "masterpiece-a-girl-rain"),
    ("a very long prompt about a knight fighting a dragon in a castle at night", "a-very-long-prompt-about-a-knight"),
    ("一个女孩在雨夜里走路", "一个女孩在雨夜里走路"),
    ("((( )))", ""),
])
def test_prompt_lines_become_file_names(prompt, name):
    from kekong.generation.batch import slug

    assert slug(prompt) == name and len(slug(prompt)) <= 40
