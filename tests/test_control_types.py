"""Control types that are not plain ControlNets are refused by name — by module name or by weights
handed over as a model — and `kekong detect --list` says which types each base family runs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from kekong.detect.control_types import listing
from kekong.errors import KekongError, ParameterError
from kekong.models.control_types import identify_weights
from kekong.models.load import load_controlnet
from kekong.request import build_request


@pytest.mark.parametrize(("module", "reason"), [
    ("reference_adain", "use reference_only"), ("ip-adapter_face_id", "insightface"),
    ("t2ia_style_clipvision", "not supported: the style T2I-Adapter takes CLIP-vision"),
    ("revision_clipvision", "Revision.*CLIP-vision")])
def test_adapter_modules_are_refused_with_what_is_missing(module, reason):
    with pytest.raises(ParameterError, match=f"{module}.*{reason}"):
        build_request(prompt="x", controls=[{"module": module, "image": "x.png"}])


@pytest.mark.parametrize(("keys", "kind"), [
    ({"image_proj.proj.weight", "ip_adapter.1.to_k_ip.weight"}, "IP-Adapter"),
    ({"adapter.body.0.resnets.0.block1.weight"}, "T2I-Adapter"),  # original-format files
    ({"body.0.in_conv.weight", "body.0.body.0.block1.weight"}, "T2I-Adapter"),
    ({"lora_controlnet", "input_blocks.0.0.weight"}, "Control-LoRA"),
    ({"task_embedding", "controlnet_cond_embedding.conv_in.weight"}, "ControlNet Union"),
])
def test_adapter_weights_are_recognised(keys, kind):
    assert identify_weights(keys) == kind


def test_a_controlnet_is_not_mistaken_for_an_adapter():
    assert identify_weights({"control_model.input_hint_block.0.weight", "control_model.time_embed.0.weight"}) is None
    assert identify_weights({"controlnet_cond_embedding.conv_in.weight", "conv_in.weight"}) is None


def test_adapter_weights_given_as_a_controlnet_are_named(tmp_path):
    save_file({"image_proj.proj.weight": torch.zeros(2, 2), "ip_adapter.1.to_k_ip.weight": torch.zeros(2, 2)},
              tmp_path / "ip-adapter_sd15.safetensors")
    with pytest.raises(KekongError, match="holds IP-Adapter weights, not a ControlNet"):
        load_controlnet(str(tmp_path / "ip-adapter_sd15.safetensors"))
    folder = tmp_path / "controlnet-xs"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetXSAdapter"}))
    with pytest.raises(KekongError, match="holds ControlNet-XS weights, not a ControlNet"):
        load_controlnet(str(folder))


def test_every_type_says_per_family_whether_it_runs():
    types = {t["name"]: t for t in listing()}
    assert types["Canny"]["support"] == {"sd15": "ControlNet", "sdxl": "ControlNet"}
    assert types["Reference"]["support"]["sd15"].startswith("reference-only")
    assert types["Instant-ID"]["support"]["sd15"].startswith("refused: InstantID")  # the extension's spelling
    assert types["T2I-Adapter"]["support"]["sd15"] == "T2I-Adapter (diffusers format)"
    assert "openpose_full" in types["OpenPose"]["modules"]


def test_each_type_lists_the_detectors_its_preprocessors_run_on_and_kekongs_own():
    """Derived from the extension's table: a preprocessor that gains a loader is listed under its
    types at once, and every kekong detector is listed under some type."""
    from kekong.detect import list_detectors

    types = {t["name"]: t["modules"] for t in listing()}
    assert "dw_openpose_full" in types["OpenPose"] and "depth_zoe" in types["Depth"]  # learned ones, with loaders
    assert types["SoftEdge"][-1] == "softedge_dog"  # kekong's own, after the extension's
    assert types["Revision"] == ["revision_clipvision", "revision_ignore_prompt"]  # refused: the extension's names
    listed = {module for modules in types.values() for module in modules}
    assert {d.name for d in list_detectors()} - listed == {"mediapipe_face"}  # the extension gives it no type
