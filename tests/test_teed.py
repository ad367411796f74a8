"""TEED (softedge_teed) and Anyline (softedge_anyline): the network has the released checkpoints' keys and
shapes, the map is the sigmoid of the mean of its four outputs on the raw 0..255 picture, Safe Steps
quantise it, and Anyline writes lineart_standard's intensity-1 groups over MTEED's map as the extension's
uint8 combination does."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from kekong.detect import run
from kekong.detect.learned import teed
from kekong.detect.learned.teed import TED
from kekong.errors import KekongError, MissingWeightsError
from kekong.io import save_image

PICTURE = np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)
WIDE = np.random.default_rng(6).integers(0, 256, (64, 128, 3), dtype=np.uint8)  # multiples of 64: no padding


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # huggingface_hub reads the variable once


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return TED().state_dict()


def _save(tmp_path, name: str, state: dict) -> None:
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / name)


def test_the_network_has_the_released_checkpoints_keys_and_shapes():
    shapes = {key: tuple(value.shape) for key, value in TED().state_dict().items()}
    assert sum(p.numel() for p in TED().parameters()) == 58_910  # the paper's "58K parameters"
    assert shapes["block_1.conv1.weight"] == (16, 3, 3, 3) and shapes["block_2.conv2.weight"] == (32, 32, 3, 3)
    assert shapes["dblock_3.denselayer1.conv1.weight"] == (48, 32, 3, 3)
    assert shapes["dblock_3.denselayer1.conv2.weight"] == (48, 48, 3, 3)
    assert shapes["side_1.conv.weight"] == (32, 16, 1, 1) and shapes["pre_dense_3.conv.weight"] == (48, 32, 1, 1)
    assert shapes["up_block_1.features.2.weight"] == (1, 1, 2, 2)  # ConvTranspose2d: (in, out, k, k)
    assert shapes["up_block_3.features.2.weight"] == (16, 16, 4, 4)
    assert shapes["up_block_3.features.5.weight"] == (1, 1, 4, 4)
    assert shapes["block_cat.DWconv1.weight"] == (24, 1, 3, 3) and shapes["block_cat.DWconv2.weight"] == (24, 1, 3, 3)
    with torch.inference_mode():
        outputs = TED()(torch.rand(1, 3, 64, 96) * 255)
    assert [tuple(o.shape) for o in outputs] == [(1, 1, 64, 96)] * 4  # three scales and the fusion, full size


def test_the_map_is_the_sigmoid_of_the_mean_of_the_four_outputs_on_the_raw_picture(tmp_path):
    state = _state()
    _save(tmp_path, "7_model.pth", state)
    net = TED().eval()
    net.load_state_dict(state)
    with torch.inference_mode():
        logits = torch.stack(net(torch.from_numpy(WIDE.astype(np.float32)).permute(2, 0, 1)[None])).mean(0)
    expected = (torch.sigmoid(logits.double())[0, 0].numpy() * 255).clip(0, 255).astype(np.uint8)
    soft = run("softedge_teed", WIDE, res=64, safe_steps=0).image
    assert soft.shape == (64, 128, 3) and soft.dtype == np.uint8
    assert np.abs(soft[:, :, 0].astype(int) - expected).max() <= 1
    assert len(np.unique(run("softedge_teed", PICTURE, res=64).image)) <= 3  # Safe Steps 2: 0, 127, 255
    assert len(np.unique(run("softedge_teed", PICTURE, res=64, safe_steps=5).image)) <= 6
    assert len(np.unique(soft)) > 6


def test_the_qinglong_path_is_found_in_the_hugging_face_cache(tmp_path):
    snapshot = tmp_path / "hf" / "models--bdsqlsz--qinglong_controlnet-lllite" / "snapshots" / "abc"
    (snapshot / "Annotators").mkdir(parents=True)
    torch.save(_state(), snapshot / "Annotators" / "7_model.pth")
    (tmp_path / "hf" / "models--bdsqlsz--qinglong_controlnet-lllite" / "refs").mkdir()
    (tmp_path / "hf" / "models--bdsqlsz--qinglong_controlnet-lllite" / "refs" / "main").write_text("abc")
    assert run("softedge_teed", PICTURE, res=64).image.shape == (64, 96, 3)


def test_without_weights_the_error_names_the_file_the_repo_and_the_stand_in():
    with pytest.raises(MissingWeightsError, match=r"Annotators/7_model\.pth.*qinglong_controlnet-lllite.*"
                                                  r"annotators/7_model\.pth.*softedge_dog"):
        run("softedge_teed", PICTURE, res=64)
    with pytest.raises(MissingWeightsError, match=r"Anyline/MTEED\.pth.*TheMistoAI/MistoLine.*lineart_standard"):
        run("softedge_anyline", PICTURE, res=64)


def test_a_file_that_does_not_fit_is_one_line_naming_it_from_the_cli(tmp_path):
    state = _state()
    state["block_cat.DWconv3.weight"] = state.pop("block_cat.DWconv2.weight")
    _save(tmp_path, "7_model.pth", state)
    with pytest.raises(KekongError, match=r"7_model\.pth: does not fit .*DWconv2"):
        run("softedge_teed", PICTURE, res=64)
    photo = save_image(PICTURE, tmp_path / "photo.png")
    done = subprocess.run([sys.executable, "-m", "kekong.cli", "detect", str(photo), "-k", "softedge_teed",
                           "-o", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "does not fit" in done.stderr and "Traceback" not in done.stderr


def test_anyline_keeps_lineart_groups_of_intensity_one_of_twelve_pixels_or_more(monkeypatch):
    lines = np.zeros((64, 96), np.uint8)
    lines[4:7, 4:8] = 1  # 12 pixels: kept
    lines[20:23, 20:23] = 1  # 9 pixels: too small
    lines[40:50, 40:50] = 200  # strong lines: outside the extension's 0..1 mask
    lines[30, 60:80] = 1  # a 20-pixel row
    lines[31, 81] = 1  # touches the row's end only diagonally: its own group of 1
    monkeypatch.setattr(teed, "lineart_standard", lambda image: lines)
    kept = teed.faint_lines(PICTURE)
    expected = np.zeros((64, 96), bool)
    expected[4:7, 4:8] = expected[30, 60:80] = True
    assert np.array_equal(kept, expected)


def test_anyline_writes_the_faint_lines_as_one_over_mteeds_map(tmp_path, monkeypatch):
    _save(tmp_path, "MTEED.pth", _state(1))
    _save(tmp_path, "7_model.pth", _state(1))
    faint = np.zeros((64, 128), bool)
    faint[10:20, 10:20] = True
    monkeypatch.setattr(teed, "faint_lines", lambda image: faint)
    anyline = run("softedge_anyline", WIDE, res=64, safe_steps=0).image
    edges = run("softedge_teed", WIDE, res=64, safe_steps=0).image  # the same network and weights
    assert (anyline[faint] == 1).all() and np.array_equal(anyline[~faint], edges[~faint])


def test_the_api_runs_anyline_under_the_extensions_name(tmp_path):
    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, decode

    _save(tmp_path, "MTEED.pth", _state(2))
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "server", ui=False))) as client:
        answer = client.post("/controlnet/detect", json={"controlnet_module": "softedge_anyline",
                                                         "controlnet_input_images": [b64_png(PICTURE)],
                                                         "controlnet_processor_res": 64,
                                                         "controlnet_threshold_a": 0})
    assert answer.status_code == 200, answer.text
    image = np.asarray(decode(answer.json()["images"][0]).convert("RGB"))
    assert image.shape == (64, 96, 3) and len(np.unique(image)) > 6  # Safe Steps 0: not quantised


def test_an_a1111_unit_without_a_resolution_runs_anyline_at_the_extensions_1280():
    from kekong.server import a1111_request as a1111
    from kekong.server.inputs import NO_URLS
    from tests.server_helpers import b64_png

    def unit(module: str, res: float):
        translated = a1111.Translated({})
        fields = a1111.control_unit({"enabled": True, "module": module, "model": "None", "image": b64_png(PICTURE),
                                     "processor_res": res}, "args[0]", NO_URLS, translated)
        return fields.get("res"), translated.warnings

    assert unit("softedge_anyline", -1) == (1280, [])
    assert unit("softedge_anyline", 640) == (640, [])
    res, warnings = unit("softedge_anyline", 4096)
    assert res == 1280 and "used 1280 (as the extension)" in warnings[0]
    assert unit("softedge_teed", -1) == (None, [])  # its default is kekong's too: 512


def test_kekong_detect_without_res_uses_the_extensions_default_resolution(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import kekong.detect
    from kekong.cli import app
    from kekong.detect.extension_names import default_resolution
    from kekong.detect.registry import DetectResult

    assert default_resolution("softedge_anyline") == 1280 and default_resolution("softedge_teed") == 512
    assert default_resolution("depth_midas") == 512 and default_resolution("inpaint_only") == 512  # no slider
    asked = []

    def fake_run(name, image, res, **kwargs):
        asked.append((name, res))
        return DetectResult(np.zeros((8, 8, 3), np.uint8))

    monkeypatch.setattr(kekong.detect, "run", fake_run)
    photo = save_image(PICTURE, tmp_path / "photo.png")
    for extra in ([], ["--res", "640"]):
        done = CliRunner().invoke(app, ["detect", str(photo), "-k", "softedge_anyline", "-o", str(tmp_path / "m.png"),
                                        *extra])
        assert done.exit_code == 0, done.output
    assert asked == [("softedge_anyline", 1280), ("softedge_anyline", 640)]
