"""M-LSD straight lines (`mlsd`): the network loads the annotator's checkpoint layout, and its
output decodes into segments as the annotator decodes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned.mlsd import MLSDLarge, segments
from kekong.errors import MissingWeightsError


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


class Painted(torch.nn.Module):
    """Stands in for the network: one confident centre at (x 20, y 10) of the half-size map, whose
    segment runs 5 cells left and right of it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.full((1, 9, x.shape[2] // 2, x.shape[3] // 2), -10.0)
        out[0, 0, 10, 20] = 10.0
        out[0, 1:5, 10, 20] = torch.tensor([-5.0, 0.0, 5.0, 0.0])
        return out


def test_centres_and_displacements_decode_into_segments():
    lines = segments(Painted(), np.zeros((64, 96, 3), np.uint8), score_threshold=0.1, distance_threshold=2.0)
    assert lines.tolist() == [[30.0, 20.0, 50.0, 20.0]]  # ×2: back to input pixels
    assert len(segments(Painted(), np.zeros((64, 96, 3), np.uint8), distance_threshold=20.0)) == 0  # too short


def test_the_annotator_checkpoint_loads_and_draws_lines(tmp_path, coffee):
    torch.manual_seed(0)
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    torch.save(MLSDLarge().state_dict(), folder / "mlsd_large_512_fp32.pth")
    lines = run("mlsd", coffee, res=128, value_threshold=0.01, distance_threshold=0.01).image
    assert lines.shape[:2] == (128, 192) and set(np.unique(lines)) <= {0, 255}


def test_without_weights_the_error_names_the_file_and_the_stand_in(astronaut):
    with pytest.raises(MissingWeightsError, match=r"mlsd_large_512_fp32\.pth.*mlsd_lsd"):
        run("mlsd", astronaut)


def test_the_network_has_the_papers_size():
    assert sum(p.numel() for p in MLSDLarge().parameters()) == 1_533_680  # "1.5 M parameters"
