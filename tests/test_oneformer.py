"""OneFormer (`oneformer_ade20k` / `oneformer_coco`, labels seg_ofade20k / seg_ofcoco): the full-size network has
the Swin-L checkpoints' key names and shapes, a small network of the same architecture loads from the file names
the extension uses (`model` wrapper, training-only text encoder skipped, anything else strict), the pieces compute
what the reference defines (deformable attention sampling, Swin's relative positions, semantic inference, the
task token) and classes are painted in the dataset's colours with the Visualizer's outlines."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned import oneformer
from kekong.detect.learned.coco_palette import COCO_PANOPTIC_PALETTE
from kekong.detect.learned.oneformer import (
    DATASETS,
    SEMANTIC_TASK,
    OneFormer,
    predictor_size,
    segment,
)
from kekong.detect.learned.oneformer_heads import MSDeformAttn
from kekong.detect.learned.swin import WindowAttention, shift_mask
from kekong.detect.learned.uniformer import ADE20K_PALETTE
from kekong.detect.learned.visualizer import draw_sem_seg
from kekong.errors import KekongError, MissingWeightsError

TINY = {"swin_dim": 32, "depths": (1, 1, 2, 1), "heads": (1, 2, 2, 4), "window": 4, "dim": 32, "encoder_layers": 1,
        "decoder_layers": 3, "ffn": 64}
WHITE = (255, 255, 255)  # the demo Visualizer's _OFF_WHITE
PICTURE = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    for name, dataset in DATASETS.items():  # the tests' small network runs at a small size (640/800 in use)
        monkeypatch.setitem(DATASETS, name, replace(dataset, short_edge=96, long_edge=256))


def _save(tmp_path, name: str, classes: int, winner: int | None = None, rename: bool = False) -> None:
    torch.manual_seed(0)
    state = OneFormer(classes=classes, queries=5, **TINY).state_dict()
    if winner is not None:  # every query says `winner`: the class head's bias alone
        state["sem_seg_head.predictor.class_embed.weight"].zero_()
        state["sem_seg_head.predictor.class_embed.bias"].copy_((torch.arange(classes + 1) == winner) * 20.0)
    if rename:
        state["sem_seg_head.predictor.query_embedx.weight"] = state.pop("sem_seg_head.predictor.query_embed.weight")
    state["text_encoder.positional_embedding"] = torch.zeros(77, 32)  # training only: in the files, skipped
    state["prompt_ctx.weight"] = torch.zeros(16, 32)
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "iteration": 160000}, folder / DATASETS[name].file)


def test_the_full_size_network_has_the_released_checkpoints_keys_and_shapes():
    with torch.device("meta"):  # shapes only: 219 M parameters need not be allocated
        state = OneFormer().state_dict()
    sentinels = {  # from the extension's oneformer/modeling (swin.py, msdeformattn.py, the transformer decoder)
        "backbone.patch_embed.proj.weight": (192, 3, 4, 4), "backbone.layers.2.blocks.17.attn.qkv.weight": (2304, 768),
        "backbone.layers.3.blocks.1.attn.relative_position_bias_table": (529, 48),
        "backbone.layers.0.blocks.0.attn.relative_position_index": (144, 144),
        "backbone.layers.2.downsample.reduction.weight": (1536, 3072), "backbone.norm3.weight": (1536,),
        "sem_seg_head.pixel_decoder.input_proj.0.0.weight": (256, 1536, 1, 1),
        "sem_seg_head.pixel_decoder.input_proj.2.1.bias": (256,),
        "sem_seg_head.pixel_decoder.transformer.level_embed": (3, 256),
        "sem_seg_head.pixel_decoder.transformer.encoder.layers.5.self_attn.sampling_offsets.weight": (192, 256),
        "sem_seg_head.pixel_decoder.transformer.encoder.layers.0.self_attn.attention_weights.bias": (96,),
        "sem_seg_head.pixel_decoder.mask_features.weight": (256, 256, 1, 1),
        "sem_seg_head.pixel_decoder.adapter_1.weight": (256, 192, 1, 1),
        "sem_seg_head.pixel_decoder.layer_1.norm.weight": (256,),
        "sem_seg_head.predictor.class_transformer.decoder.layers.1.multihead_attn.in_proj_weight": (768, 256),
        "sem_seg_head.predictor.class_transformer.decoder.norm.bias": (256,),
        "sem_seg_head.predictor.transformer_cross_attention_layers.8.multihead_attn.out_proj.weight": (256, 256),
        "sem_seg_head.predictor.transformer_ffn_layers.0.linear1.weight": (2048, 256),
        "sem_seg_head.predictor.query_embed.weight": (250, 256), "sem_seg_head.predictor.level_embed.weight": (3, 256),
        "sem_seg_head.predictor.class_input_proj.weight": (256, 256, 1, 1),
        "sem_seg_head.predictor.class_embed.weight": (151, 256),
        "sem_seg_head.predictor.mask_embed.layers.2.weight": (256, 256), "task_mlp.layers.0.weight": (256, 77)}
    assert {k: tuple(state[k].shape) for k in sentinels} == sentinels
    assert not any(k.startswith(("text_encoder", "sem_seg_head.predictor.input_proj")) for k in state)
    assert "sem_seg_head.pixel_decoder.adapter_1.bias" not in state  # GroupNorm'd: no bias
    assert sum(v.numel() for v in state.values()) == 219_308_811  # Swin-L 196 M + head 23 M (+ Swin's index buffers)
    with torch.device("meta"):
        coco = OneFormer(classes=133, queries=150).state_dict()
    assert coco["sem_seg_head.predictor.class_embed.weight"].shape == (134, 256)
    assert coco["sem_seg_head.predictor.query_embed.weight"].shape == (150, 256)


def test_a_small_network_of_the_same_architecture_loads_and_paints_the_palettes(tmp_path):
    _save(tmp_path, "ade20k", 150)
    _save(tmp_path, "coco", 133)
    ade = run("seg_ofade20k", PICTURE, res=64).image
    assert ade.shape == (64, 96, 3) and ade.dtype == np.uint8
    colours, counts = np.unique(ade.reshape(-1, 3), axis=0, return_counts=True)
    assert tuple(colours[counts.argmax()]) in {tuple(c) for c in ADE20K_PALETTE} | {WHITE}  # edges blend
    assert run("oneformer_ade20k", PICTURE, res=64).image.tobytes() == ade.tobytes()  # the extension's name
    coco = run("seg_ofcoco", PICTURE, res=64).image
    colours, counts = np.unique(coco.reshape(-1, 3), axis=0, return_counts=True)
    assert tuple(colours[counts.argmax()]) in {tuple(c) for c in COCO_PANOPTIC_PALETTE} | {WHITE}


@pytest.mark.parametrize(("name", "classes", "winner"), [("ade20k", 150, 2), ("coco", 133, 0)])
def test_the_winning_class_fills_the_map_in_its_colour(tmp_path, name, classes, winner):
    _save(tmp_path, name, classes, winner=winner)
    seg = run("seg_ofade20k" if name == "ade20k" else "seg_ofcoco", PICTURE, res=64).image
    colour = DATASETS[name].palette[winner]
    assert (seg[3:-3, 3:-3] == colour).all()  # one hole-free region: a polygon edged in white along the
    assert (seg[0, 5:-5] == WHITE).all() and (seg[5:-5, 0] == WHITE).all()  # border (the right edge is the
    # padding's: as the extension does, kekong edge-pads 96 to 128 and crops the map back)
    assert tuple(ADE20K_PALETTE[2]) == (6, 230, 230) and tuple(COCO_PANOPTIC_PALETTE[0]) == (220, 20, 60)  # sky, person


def test_a_file_that_does_not_fit_is_refused_naming_it(tmp_path):
    _save(tmp_path, "ade20k", 150, rename=True)
    with pytest.raises(KekongError, match=r"250_16_swin_l_oneformer_ade20k_160k\.pth: does not fit .*query_embed"):
        run("seg_ofade20k", PICTURE, res=64)


def test_without_weights_the_error_names_the_file_and_the_stand_in():
    with pytest.raises(MissingWeightsError, match=r"150_16_swin_l_oneformer_coco_100ep\.pth.*seg_person"):
        run("oneformer_coco", PICTURE)


class _Stub(torch.nn.Module):
    """Two queries: class 3 on the left half, class 1 on the right (mask logits at 1/4 of the padded input)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen = x.clone()
        h, w = x.shape[2] // 4, x.shape[3] // 4
        logits = torch.full((1, 2, 6), -10.0)
        logits[0, 0, 3], logits[0, 1, 1] = 10.0, 10.0
        masks = torch.full((1, 2, h, w), -10.0)
        masks[0, 0, :, : w // 2], masks[0, 1, :, w // 2:] = 10.0, 10.0
        return logits, masks


def test_semantic_inference_resizes_like_the_predictor_and_sums_queries(monkeypatch):
    stub = _Stub()
    picture = np.zeros((60, 100, 3), np.uint8)
    picture[..., 0] = 200
    classes = segment(stub, picture, replace(DATASETS["ade20k"], short_edge=640, long_edge=2560))  # type: ignore
    assert stub.seen.shape == (1, 3, 640, 1088)  # short edge 640: 640 × 1067, padded to multiples of 32
    assert stub.seen[0, 0, 5, 5].item() == pytest.approx((200 - 123.675) / 58.395, abs=1e-5)  # RGB, not swapped
    assert stub.seen[0, :, :, 1067:].abs().max() == 0  # the padding: zeros after normalisation
    assert classes.shape == (60, 100) and (classes[:, :45] == 3).all() and (classes[:, 60:] == 1).all()
    assert predictor_size(512, 512, 800, 1333) == (800, 800) and predictor_size(300, 1200, 800, 1333) == (333, 1333)


def test_the_task_token_is_the_semantic_prompt_in_clips_ids(monkeypatch):
    torch.manual_seed(0)
    network = OneFormer(classes=5, queries=4, **TINY).eval()
    seen: list[torch.Tensor] = []

    class Recorder(torch.nn.Module):
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            seen.append(tokens)
            return torch.zeros(1, 32)

    monkeypatch.setattr(network, "task_mlp", Recorder())
    with torch.inference_mode():
        network(torch.zeros(1, 3, 64, 64))
    assert seen[0].shape == (1, 77) and seen[0][0, :7].tolist() == list(SEMANTIC_TASK) and not seen[0][0, 7:].any()
    assert SEMANTIC_TASK[0] == 49406 and SEMANTIC_TASK[-1] == 49407  # <|startoftext|> … <|endoftext|>


def test_deformable_attention_with_no_offsets_samples_each_reference_point():
    attention = MSDeformAttn(dim=8, levels=1, heads=2, points=2)
    with torch.no_grad():
        for layer in (attention.sampling_offsets, attention.attention_weights):
            layer.weight.zero_()
            layer.bias.zero_()
        for layer in (attention.value_proj, attention.output_proj):
            layer.weight.copy_(torch.eye(8))
            layer.bias.zero_()
    h, w = 3, 5
    value = torch.randn(1, h * w, 8)
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    reference = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[None, :, None]
    out = attention(torch.zeros(1, h * w, 8), reference, value, [(h, w)])
    assert torch.allclose(out, value, atol=1e-5)  # at pixel centres grid_sample returns the values themselves


def test_swin_relative_positions_and_the_shifted_window_mask():
    index = WindowAttention(dim=4, window=2, heads=1).relative_position_index
    assert index.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    mask = shift_mask(4, 4, window=2, shift=1)
    assert mask.shape == (4, 4, 4) and not mask[0].any()  # the first window was not wrapped around
    assert (mask[3] != 0).any() and set(mask.unique().tolist()) == {0.0, -100.0}


def test_the_visualizer_edges_hole_free_regions_in_white_and_draws_holed_ones_without_edge():
    classes = np.zeros((20, 20), np.int64)
    classes[4:16, 4:16] = 4  # a square inside class 0: class 0 has a hole
    canvas = draw_sem_seg(classes, ADE20K_PALETTE)
    assert canvas.shape == (20, 20, 3) and canvas.dtype == np.uint8
    assert (canvas[0] == ADE20K_PALETTE[0]).all() and (canvas[:, 0] == ADE20K_PALETTE[0]).all()  # no edge
    assert (canvas[7:13, 7:13] == ADE20K_PALETTE[4]).all()  # the square's inside
    assert (canvas[4, 5:15].min(axis=-1) >= 250).all()  # its edge: white (1 pt: 1.4 px at 100 dpi)


def test_the_module_loads_the_extensions_two_files():
    assert [d.file for d in oneformer.DATASETS.values()] == [
        "250_16_swin_l_oneformer_ade20k_160k.pth", "150_16_swin_l_oneformer_coco_100ep.pth"]
