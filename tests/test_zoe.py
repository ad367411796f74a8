"""ZoeDepth (`depth_zoe`): the network has `ZoeD_M12_N.pt`'s layout (`model` of timm-0.6 BEiT-L/384 +
DPT + metric-bins keys, relative_position_index buffers included), a tiny one of the same layout
loads and runs through `detect.run` and the API, and the processing is the annotator's (MiDaS
resize rule, pad + flip averaging, percentile map); the attractor and log-binomial steps are checked
on constructed inputs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from kekong.detect import run
from kekong.detect.learned import zoe
from kekong.detect.learned.zoe import ZOED_N, Attractor, LogBinomial, ZoeConfig, ZoeDepth, net_size
from kekong.detect.learned.zoe_beit import BeitConfig, relative_position_index
from kekong.errors import KekongError, MissingWeightsError

TINY = ZoeConfig(
    beit=BeitConfig(
        embed_dim=32,
        depth=4,
        num_heads=2,
        hooks=(0, 1, 2, 3),
        img_size=64,
        reassemble=(8, 16, 32, 32),
        features=8,
        head_features=4,
        num_classes=10,
    ),
    n_bins=8,
    bin_embedding_dim=8,
    n_attractors=(4, 2, 2, 1),
    seed_mlp=8,
    mlp=8,
)


@pytest.fixture(autouse=True)
def tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(zoe, "CONFIG", TINY)
    return tmp_path / "models" / "annotators"


@pytest.fixture()
def small_grid(monkeypatch):
    """The tiny network runs on a 96×128 grid instead of 384×512 (the rule is tested on its own)."""
    monkeypatch.setattr(zoe, "NET_H", 96)
    monkeypatch.setattr(zoe, "NET_W", 128)


@pytest.fixture(scope="module")
def network() -> ZoeDepth:
    torch.manual_seed(0)
    net = ZoeDepth(TINY)
    with torch.no_grad():
        for block in net.core.core.pretrained.model.blocks:  # layer scale and position bias that matter
            block.gamma_1.fill_(0.5)
            block.gamma_2.fill_(0.5)
            block.attn.relative_position_bias_table.normal_()
    return net.eval()


def _save(folder, network, rename: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = dict(network.state_dict())
    if rename:
        state[rename + "x"] = state.pop(rename)
    torch.save({"model": state}, folder / "ZoeD_M12_N.pt")


def test_the_full_size_network_has_the_checkpoints_keys_and_shapes():
    with torch.device("meta"):
        full = ZoeDepth(ZOED_N)
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in full.state_dict().items()}
    # 344.8 M parameters + 24 int64 index buffers of 577² = the 1.44 GB of ZoeD_M12_N.pt
    assert sum(p.numel() for p in full.parameters()) == 344_816_746 and len(shapes) == 535
    beit = "core.core.pretrained.model."
    assert shapes[beit + "patch_embed.proj.weight"][0] == (1024, 3, 16, 16)
    assert shapes[beit + "blocks.23.attn.relative_position_bias_table"][0] == (2212, 16)  # 47² + 3 rows
    assert shapes[beit + "blocks.0.attn.relative_position_index"] == ((577, 577), torch.int64)
    assert shapes[beit + "blocks.23.attn.qkv.weight"][0] == (3072, 1024)
    assert shapes[beit + "blocks.23.gamma_2"][0] == (1024,) and shapes[beit + "head.weight"][0] == (1000, 1024)
    assert f"{beit}blocks.0.attn.k_bias" not in shapes  # timm keeps it out of the state dict
    post = "core.core.pretrained.act_postprocess"
    assert shapes[post + "1.0.project.0.weight"][0] == (1024, 2048)
    assert shapes[post + "1.4.weight"][0] == (256, 256, 4, 4) and shapes[post + "2.4.weight"][0] == (512, 512, 2, 2)
    assert shapes[post + "4.4.weight"][0] == (1024, 1024, 3, 3) and post + "3.4.weight" not in shapes
    assert shapes["core.core.scratch.layer3_rn.weight"][0] == (256, 1024, 3, 3)
    assert shapes["core.core.scratch.refinenet4.resConfUnit1.conv1.weight"][0] == (256, 256, 3, 3)
    assert shapes["core.core.scratch.output_conv.2.weight"][0] == (32, 128, 3, 3)
    assert shapes["seed_bin_regressor._net.2.weight"][0] == (64, 256, 1, 1)
    assert [shapes[f"attractors.{i}._net.2.weight"][0][0] for i in range(4)] == [16, 8, 4, 1]
    assert shapes["conditional_log_binomial.mlp.0.weight"][0] == (80, 161, 1, 1)  # 32 + 1 + 128 in
    assert shapes["conditional_log_binomial.log_binomial_transform.k_idx"] == ((1, 64, 1, 1), torch.int64)


def test_the_relative_position_index_is_timms():
    index = relative_position_index((2, 2))
    assert index.shape == (5, 5) and index[0, 0] == 3 * 3 + 2 and index[0, 1] == 9 and index[1, 0] == 10
    assert index[1, 1] == index[4, 4] == 4 and index[1, 4] == 0 and index[4, 1] == 8  # (dy+1)·3 + (dx+1)


def test_the_midas_resize_keeps_the_nearer_scale_in_multiples_of_32():
    assert net_size(608, 608) == (512, 512)  # a 512² image padded by 48: width's scale 0.84 is nearer 1
    assert net_size(480, 640) == (384, 512)
    assert net_size(96, 96) == (384, 384)
    assert net_size(1000, 200) == (384, 64)
    assert net_size(96, 8378) == (32, 512) and net_size(8378, 96) == (384, 32)  # a 64x8000 image: never 0


def test_a_thin_image_runs(tiny_model, network):  # the 384x512 grid: its height rounded to 0
    _save(tiny_model, network)
    thin = np.random.default_rng(4).integers(0, 255, (64, 3000, 3), dtype=np.uint8)
    assert run("depth_zoe", thin, res=64).image.shape == (64, 3000, 3)


def test_the_inverse_attractor_pulls_each_centre_by_its_formula():
    layer = Attractor(4, n_attractors=1, hidden=4, alpha=zoe.ZOED_N.alpha, gamma=2)
    with torch.no_grad():
        layer._net[2].weight.zero_()
        layer._net[2].bias.fill_(math.log(math.exp(2.0) - 1))  # softplus → the attractor sits at 2.0
    centres = torch.tensor([1.9, 2.0, 2.1, 5.0]).view(1, 4, 1, 1)
    moved = layer(torch.zeros(1, 4, 1, 1), centres, torch.zeros(1, 4, 1, 1))[0, :, 0, 0]
    dx = 2.0 - centres.flatten()
    assert zoe.ZOED_N.alpha == 300  # ZoeDepth's inv_attractor default: the layer never passes its own 1000
    assert torch.allclose(moved, centres.flatten() + dx / (1 + 300 * dx**2), atol=1e-6)
    assert moved[1] == 2.0 and 1.9 < moved[0] < 2.0 and moved[3] < 5.0


def test_the_log_binomial_peaks_at_p_and_sharpens_as_the_temperature_falls():
    transform = LogBinomial(64)
    p = torch.full((1, 1, 1), 0.25)
    warm, cold = transform(p, torch.full((1, 1, 1, 1), 1.0)), transform(p, torch.full((1, 1, 1, 1), 0.05))
    assert torch.allclose(warm.sum(dim=1), torch.ones(1, 1, 1)) and int(warm.argmax()) in (15, 16)  # 0.25 · 63
    assert cold.max() > warm.max() and int(cold.argmax()) == int(warm.argmax())


def test_zoe_runs_on_the_annotator_checkpoint_and_maps_the_percentiles(tiny_model, network, astronaut, small_grid):
    _save(tiny_model, network)
    depth = run("depth_zoe", astronaut, res=64).image
    assert depth.shape == (64, 64, 3) and depth.dtype == np.uint8 and (depth == depth[:, :, :1]).all()
    small = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small.astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        metric = zoe.infer(network, x)[0, 0].numpy()
    assert np.array_equal(depth[:, :, 0], zoe.encode(metric))
    assert 0.01 <= (depth[:, :, 0] == 255).mean() <= 0.03  # nearest 2 % white
    assert 0.13 <= (depth[:, :, 0] == 0).mean() <= 0.17  # farthest 15 % black


def test_each_pass_pads_infers_resizes_back_and_crops_and_the_mirror_is_averaged():
    seen = []

    def half_size(padded):  # a stand-in network answering at half resolution, as ZoeDepth answers at 384×512
        seen.append(tuple(padded.shape[2:]))
        return torch.nn.functional.avg_pool2d(padded[:, :1], 2)

    x = torch.rand(1, 3, 64, 96)
    out = zoe.infer(half_size, x)
    assert seen == [(64 + 2 * 16, 96 + 2 * 20)] * 2  # ⌊√(64/2)·3⌋ = 16, ⌊√(96/2)·3⌋ = 20, reflected
    mirrored = torch.flip(zoe.infer(half_size, torch.flip(x, [3])), [3])
    assert out.shape == (1, 1, 64, 96) and torch.allclose(out, mirrored, atol=1e-5)
    assert torch.allclose(zoe.infer(lambda padded: padded[:, :1], x), x[:, :1])  # the crop lands on the image


def test_a_checkpoint_with_a_renamed_key_is_refused_naming_it(tiny_model, network, astronaut):
    _save(tiny_model, network, rename="core.core.scratch.layer2_rn.weight")
    with pytest.raises(KekongError, match=r"ZoeD_M12_N\.pt: does not fit .*missing: core\.core\.scratch\.layer2_rn"):
        run("depth_zoe", astronaut, res=64)


def test_without_weights_the_error_names_the_file(astronaut):
    with pytest.raises(MissingWeightsError, match=r"depth_zoe needs the weights file ZoeD_M12_N\.pt.*depth_midas"):
        run("depth_zoe", astronaut, res=64)


def test_the_api_runs_the_extensions_name(tiny_model, network, tmp_path, small_grid):
    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, decode

    _save(tiny_model, network)
    picture = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "server", ui=False))) as client:
        answer = client.post(
            "/controlnet/detect",
            json={
                "controlnet_module": "depth_zoe",
                "controlnet_input_images": [b64_png(picture)],
                "controlnet_processor_res": 64,
            },
        )
    assert answer.status_code == 200, answer.text
    image = np.asarray(decode(answer.json()["images"][0]).convert("RGB"))
    assert image.shape == (64, 64, 3) and (image == image[:, :, :1]).all() and image.min() == 0 and image.max() == 255
