"""MobileSAM (`mobile_sam`): the full-size network has mobile_sam.pt's key names and shapes, a small network of
the same architecture loads from that file name, and the automatic mask generation is the extension's (point
grid, predicted-IoU and stability filters, box NMS, largest mask painted first in a random colour)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned.mobile_sam import generate_masks, mask_boxes, nms, paint, point_grid, stability_score
from kekong.detect.learned.sam_model import MobileSam
from kekong.errors import KekongError, MissingWeightsError

TINY = {"dims": (8, 16, 16, 24), "depths": (1, 1, 2, 1), "heads": (1, 2, 2, 3), "prompt_dim": 32, "mlp_dim": 64,
        "mask_channels": 4, "iou_hidden": 16, "classes": 10}
PICTURE = np.zeros((64, 96, 3), np.uint8)
PICTURE[16:48, 24:56] = (200, 40, 40)  # a red square on black


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def _save(tmp_path, iou: float = 5.0, rename: bool = False) -> None:
    torch.manual_seed(0)
    state = MobileSam(**TINY).state_dict()
    state["mask_decoder.iou_prediction_head.layers.2.weight"].zero_()  # every mask's predicted IoU: `iou`
    state["mask_decoder.iou_prediction_head.layers.2.bias"].fill_(iou)
    if rename:
        state["mask_decoder.iou_tokenx.weight"] = state.pop("mask_decoder.iou_token.weight")
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    torch.save(state, folder / "mobile_sam.pt")


def test_the_full_size_network_has_the_released_checkpoints_keys_and_shapes():
    state = MobileSam().state_dict()
    sentinels = {  # from segment_anything's build_sam_vit_t, tiny_vit_sam.py, prompt_encoder.py, mask_decoder.py
        "image_encoder.patch_embed.seq.0.c.weight": (32, 3, 3, 3),
        "image_encoder.layers.0.blocks.1.conv3.bn.running_var": (64,),
        "image_encoder.layers.1.blocks.0.attn.attention_biases": (4, 49),
        "image_encoder.layers.2.blocks.5.attn.qkv.weight": (480, 160),
        "image_encoder.layers.2.blocks.0.attn.attention_biases": (5, 196),
        "image_encoder.layers.2.downsample.conv2.c.weight": (320, 1, 3, 3),
        "image_encoder.layers.3.blocks.1.mlp.fc1.weight": (1280, 320), "image_encoder.head.weight": (1000, 320),
        "image_encoder.neck.0.weight": (256, 320, 1, 1), "image_encoder.neck.3.bias": (256,),
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, 128),
        "prompt_encoder.point_embeddings.3.weight": (1, 256), "prompt_encoder.mask_downscaling.6.weight":
        (256, 16, 1, 1), "mask_decoder.transformer.layers.1.cross_attn_image_to_token.q_proj.weight": (128, 256),
        "mask_decoder.transformer.final_attn_token_to_image.out_proj.weight": (256, 128),
        "mask_decoder.output_upscaling.0.weight": (256, 64, 2, 2), "mask_decoder.mask_tokens.weight": (4, 256),
        "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight": (32, 256),
        "mask_decoder.iou_prediction_head.layers.2.weight": (4, 256)}
    assert {k: tuple(state[k].shape) for k in sentinels} == sentinels
    assert "image_encoder.layers.3.downsample.conv1.c.weight" not in state  # the last stage does not merge
    assert not any("attention_bias_idxs" in k for k in state)  # a non-persistent buffer, as in TinyViT
    assert sum(v.numel() for v in state.values()) == 10_140_231  # mobile_sam.pt's 40.7 MB in float32


def test_a_small_network_of_the_same_architecture_loads_and_paints_masks(tmp_path):
    _save(tmp_path)
    params = {"points_per_side": 4, "stability_score_thresh": 0.0}
    seg = run("mobile_sam", PICTURE, res=64, **params).image
    assert seg.shape == (64, 96, 3) and seg.dtype == np.uint8
    colours = {tuple(c) for c in seg.reshape(-1, 3)}
    assert seg.any() and max(max(c) for c in colours) < 255  # masks found, coloured by randint(255): 0…254
    assert np.array_equal(seg, run("mobile_sam", PICTURE, res=64, **params).image)  # seeded: reproducible
    other = run("mobile_sam", PICTURE, res=64, seed=7, **params).image
    assert not np.array_equal(seg, other)
    assert len(colours) == len({tuple(c) for c in other.reshape(-1, 3)})  # the same masks, other colours


def test_the_grid_points_reach_the_prompt_encoder_in_the_1024_frame(monkeypatch):
    torch.manual_seed(0)
    net = MobileSam(**TINY).eval()
    seen = []
    encode = net.prompt_encoder.points
    monkeypatch.setattr(net.prompt_encoder, "points", lambda c, *a: seen.append(c.clone()) or encode(c, *a))
    generate_masks(net, PICTURE, points_per_side=2)
    scale = np.array([1024 / 96, 683 / 64])  # long side 96 → 1024; 64 → int(64 · 1024/96 + 0.5) = 683
    expected = np.array([[24, 16], [72, 16], [24, 48], [72, 48]]) * scale
    assert np.allclose(seen[0][:, 0].numpy(), expected, atol=1e-3)


def test_a_point_is_encoded_as_the_dense_encoding_of_the_cell_it_falls_in():
    torch.manual_seed(0)
    encoder = MobileSam(**TINY).prompt_encoder
    with torch.inference_mode():
        point = encoder.points(torch.tensor([[[16 * 5 + 7.5, 16 * 9 + 7.5]]]), torch.ones(1, 1, dtype=torch.int), 1024)
        dense = encoder.dense_pe()[0, :, 9, 5]
    assert torch.allclose(point[0, 0] - encoder.point_embeddings[1].weight[0], dense, atol=1e-4)
    assert torch.equal(point[0, 1], encoder.not_a_point_embed.weight[0])  # the padding point


def test_the_predicted_iou_filter_drops_every_mask_below_it(tmp_path):
    _save(tmp_path, iou=0.5)  # every mask predicts IoU 0.5: below the extension's 0.88
    assert not run("mobile_sam", PICTURE, res=64, points_per_side=2, stability_score_thresh=0.0).image.any()
    kept = run("mobile_sam", PICTURE, res=64, points_per_side=2, stability_score_thresh=0.0, pred_iou_thresh=0.4)
    assert kept.image.any()


def test_a_file_that_does_not_fit_is_refused_naming_it(tmp_path):
    _save(tmp_path, rename=True)
    with pytest.raises(KekongError, match=r"mobile_sam\.pt: does not fit the MobileSAM network .*iou_token"):
        run("mobile_sam", PICTURE, res=64)


def test_without_weights_the_error_names_the_file_the_repo_and_the_stand_in():
    with pytest.raises(MissingWeightsError, match=r"mobile_sam\.pt.*dhkim2810/MobileSAM.*seg_person"):
        run("mobile_sam", PICTURE)


def test_the_point_grid_is_cell_centres_row_by_row():
    assert np.allclose(point_grid(2), [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    assert point_grid(32).shape == (1024, 2) and np.isclose(point_grid(32)[0, 0], 1 / 64)


def test_stability_is_the_iou_of_the_mask_at_plus_and_minus_one():
    logits = torch.full((2, 4, 4), -5.0)
    logits[0, :2, :2] = 5.0  # sharp: the same 4 pixels at either threshold
    logits[1, :2, :2], logits[1, 2:, 2:] = 5.0, 0.0  # 4 pixels above +1, 8 above −1
    assert stability_score(logits).tolist() == [1.0, 0.5]


def test_boxes_around_masks_and_nms_keep_the_best_of_overlapping_masks():
    masks = torch.zeros(4, 10, 10, dtype=torch.bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 2:8, 2:9] = True  # nearly the same box as mask 0
    masks[2, 0:2, 7:10] = True
    assert mask_boxes(masks).tolist() == [[2, 2, 7, 7], [2, 2, 8, 7], [7, 0, 9, 1], [0, 0, 0, 0]]
    scores = torch.tensor([0.90, 0.95, 0.89, 0.5])
    assert nms(mask_boxes(masks[:3]), scores[:3], 0.7) == [1, 2]  # mask 0 (IoU 25/30 with mask 1) dropped


def test_masks_are_painted_largest_first_so_small_ones_stay_visible():
    big, small = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    big[:, :] = True
    small[2:4, 2:4] = True
    canvas = paint([small, big], (8, 8), seed=0)
    assert len({tuple(c) for c in canvas.reshape(-1, 3)}) == 2
    assert (canvas[2:4, 2:4] != canvas[0, 0]).any(axis=-1).all()  # the small mask is on top
