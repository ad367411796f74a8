"""`kekong generate`, `kekong replay`, `kekong models` from the command line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kekong.cli.generate import parse_control, parse_lora
from kekong.errors import ParameterError
from kekong.io import save_image
from tests.test_cli import kekong
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn")
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[20:44, 20:44] = 0
    save_image(sketch, root / "sketch.png")
    return root


def test_control_flag_syntax():
    unit = parse_control("canny:photo.png,low_threshold=50,weight=0.7,start=0.1,mode=2,resize=fill,model=m")
    assert unit == {"module": "canny", "image": "photo.png", "params": {"low_threshold": "50"}, "weight": "0.7",
                    "start": "0.1", "mode": "2", "resize_mode": "fill", "model": "m"}
    with pytest.raises(ParameterError, match="MODULE:PATH"):
        parse_control("canny")
    assert parse_lora("style.safetensors:0.6") == {"path": "style.safetensors", "weight": 0.6}
    assert parse_lora("style.safetensors") == {"path": "style.safetensors", "weight": 1.0}


def test_generate_then_replay(models, tmp_path):
    out = tmp_path / "star.png"
    done = kekong("generate", "a red star", "--model", str(models / "base"), "-W", "64", "-H", "64",
                  "--steps", "3", "--seed", "5", "-c", f"scribble_sketch:{models / 'sketch.png'},model={models / 'cn'}",
                  "-o", str(out), "--save-maps")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "star-control-0.png").is_file()
    assert "Module: scribble_sketch" in Image.open(out).text["parameters"]
    again = kekong("replay", str(out), "-o", str(tmp_path / "again.png"))
    assert again.returncode == 0, again.stderr
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "again.png")))


@pytest.mark.parametrize(("args", "message"), [
    (["--sampler", "Euler b"], "unknown sampler 'Euler b'"),
    (["-W", "100"], "width: 100 is not a multiple of 8"),
    (["-c", "cany:x.png"], "did you mean: canny"),
    (["-c", "none:x.png,start=0.8,end=0.2"], "guidance start 0.8 is after guidance end 0.2"),
    (["--mask", "m.png"], "a mask needs an init image"),
    (["--model", "nowhere/model"], "base model 'nowhere/model' not found"),
    (["-o", "out.gif"], "written as .png, .jpg or .webp"),
])
def test_bad_requests_get_one_line_errors(models, tmp_path, args, message):
    done = kekong("generate", "x", *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.png"))


def test_models_lists_the_models_folder(models, tmp_path, monkeypatch):
    import subprocess
    import sys

    (tmp_path / "ControlNet").mkdir()
    (tmp_path / "ControlNet" / "cn").symlink_to(models / "cn", target_is_directory=True)
    done = subprocess.run([sys.executable, "-m", "kekong.cli", "models"], capture_output=True, text=True,
                          env={**__import__("os").environ, "KEKONG_MODELS_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "controlnet" in done.stdout and " cn " in done.stdout
