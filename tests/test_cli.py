"""`kekong detect`, `kekong pose render`, `kekong demo`: outputs, and errors without tracebacks."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kekong.io import load_image, load_image_rgba, save_image


def kekong(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kekong.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture()
def photo(tmp_path, astronaut):
    return save_image(astronaut, tmp_path / "astronaut.png")


def test_detect_writes_the_map_and_pose_json(tmp_path, photo):
    done = kekong("detect", str(photo), "-k", "openpose", "-o", str(tmp_path / "pose.png"),
                  "--json", str(tmp_path / "pose.json"))
    assert done.returncode == 0, done.stderr
    assert load_image(tmp_path / "pose.png").shape == (512, 512, 3)
    data = json.loads((tmp_path / "pose.json").read_text())
    assert len(data["people"]) == 1
    rendered = kekong("pose", "render", str(tmp_path / "pose.json"), "-o", str(tmp_path / "r.png"))
    assert rendered.returncode == 0, rendered.stderr
    assert np.array_equal(load_image(tmp_path / "r.png"), load_image(tmp_path / "pose.png"))


def test_detect_params_pixel_perfect_and_fit(tmp_path, photo):
    out = tmp_path / "canny.png"
    done = kekong("detect", str(photo), "-k", "canny", "-p", "low_threshold=50", "--pixel-perfect",
                  "--width", "768", "--height", "512", "--fit", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (768, 512)


def test_inpaint_mask_from_transparency(tmp_path, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[100:200, 100:200, 3] = 0
    source = save_image(rgba, tmp_path / "holed.png")
    out = tmp_path / "inpaint.png"
    assert kekong("detect", str(source), "-k", "inpaint_only", "-o", str(out)).returncode == 0
    assert load_image_rgba(out)[150, 150, 3] == 0 and load_image_rgba(out)[300, 300, 3] == 255


@pytest.mark.parametrize("args, message", [
    (["detect", "missing.png", "-k", "canny", "-o", "x.png"], "missing.png: no such file"),
    (["detect", "{junk}", "-k", "canny", "-o", "x.png"], "not a readable image"),
    (["detect", "{photo}", "-k", "nope", "-o", "x.png"], "unknown detector 'nope'"),
    (["detect", "{photo}", "-k", "canny", "-p", "low_threshold", "-o", "x.png"], "key=value"),
    (["detect", "{photo}", "-k", "softedge_hed", "-o", "x.png"], "ControlNetHED.pth"),
    (["detect", "{photo}", "-k", "canny", "--resize-mode", "zoom", "-o", "x.png"], "resize mode"),
    (["pose", "render", "{junk}", "-o", "x.png"], "pose JSON is malformed"),
])
def test_bad_input_is_one_clear_line(tmp_path, photo, args, message, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    junk = tmp_path / "junk.png"
    junk.write_text("not an image {")
    args = [a.format(photo=photo, junk=junk) for a in args]
    done = kekong(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_list_shows_every_detector_with_params(tmp_path):
    done = kekong("detect", "--list", "--as-json")
    rows = {row["name"]: row for row in json.loads(done.stdout)["detectors"]}
    assert {"canny", "openpose_full", "lineart_standard", "softedge_hed", "depth_midas",
            "seg_person", "inpaint_only", "mlsd_lsd", "shuffle"} <= set(rows)
    canny = {p["name"]: p for p in rows["canny"]["params"]}
    assert canny["low_threshold"] == {"name": "low_threshold", "default": 100, "min": 1,
                                      "max": 255, "choices": None,
                                      "help": "hysteresis low threshold"}
    assert rows["softedge_hed"]["needs_weights"] == "ControlNetHED.pth"
    assert "control_v11p_sd15_openpose" in rows["openpose"]["feeds"]


def test_demo_generates_from_a_sketch_and_writes_every_offline_map(tmp_path):
    done = kekong("demo", "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    written = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"input.png", "canny.png", "openpose_full.png", "openpose_full.json", "seg_person.png"} <= written
    assert {"sketch.png", "generated-0.png", "generated-3.png"} <= written
    stamped = Image.open(tmp_path / "demo" / "generated-0.png").text
    assert "Model: kekong-shapes" in stamped["parameters"] and "kekong-recipe" in stamped
