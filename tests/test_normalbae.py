"""NormalBAE surface normals (`normal_bae`): the network has the annotator checkpoint's layout
(`scannet.pt`: wrapped in `model`, `module.` prefixes), outputs unit normals with a positive
confidence, and the map is those normals in normalbae's colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned.normalbae import NormalBae
from kekong.errors import MissingWeightsError


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def network() -> NormalBae:
    torch.manual_seed(0)
    return NormalBae().eval()


def test_the_network_matches_the_released_checkpoint_and_outputs_unit_normals(network):
    # EfficientNet-B5 (30.4 M) + decoder: 72.4 M parameters, i.e. scannet.pt's 291 MB in float32
    assert sum(p.numel() for p in network.parameters()) == 72_422_336
    keys = network.state_dict().keys()
    assert "encoder.original_model.conv_stem.weight" in keys and "decoder.out_conv_res1.6.bias" in keys
    with torch.inference_mode():
        out = network(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 4, 64, 96)  # full resolution: normal (3) + concentration κ
    assert torch.allclose(out[:, :3].norm(dim=1), torch.ones(1, 64, 96), atol=1e-4)
    assert (out[:, 3] > 0).all()


def test_the_annotator_checkpoint_layout_loads_and_runs(tmp_path, astronaut, network):
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    torch.save({"model": {f"module.{k}": v for k, v in network.state_dict().items()}}, folder / "scannet.pt")
    normals = run("normal_bae", astronaut, res=128).image
    assert normals.shape == (128, 128, 3) and normals.dtype == np.uint8
    vectors = normals.astype(np.float32) / 255 * 2 - 1  # colours back to normals
    assert np.allclose(np.linalg.norm(vectors, axis=2), 1.0, atol=0.03)


def test_without_weights_the_error_names_the_file_and_the_stand_in(astronaut):
    with pytest.raises(MissingWeightsError, match=r"scannet\.pt.*normal_from_depth"):
        run("normal_bae", astronaut)
