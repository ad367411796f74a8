"""UniFormer + UperNet ADE20K segmentation (`segmentation`, label seg_ufade20k): the full-size network has
upernet_global_small.pth's key names and shapes, a tiny one of the same architecture loads from the file
name the extension uses (auxiliary head skipped, anything else strict), the extension's test pipeline
(rescale to fit 2048×512, BGR-swapped mmseg normalisation) feeds it, and classes come out in ADE20K's palette."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from kekong.detect import run
from kekong.detect.learned.uniformer import ADE20K_PALETTE, PATH, UperNetUniFormer, segment
from kekong.errors import KekongError, MissingWeightsError

TINY = {"dims": (16, 32, 64, 64), "depths": (1, 2, 1, 1), "channels": 16}


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def _save(tmp_path, state: dict) -> None:
    target = tmp_path / "models" / "annotators" / PATH.rsplit("/", 1)[-1]  # where kekong looks: the file name
    target.parent.mkdir(parents=True)
    torch.save({"meta": {"CLASSES": ("wall",) * 150, "PALETTE": ADE20K_PALETTE.tolist()}, "state_dict": state},
               target)


def _tiny(seed: int = 0, winner: int | None = None) -> dict:
    torch.manual_seed(seed)
    network = UperNetUniFormer(**TINY)
    state = network.state_dict()
    if winner is not None:  # every pixel's logits: the bias alone, so `winner` wins everywhere
        state["decode_head.conv_seg.weight"].zero_()
        state["decode_head.conv_seg.bias"].copy_(torch.arange(150) == winner)
    state["auxiliary_head.conv_seg.weight"] = torch.zeros(150, 256, 1, 1)  # in the released file; never run
    return state


def test_the_full_size_network_has_the_released_checkpoints_keys_and_shapes():
    with torch.device("meta"):  # shapes only
        state = UperNetUniFormer().state_dict()
    sentinels = {  # from annotator/uniformer/uniformer.py and mmseg's UPerHead with upernet_global_small's config
        "backbone.patch_embed1.proj.weight": (64, 3, 4, 4), "backbone.patch_embed4.norm.weight": (512,),
        "backbone.blocks1.2.attn.weight": (64, 1, 5, 5), "backbone.blocks2.3.norm1.running_var": (128,),
        "backbone.blocks3.7.attn.qkv.weight": (960, 320), "backbone.blocks4.2.mlp.fc1.weight": (2048, 512),
        "backbone.norm3.bias": (320,), "decode_head.psp_modules.3.1.conv.weight": (512, 512, 1, 1),
        "decode_head.psp_modules.0.1.bn.num_batches_tracked": (), "decode_head.bottleneck.conv.weight":
        (512, 2560, 3, 3), "decode_head.lateral_convs.2.conv.weight": (512, 320, 1, 1),
        "decode_head.fpn_convs.0.bn.running_mean": (512,), "decode_head.fpn_bottleneck.conv.weight":
        (512, 2048, 3, 3), "decode_head.conv_seg.weight": (150, 512, 1, 1)}
    assert {k: tuple(state[k].shape) for k in sentinels} == sentinels
    assert "backbone.blocks3.8.attn.qkv.weight" not in state and "decode_head.conv_seg.bias" in state
    assert not any(".bias" in k and "conv.bias" in k for k in state if k.startswith("decode_head."))  # ConvModule
    assert 50e6 < sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) < 54e6


def test_a_tiny_network_of_the_same_architecture_loads_and_paints_the_palette(tmp_path, astronaut):
    _save(tmp_path, _tiny())
    seg = run("seg_ufade20k", astronaut, res=64).image
    assert seg.shape == (64, 64, 3) and seg.dtype == np.uint8
    palette = {tuple(c) for c in ADE20K_PALETTE}
    assert {tuple(c) for c in seg.reshape(-1, 3)} <= palette  # every pixel one of ADE20K's colours
    assert run("segmentation", astronaut, res=64).image.tobytes() == seg.tobytes()  # the extension's name


@pytest.mark.parametrize("winner", [12, 2])  # person, sky
def test_the_winning_class_is_painted_in_its_ade20k_colour(tmp_path, winner):
    _save(tmp_path, _tiny(winner=winner))
    picture = np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8)
    seg = run("seg_ufade20k", picture, res=64).image
    assert (seg == ADE20K_PALETTE[winner]).all()
    assert tuple(ADE20K_PALETTE[12]) == (150, 5, 61) and tuple(ADE20K_PALETTE[2]) == (6, 230, 230)


class _Recorder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        logits = torch.zeros(1, 150, *x.shape[2:])
        logits[:, 5] = 1.0
        return logits


def test_the_extensions_test_pipeline_rescales_and_normalises_a_channel_swapped_image():
    picture = np.zeros((60, 100, 3), np.uint8)
    picture[..., 0], picture[..., 2] = 200, 10  # red
    recorder = _Recorder()
    classes = segment(recorder, picture)  # type: ignore[arg-type]
    assert recorder.seen.shape == (1, 3, 512, 853)  # fit in 2048×512: short side 512, 100 × 512/60 rounded
    first, last = recorder.seen[0, 0, 5, 5].item(), recorder.seen[0, 2, 5, 5].item()
    assert first == pytest.approx((10 - 123.675) / 58.395, abs=1e-5)  # the blue value, by the red mean
    assert last == pytest.approx((200 - 103.53) / 57.375, abs=1e-5)
    assert classes.shape == (60, 100) and (classes == 5).all()


def test_a_file_that_does_not_fit_is_refused_naming_it(tmp_path, astronaut):
    state = _tiny()
    state["decode_head.conv_segx.weight"] = state.pop("decode_head.conv_seg.bias")
    _save(tmp_path, state)
    with pytest.raises(KekongError, match=r"upernet_global_small\.pth: does not fit .*conv_seg"):
        run("seg_ufade20k", astronaut, res=64)


def test_without_weights_the_error_names_the_file_the_repo_and_the_stand_in(astronaut):
    with pytest.raises(MissingWeightsError, match=r"upernet_global_small\.pth.*lllyasviel/ControlNet.*seg_person"):
        run("segmentation", astronaut)


def test_the_api_runs_it_under_the_extensions_name(tmp_path):
    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, decode

    _save(tmp_path, _tiny(winner=12))
    picture = np.full((64, 64, 3), 90, np.uint8)
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "server", ui=False))) as client:
        answer = client.post("/controlnet/detect", json={"controlnet_module": "seg_ufade20k",
                                                         "controlnet_input_images": [b64_png(picture)],
                                                         "controlnet_processor_res": 64})
    assert answer.status_code == 200, answer.text
    assert (np.asarray(decode(answer.json()["images"][0]).convert("RGB")) == (150, 5, 61)).all()
