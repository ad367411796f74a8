"""KEKONG_OFFLOAD=text-encoders: the text encoders' weights live on disk between uses; the image
is the same."""

from __future__ import annotations

import numpy as np
import pytest

import kekong
from kekong.errors import ParameterError
from kekong.models import offload
from tests.tiny_models import build_tiny_base


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return str(build_tiny_base(tmp_path_factory.mktemp("offload") / "sdxl", sdxl=True))


def test_offloaded_text_encoders_give_the_same_image(base, tmp_path, monkeypatch):
    request = {"prompt": "a red house", "model": base, "steps": 3, "sampler": "Euler", "width": 64, "height": 64,
               "seed": 9}
    kept = kekong.generate(**request)[0].image
    monkeypatch.setenv("KEKONG_OFFLOAD", "text-encoders")
    monkeypatch.setenv("KEKONG_OFFLOAD_DIR", str(tmp_path / "offload"))
    offloaded = kekong.generate(**request)[0].image
    # the same weights read back from disk; the projection may round differently in the last bit
    assert np.abs(kept.astype(int) - offloaded.astype(int)).max() <= 2
    assert len(list((tmp_path / "offload").rglob("*.safetensors"))) > 10  # one file per layer, both encoders


def test_an_unknown_setting_is_refused(monkeypatch):
    monkeypatch.setenv("KEKONG_OFFLOAD", "everything")
    with pytest.raises(ParameterError, match="KEKONG_OFFLOAD"):
        offload.setting()
