"""Issue 23 item 10: --version, the --control syntax hint, --json on a map-only detector, `kekong models`
once per model, maps at the size asked for, errors naming the CLI flag, pose render fitting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from kekong import __version__
from kekong.detect.openpose import PoseResult
from kekong.detect.openpose.keypoints import Person, empty
from kekong.io import load_image, save_image


def kekong(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kekong.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**os.environ, **(env or {})})


def test_version():
    done = kekong("--version")
    assert done.returncode == 0 and done.stdout == f"kekong {__version__}\n", done.stderr


def test_a_space_for_the_colon_in_control_gives_the_syntax_hint(tmp_path, astronaut):
    photo = save_image(astronaut, tmp_path / "star.png")
    done = kekong("generate", "a red star", "--control", "canny", str(photo), "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --control canny {photo}: join the detector and the image with a colon, "
                                   f"--control canny:{photo} (MODULE:PATH[,key=value…]; MODULE `none` for a "
                                   "ready map)")
    assert "Usage:" not in done.stderr and not (tmp_path / "x.png").exists()


def test_json_on_a_map_only_detector_is_refused_before_anything_is_written(tmp_path, astronaut):
    photo = save_image(astronaut, tmp_path / "photo.png")
    done = kekong("detect", str(photo), "-k", "canny", "-o", str(tmp_path / "map.png"),
                  "--json", str(tmp_path / "map.json"))
    assert done.returncode == 2
    assert "--json writes OpenPose JSON, which only " in done.stderr and "canny makes a map alone" in done.stderr
    assert all(f" {name}" in done.stderr for name in ("openpose,", "openpose_full,", "dw_openpose_full,"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_models_lists_each_model_once_with_its_kind_and_the_shipped_controlnet(tmp_path):
    folder = tmp_path / "ControlNet"
    folder.mkdir(parents=True)
    save_file({"input_hint_block.0.weight": torch.zeros(1)}, str(folder / "control_canny.safetensors"))
    save_file({"image_proj.proj.weight": torch.zeros(1), "ip_adapter.1.to_k_ip.weight": torch.zeros(1)},
              str(folder / "adapter_a.safetensors"))  # an IP-Adapter known by its keys, not its name
    torch.save({"image_proj": {}, "ip_adapter": {}}, folder / "ip-adapter_sd15.bin")
    save_file({"adapter.body.0.resnets.0.block1.weight": torch.zeros(1)}, str(folder / "t2i_sketch.safetensors"))
    done = kekong("models", "--json", env={"KEKONG_MODELS_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    rows = {(row["name"], row["role"], row["kind"]) for row in json.loads(done.stdout)}
    assert len(rows) == len(json.loads(done.stdout))
    assert rows == {("kekong-shapes", "base", "base model"),
                    ("kekong-shapes-outline", "controlnet", "ControlNet"),
                    ("control_canny", "controlnet", "ControlNet"),
                    ("adapter_a", "ipadapter", "IP-Adapter"),
                    ("ip-adapter_sd15", "ipadapter", "IP-Adapter"),
                    ("t2i_sketch", "controlnet", "T2I-Adapter")}
    text = kekong("models", env={"KEKONG_MODELS_DIR": str(tmp_path)}).stdout
    assert sum("ip-adapter_sd15" in line for line in text.splitlines()) == 1
    assert any(line.startswith("controlnet t2i_sketch [") and "]  T2I-Adapter  hash" in line
               for line in text.splitlines()), text


def test_maps_come_out_at_the_size_asked_for(tmp_path, chelsea):
    photo = save_image(chelsea, tmp_path / "cat.png")  # 451x300: the processor's map is 770x512
    for kind in ("canny", "lineart_standard", "seg_person"):
        done = kekong("detect", str(photo), "-k", kind, "--width", "768", "--height", "512", "-o",
                      str(tmp_path / f"{kind}.png"))
        assert done.returncode == 0, done.stderr
        assert Image.open(tmp_path / f"{kind}.png").size == (768, 512), kind
    done = kekong("detect", str(photo), "-k", "canny", "-o", str(tmp_path / "free.png"))  # no size asked
    assert Image.open(tmp_path / "free.png").size == (770, 512)


def test_a_fitted_pose_map_and_its_json_agree(tmp_path, astronaut):
    photo = save_image(astronaut, tmp_path / "astronaut.png")
    done = kekong("detect", str(photo), "-k", "openpose", "--width", "768", "--height", "512", "--resize-mode",
                  "fill", "-o", str(tmp_path / "pose.png"), "--json", str(tmp_path / "pose.json"))
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "pose.json").read_text())
    assert (data["canvas_width"], data["canvas_height"]) == (768, 512)
    assert kekong("pose", "render", str(tmp_path / "pose.json"), "-o", str(tmp_path / "again.png")).returncode == 0
    drawn, again = load_image(tmp_path / "pose.png"), load_image(tmp_path / "again.png")
    assert drawn.shape == again.shape == (512, 768, 3)
    assert np.mean(np.any(drawn != again, axis=2)) < 0.01  # the same skeleton, up to resampling


def _columns(image: np.ndarray) -> tuple[int, int]:
    lit = np.flatnonzero(image.max(axis=(0, 2)) > 0)
    return int(lit[0]), int(lit[-1])


@pytest.fixture
def square_pose(tmp_path, astronaut):
    photo = save_image(astronaut, tmp_path / "astronaut.png")
    assert kekong("detect", str(photo), "-k", "openpose", "-o", str(tmp_path / "square.png"),
                  "--json", str(tmp_path / "pose.json")).returncode == 0
    return tmp_path / "pose.json", load_image(tmp_path / "square.png")


@pytest.mark.parametrize(("mode", "scale", "shift"), [("fill", 1.0, 128), ("just", 1.5, 0), ("crop", 1.5, -128)])
def test_pose_render_on_another_shape_fits_pads_or_stretches_as_the_mode_says(tmp_path, square_pose, mode, scale,
                                                                             shift):
    pose_json, square = square_pose
    args = ["--width", "768", "--height", "512"] if mode != "crop" else ["--width", "512", "--height", "768"]
    done = kekong("pose", "render", str(pose_json), *args, "--resize-mode", mode, "-o", str(tmp_path / "r.png"))
    assert done.returncode == 0, done.stderr
    rendered = load_image(tmp_path / "r.png")
    left, right = _columns(square)
    got_left, got_right = _columns(rendered)
    if mode == "crop":  # 512x768 covered by 768x768, 128 px cut each side: the right end lands 1.5x - 128 in
        assert abs(got_right - (scale * right + shift)) < 6  # (stretching would keep it at `right`)
        return
    assert abs((got_right - got_left) - scale * (right - left)) < 8  # fill keeps the width: not stretched
    assert abs(got_left - (scale * left + shift)) < 6


def test_pose_render_with_one_side_keeps_the_aspect_ratio(tmp_path, square_pose):
    pose_json, _ = square_pose
    assert kekong("pose", "render", str(pose_json), "--width", "768", "-o", str(tmp_path / "r.png")).returncode == 0
    assert Image.open(tmp_path / "r.png").size == (768, 768)


def test_cropping_a_pose_drops_the_points_cut_away():
    body = empty(18)
    body[0] = (0.05, 0.5, 1.0)  # near the left edge: cut by a crop to a tall canvas
    body[1] = (0.5, 0.5, 1.0)
    moved = PoseResult([Person(body=body)], 512, 512).fitted(256, 512, "crop").people[0].body
    assert np.isnan(moved[0, 0]) and np.allclose(moved[1, :2], (0.5, 0.5))
    padded = PoseResult([Person(body=body)], 512, 512).fitted(1024, 512, "fill").people[0].body
    assert np.allclose(padded[0, :2], (0.25 + 0.05 / 2, 0.5)) and np.allclose(padded[1, :2], (0.5, 0.5))


def test_missing_models_are_named_with_the_cli_flag(tmp_path, astronaut):
    photo = save_image(astronaut, tmp_path / "photo.png")
    env = {"HF_HUB_CACHE": str(tmp_path / "hf"), "KEKONG_MODELS_DIR": str(tmp_path / "models")}
    done = kekong("prompt", "describe", str(photo), "--mode", "fast", env=env)
    assert done.returncode == 2 and "pass --clip-model " in done.stderr, done.stderr
    done = kekong("detect", str(photo), "-k", "depth_midas", "-o", str(tmp_path / "d.png"), env=env)
    assert done.returncode == 2 and "pass -p model=" in done.stderr, done.stderr
