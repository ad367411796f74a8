"""The detailer (ADetailer): faces / hands found, repainted only inside their feathered masks, recorded
under ADetailer's infotext keys and read back; its A1111 script args and CLI flag."""

from __future__ import annotations

import numpy as np
import pytest

from kekong.detail_spec import DetailSpec, detail_spec, from_adetailer_args, from_cli, from_infotext, infotext_params
from kekong.detect.inpaint import feather_mask
from kekong.errors import ParameterError
from kekong.generation import detailer, pipeline
from kekong.generation.detailer import Region, detail_image, find_regions, masks_for, prompts, select
from kekong.request import GenerationRequest
from tests.test_cli import kekong
from tests.tiny_models import build_tiny_base


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(build_tiny_base(tmp_path_factory.mktemp("detailer") / "sd15"))


@pytest.mark.parametrize("name", ["face", "mediapipe_face_full"])
def test_finds_the_astronauts_face(astronaut, name):
    regions = find_regions(astronaut, DetailSpec(ad_model=name))
    assert len(regions) == 1
    x0, y0, x1, y1 = regions[0].box
    assert x0 < 222 < x1 and y0 < 128 < y1  # her nose (the openpose detector's)
    assert 60 < x1 - x0 < 140 and regions[0].confidence > 0.5
    assert find_regions(astronaut, DetailSpec(ad_model=name, ad_confidence=0.99)) == []


def test_no_face_on_a_cat_photo_of_noise():
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    assert find_regions(noise, DetailSpec()) == []
    assert find_regions(noise, DetailSpec(ad_model="hand")) == []


def test_masks_follow_adetailers_order_of_operations():
    shape = (100, 100)
    regions = [Region((60, 10, 80, 30), 0.9), Region((10, 10, 20, 20), 0.5), Region((30, 50, 70, 90), 0.7)]
    spec = DetailSpec(ad_dilate_erode=0, ad_mask_k=2)
    kept = select(regions, spec, shape)
    assert [r.box for r in kept] == [(30, 50, 70, 90), (60, 10, 80, 30)]  # the 2 largest, left to right
    by_confidence = select(regions, DetailSpec(ad_mask_k=1, ad_mask_filter_method="Confidence"), shape)
    assert [r.confidence for r in by_confidence] == [0.9]
    assert select(regions, DetailSpec(ad_mask_min_ratio=0.05), shape)[0].box == (30, 50, 70, 90)
    moved = masks_for([Region((10, 20, 30, 40), 1)], DetailSpec(ad_dilate_erode=0, ad_x_offset=5, ad_y_offset=3),
                      shape)[0]
    ys, xs = np.nonzero(moved)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (15, 34, 17, 36)  # right 5, up 3
    grown = masks_for([Region((10, 20, 30, 40), 1)], DetailSpec(ad_dilate_erode=6), shape)[0]
    shrunk = masks_for([Region((10, 20, 30, 40), 1)], DetailSpec(ad_dilate_erode=-6), shape)[0]
    assert (grown > 0).sum() > 400 > (shrunk > 0).sum() > 0
    merged = masks_for(regions, DetailSpec(ad_mask_merge_invert="Merge", ad_dilate_erode=0), shape)
    inverted = masks_for(regions, DetailSpec(ad_mask_merge_invert="Merge and Invert", ad_dilate_erode=0), shape)
    assert len(merged) == len(inverted) == 1 and np.array_equal(merged[0], 255 - inverted[0])


def test_sep_prompts_fall_back_to_the_images_prompt():
    assert prompts("", "a cat") == ["a cat"]
    assert prompts("smile [SEP] [PROMPT], detailed [SEP]", "a cat") == ["smile", "a cat, detailed", "a cat"]


def test_repaints_only_inside_the_feathered_mask(astronaut, model):
    request = GenerationRequest(prompt="x", model=model, steps=5, sampler="Euler", seed=3,
                                detail=[DetailSpec(ad_mask_blur=4, ad_dilate_erode=4)])
    seen = []

    def run(sub):
        seen.append(sub)
        return pipeline.generate(sub)

    out, counts = detail_image(astronaut, request, 3, "x", "", run)
    assert counts == [1]
    (sub,) = seen
    assert sub.inpaint_only_masked and sub.denoising_strength == 0.4 and sub.width is None  # native size
    assert sub.seed == 3 and sub.mask_blur == 4 and sub.detail == [] and sub.controls == []
    spec = request.detail[0]
    (mask,) = masks_for(find_regions(astronaut, spec), spec, astronaut.shape[:2])
    outside = feather_mask(mask, spec.ad_mask_blur) == 0
    assert 0.8 < outside.mean() < 0.99
    assert np.array_equal(out[outside], astronaut[outside])  # not one pixel changed outside the feathered mask
    x0, y0, x1, y1 = (round(v) for v in find_regions(astronaut, spec)[0].box)
    inside = np.abs(out[y0 + 8:y1 - 8, x0 + 8:x1 - 8].astype(int) - astronaut[y0 + 8:y1 - 8, x0 + 8:x1 - 8])
    assert inside.mean() > 5  # the face itself was repainted


def test_generate_runs_the_passes_and_the_infotext_round_trips(model, monkeypatch):
    from kekong.provenance.infotext_request import infotext_fields
    from kekong.provenance.stamp import describe

    monkeypatch.setattr(detailer, "find_regions", lambda image, spec: [Region((8, 8, 40, 40), 0.9)])
    specs = [DetailSpec(ad_denoising_strength=0.5, ad_prompt="a [SEP] b", ad_mask_k=2, ad_mask_blur=1),
             DetailSpec(ad_model="hand", ad_confidence=0.6, ad_use_steps=True, ad_steps=4, ad_mask_blur=1,
                        ad_dilate_erode=0)]
    plain = GenerationRequest(prompt="x", model=model, steps=4, sampler="Euler", seed=5, width=64, height=64)
    before = pipeline.generate(plain)[0].image
    generated = pipeline.generate(plain.model_copy(update={"detail": specs}))[0]
    changed = np.abs(generated.image.astype(int) - before).max(axis=-1) > 0
    assert changed[10:38, 10:38].mean() > 0.5 and not changed[50:].any() and not changed[:, 50:].any()
    text, recipe = describe(generated)
    assert "ADetailer model: mediapipe_face_short" in text and "ADetailer model 2nd: mediapipe_hands" in text
    assert "ADetailer denoising strength: 0.5" in text and "ADetailer steps 2nd: 4" in text
    read = infotext_fields(text)
    assert [DetailSpec(**d) for d in read.fields["detail"]] == specs
    assert not [u for u in read.unused if u.startswith("ADetailer")]
    assert [DetailSpec(**d) for d in recipe["request"]["detail"]] == specs  # replay rebuilds it


def test_infotext_keys_are_adetailers():
    params = infotext_params([DetailSpec(), DetailSpec(ad_model="hand", ad_inpaint_only_masked=False)])
    assert params["ADetailer model"] == "mediapipe_face_short" and params["ADetailer inpaint padding"] == 32
    assert "ADetailer prompt" not in params and "ADetailer inpaint padding 2nd" not in params
    assert params["ADetailer inpaint only masked 2nd"] is False
    specs, unknown = from_infotext({"ADetailer model": "face", "ADetailer confidence 3rd": "0.5",
                                    "ADetailer model 3rd": "hand", "ADetailer version": "24.1.1",
                                    "ADetailer use separate sampler": "True"})
    assert specs == [{"ad_model": "face"}, {"ad_confidence": "0.5", "ad_model": "hand"}]
    assert unknown == ["ADetailer use separate sampler"]


def test_adetailer_script_args_and_refusals():
    specs = from_adetailer_args([True, False, {"ad_model": "mediapipe_face_full", "ad_confidence": 0.5,
                                               "ad_use_vae": False, "is_api": True},
                                 {"ad_model": "None"}, {"ad_model": "hand", "ad_tab_enable": False}])
    assert [s.ad_model for s in specs] == ["mediapipe_face_full"] and specs[0].ad_confidence == 0.5
    assert from_adetailer_args([False, {"ad_model": "face"}]) == []
    with pytest.raises(ParameterError, match="ad_restore_face is not supported"):
        from_adetailer_args([{"ad_model": "face", "ad_restore_face": True}])
    with pytest.raises(ParameterError, match=r"'face_yolov8n\.pt' is not in kekong"):
        detail_spec({"ad_model": "face_yolov8n.pt"})
    with pytest.raises(ParameterError, match="skip img2img"):
        from_adetailer_args([True, True, {"ad_model": "face"}])
    assert from_cli("hand,denoising_strength=0.3,ad_mask_k=1") == DetailSpec(
        ad_model="mediapipe_hands", ad_denoising_strength=0.3, ad_mask_k=1)


def test_a1111_payload_carries_the_passes():
    from kekong.server.a1111_request import Translated, _scripts
    from kekong.server.inputs import NO_URLS

    translated = Translated({})
    _scripts({"ADetailer": {"args": [True, False, {"ad_model": "face", "ad_prompt": "smile"}]}}, translated, NO_URLS)
    assert [DetailSpec(**d) for d in translated.fields["detail"]] == [DetailSpec(ad_prompt="smile")]
    with pytest.raises(ParameterError, match="ControlNet and ADetailer scripts"):
        _scripts({"Regional Prompter": {"args": [True]}}, Translated({}), NO_URLS)


def test_a_pass_without_steps_is_refused_first(model):
    request = GenerationRequest(prompt="x", model=model, steps=2, detail=[DetailSpec()])
    with pytest.raises(ParameterError, match=r"detail pass 1 .* leaves no step"):
        pipeline.generate(request)


def test_cli_bad_detail_is_one_error_line(tmp_path):
    done = kekong("generate", "x", "--detail", "hand_yolov8n.pt", "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --detail 'hand_yolov8n.pt'"), done.stderr


def test_a_pass_can_carry_a_unit_whose_detector_runs_on_the_crop(astronaut, model, tmp_path_factory, monkeypatch):
    from tests.tiny_models import build_tiny_controlnet

    cn = str(build_tiny_controlnet(tmp_path_factory.mktemp("detailer-cn") / "cn"))
    spec = DetailSpec(ad_controlnet_module="openpose_face", ad_controlnet_model=cn, ad_controlnet_weight=0.8)
    request = GenerationRequest(prompt="x", model=model, steps=4, sampler="Euler", seed=3, detail=[spec])
    seen = []
    real = pipeline.detect_units

    def spy(units, size, init, crop=None, inpaint_mask=None):
        seen.append((crop, [(u.unit.module, u.unit.image, u.unit.weight) for u in units]))
        return real(units, size, init, crop=crop, inpaint_mask=inpaint_mask)

    monkeypatch.setattr(pipeline, "detect_units", spy)
    _, counts = detail_image(astronaut, request, 3, "x", "", pipeline.generate)
    assert counts == [1]
    ((crop, units),) = seen
    assert units == [("openpose_face", None, 0.8)]  # the init image: the detector sees the only-masked crop
    assert crop is not None and (crop[2] - crop[0]) * (crop[3] - crop[1]) < 0.25 * 512 * 512
    assert not detailer.pass_request(request.model_copy(update={"detail": [DetailSpec()]}), DetailSpec(), 0, 3,
                                     astronaut, np.zeros((512, 512), np.uint8), "x", "").controls


def test_a_pass_unit_in_adetailers_names_and_keys():
    spec = detail_spec({"ad_model": "hand", "ad_controlnet_module": "openpose_hand", "ad_controlnet_weight": 0.7})
    params = infotext_params([DetailSpec(), spec])
    assert params["ADetailer ControlNet module 2nd"] == "openpose_hand" and params["ADetailer ControlNet weight 2nd"]
    assert "ADetailer ControlNet model" not in params and "ADetailer ControlNet module" not in params
    read, unknown = from_infotext({k: str(v) for k, v in params.items()})
    assert [DetailSpec(**d) for d in read] == [DetailSpec(), spec] and not unknown
    assert DetailSpec(ad_controlnet_model="control_v11p_sd15_openpose").unit_module == "openpose_full"  # ADetailer's
    with pytest.raises(ValueError, match="name its ad_controlnet_module"):
        DetailSpec(ad_controlnet_model="my-controlnet")
    with pytest.raises(ValueError, match="openpose_hand"):
        DetailSpec(ad_controlnet_module="openpose_hnd")  # close-match suggestion
    assert from_cli("hand,controlnet_module=openpose_hand").unit_module == "openpose_hand"
