"""Every preprocessor identifier sd-webui-controlnet defines either runs on a kekong detector or is refused
with a named reason; /controlnet/module_list and /controlnet/control_types answer as the extension does.

Expected values are written from the extension's code (scripts/supported_preprocessor.py, the
preprocessor modules, legacy/preprocessor_compiled.py and processor.py, July 2024)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kekong.detect import run
from kekong.detect.extension_names import (
    ENCODER,
    IDENTIFIERS,
    LIBRARY,
    NOT_IN_KEKONG,
    PREPROCESSORS,
    WEIGHTS,
    control_type_models,
    lookup,
)
from kekong.detect.registry import get
from kekong.errors import MissingWeightsError, ParameterError
from kekong.server.app import create_app
from kekong.server.config import ServerConfig

RNG = np.random.default_rng(3)
PICTURE = RNG.integers(0, 256, (64, 96, 3), dtype=np.uint8)
HALF_MASK = np.zeros((64, 96), np.uint8)
HALF_MASK[:, :48] = 255


def test_the_table_holds_the_extensions_72_preprocessors_and_94_identifiers():
    assert len(PREPROCESSORS) == 72 and len(IDENTIFIERS) == 94
    assert len({p.name for p in PREPROCESSORS}) == 72 and len({p.display for p in PREPROCESSORS}) == 72


@pytest.mark.parametrize("identifier", IDENTIFIERS)
def test_every_identifier_runs_or_is_refused_with_its_reason(identifier, tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))  # no annotator weights here
    preprocessor = lookup(identifier)
    assert preprocessor is not None
    if preprocessor.refused is not None:
        refusal = preprocessor.refused
        if refusal.kind == WEIGHTS:
            first = refusal.files[0][1].rsplit("/", 1)[-1]
            with pytest.raises((MissingWeightsError, ParameterError)) as caught:
                get(identifier)
            # missing: names the file and where kekong looks; present (an HF cache): says kekong cannot run it
            assert first in str(caught.value) or "weights are here" in str(caught.value)
            assert "no loader" in str(caught.value)
        else:
            assert refusal.kind in (LIBRARY, ENCODER, NOT_IN_KEKONG)
            with pytest.raises(ParameterError, match=f"module '{re.escape(identifier)}'.* is not supported"):
                get(identifier)
        return
    detector = get(identifier)
    assert detector.name == preprocessor.runs
    if detector.needs_weights is not None:
        return  # learned: its own tests (test_pidinet, test_mlsd, test_normalbae, …) load released layouts
    result = run(identifier, PICTURE, res=64, mask=HALF_MASK if detector.takes_mask else None)
    assert result.image.ndim == 3 and result.image.shape[2] == 3
    assert result.image.dtype == (np.float32 if detector.takes_mask else np.uint8)
    assert result.image.shape[:2] == (64, 96)  # res 64 is this picture's short side: no rescaling either way


def test_counts_run_and_refused():
    refused = [i for i in IDENTIFIERS if lookup(i).refused is not None]
    kinds = {kind: sum(lookup(i).refused.kind == kind for i in refused) for kind in (WEIGHTS, LIBRARY, ENCODER,
                                                                                       NOT_IN_KEKONG)}
    assert len(IDENTIFIERS) - len(refused) == 75 and kinds == {WEIGHTS: 0, LIBRARY: 7, ENCODER: 10, NOT_IN_KEKONG: 2}
    offline = [i for i in IDENTIFIERS if lookup(i).runs and get(i).needs_weights is None]
    assert len(offline) == 27 and {"recolor_luminance", "tile_colorfix+sharp", "inpaint", "mediapipe_face"} <= set(
        offline)


def test_names_that_used_to_reach_the_wrong_preprocessor():
    assert get("normal_map").name == get("normal_midas").name == "normal_midas" != get("normal_from_depth").name
    assert get("inpaint").name == get("inpaint_global_harmonious").name == "inpaint_global_harmonious"
    assert get("inpaint_global_harmonious") is not get("inpaint_only")
    assert get("none").name == "none" and get("depth").name == "depth_midas"


def _lab_lightness(value: float) -> float:
    """OpenCV's 8-bit L of an sRGB colour whose relative luminance is `value` (CIE L* scaled to 0–255)."""
    f = value ** (1 / 3) if value > 0.008856 else 7.787 * value + 16 / 116
    return (116 * f - 16) * 255 / 100


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def test_recolor_luminance_is_lab_lightness_with_the_gamma_and_the_extensions_channel_order():
    grey = np.full((8, 8, 3), 150, np.uint8)
    lightness = _lab_lightness(_linear(150))
    out = run("recolor_luminance", grey).image
    assert np.all(out == out[:, :, :1]) and abs(int(out[0, 0, 0]) - lightness) <= 1
    darker = run("recolor_luminance", grey, gamma_correction=2.0).image
    assert int(darker[0, 0, 0]) == int((int(out[0, 0, 0]) / 255) ** 2 * 255)  # on the 8-bit L, as the extension
    # the extension converts its RGB picture as BGR: pure blue weighs as red would (0.2126), red as blue (0.0722)
    red, blue = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    assert abs(int(run("recolor_luminance", blue).image[0, 0, 0]) - _lab_lightness(0.2126)) <= 1
    assert abs(int(run("recolor_luminance", red).image[0, 0, 0]) - _lab_lightness(0.0722)) <= 1


def test_recolor_intensity_is_the_brightest_channel_with_the_gamma():
    out = run("recolor_intensity", PICTURE, gamma_correction=0.5).image
    expected = ((PICTURE.max(axis=2) / 255.0) ** 0.5 * 255).astype(np.uint8)
    assert out.shape == PICTURE.shape and np.abs(out[:, :, 1].astype(int) - expected).max() <= 1
    assert np.all(out == out[:, :, :1])


def test_tile_colorfix_maps_are_the_picture_at_its_size_and_check_their_sliders():
    for name in ("tile_colorfix", "tile_colorfix+sharp"):
        assert np.array_equal(run(name, PICTURE).image, PICTURE)  # not scaled to the processor resolution
    with pytest.raises(ParameterError, match=r"variation.*below its minimum 3"):
        run("tile_colorfix", PICTURE, variation=2)
    with pytest.raises(ParameterError, match=r"sharpness.*above its maximum 2"):
        run("tile_colorfix+sharp", PICTURE, sharpness=2.5)


def test_inpaint_global_harmonious_is_the_minus_one_map_at_the_pictures_size():
    out = run("inpaint_global_harmonious", PICTURE, mask=HALF_MASK).image
    assert out.shape == PICTURE.shape and out.dtype == np.float32
    assert np.all(out[:, :48] == -1.0) and np.allclose(out[:, 48:], PICTURE[:, 48:] / 255.0)
    assert run("inpaint_only", PICTURE, mask=HALF_MASK).image.shape[:2] == (512, 768)  # kekong's own, rescaled
    with pytest.raises(ParameterError, match="needs a mask"):
        run("inpaint", PICTURE)


def test_normal_midas_is_the_annotators_formula_not_normal_from_depth():
    ramp = np.tile(np.arange(128, dtype=np.uint8)[None, :, None], (64, 1, 3))  # depth rising 1 per column
    out = run("normal_map", ramp, res=64, input_is_depth=True).image
    assert out.shape == (64, 128, 3)
    assert tuple(out[32, 10]) == (255, 127, 127)  # below the 0.4 background threshold: flat, channels reversed
    x, z = 8.0, 2 * math.pi  # Sobel of a unit ramp, the annotator's constant z
    norm = math.hypot(x, z)
    assert tuple(out[32, 100]) == (int(127.5 + 127.5 * z / norm), 127, int(127.5 + 127.5 * x / norm))
    assert tuple(run("normal_midas", ramp, res=64, input_is_depth=True, bg_threshold=0.0).image[32, 10])[2] > 127
    flat = run("normal_from_depth", np.full((64, 64, 3), 90, np.uint8), res=64, input_is_depth=True).image
    assert flat[32, 32, 2] == 255 and flat[32, 32, 0] < 255  # kekong's normalbae colours: blue faces the viewer


def test_mediapipe_face_draws_the_annotators_colours_on_a_face(astronaut):
    blank = run("mediapipe_face", np.full((128, 128, 3), 200, np.uint8)).image
    assert not blank.any()  # no face: a black map
    out = run("mediapipe_face", astronaut[:256, 96:352]).image  # her face fills most of this crop
    colours = {tuple(c) for c in out.reshape(-1, 3)} - {(0, 0, 0)}
    palette = {(10, 200, 10), (10, 200, 180), (10, 220, 180), (180, 200, 10), (180, 220, 10), (10, 180, 10),
               (250, 200, 10), (10, 200, 250)}  # the annotator's BGR specs, flipped to RGB
    assert colours and colours <= palette and (10, 200, 10) in colours  # the face oval
    with pytest.raises(ParameterError, match=r"max_faces.*above its maximum 10"):
        run("mediapipe_face", astronaut, max_faces=11)


def test_none_hands_the_image_on_as_it_is():
    assert np.array_equal(run("none", PICTURE).image, PICTURE)


def test_control_type_models_filter_as_the_extension_does():
    models = ["t2iadapter_sketch_sd14v1 [e5d4b846]", "control_sd15_scribble [fef5e48e]",
              "control_v11p_sd15_scribble [d4ba51ff]", "control_v11p_sd15_canny [d14c016b]",
              "controlnet-union-sdxl-1.0 [0c4e5a8c]"]
    listed, default = control_type_models("Scribble", models)
    assert listed == ["None", *models[:3], models[4]] and default == models[2]  # "sketch", union; the 1.1 one
    assert control_type_models("Shuffle", models) == (["None"], "None")
    assert control_type_models("All", models) == (["None", *models], "None")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path_factory.mktemp("server"), ui=False))) as client:
        yield client


MODULE_NAMES = [
    "none", "ip-adapter-auto", "tile_resample", "pidinet", "oneformer_ade20k", "pidinet_scribble",
    "revision_clipvision", "reference_only", "recolor_luminance", "openpose_full", "normal_bae", "mlsd",
    "lineart_standard", "ip-adapter_clip_sd15", "inpaint_only", "depth", "canny", "invert", "tile_colorfix+sharp",
    "tile_colorfix", "threshold", "clip_vision", "pidinet_sketch", "color", "softedge_teed", "pidinet_safe",
    "hed_safe", "hed", "softedge_anyline", "shuffle", "segmentation", "oneformer_coco", "anime_face_segment",
    "scribble_xdog", "scribble_hed", "revision_ignore_prompt", "reference_adain+attn", "reference_adain",
    "recolor_intensity", "openpose_hand", "openpose_faceonly", "openpose_face", "openpose", "normal_map",
    "normal_dsine", "mobile_sam", "mediapipe_face", "lineart", "lineart_coarse", "lineart_anime_denoise",
    "lineart_anime", "ip-adapter_pulid", "ip-adapter_face_id_plus", "ip-adapter_face_id",
    "ip-adapter_clip_sdxl_plus_vith", "ip-adapter_clip_sdxl", "instant_id_face_keypoints",
    "instant_id_face_embedding", "inpaint_only+lama", "inpaint", "facexlib", "dw_openpose_full", "depth_zoe",
    "depth_leres++", "depth_leres", "depth_hand_refiner", "depth_anything_v2", "depth_anything", "densepose_parula",
    "densepose", "blur_gaussian", "animal_openpose"]
LABELS = {"pidinet": "softedge_pidinet", "oneformer_ade20k": "seg_ofade20k", "pidinet_scribble": "scribble_pidinet",
          "lineart_standard": "lineart_standard (from white bg & black line)", "ip-adapter_clip_sd15":
          "ip-adapter_clip_h", "depth": "depth_midas", "invert": "invert (from white bg & black line)",
          "clip_vision": "t2ia_style_clipvision", "pidinet_sketch": "t2ia_sketch_pidi", "color": "t2ia_color_grid",
          "pidinet_safe": "softedge_pidisafe", "hed_safe": "softedge_hedsafe", "hed": "softedge_hed",
          "segmentation": "seg_ufade20k", "oneformer_coco": "seg_ofcoco", "anime_face_segment": "seg_anime_face",
          "normal_map": "normal_midas", "lineart": "lineart_realistic", "ip-adapter_clip_sdxl": "ip-adapter_clip_g",
          "inpaint": "inpaint_global_harmonious", "densepose_parula": "densepose_parula (black bg & blue torso)",
          "densepose": "densepose (pruple bg & purple torso)"}
RES = {"name": "Resolution", "value": 512, "min": 64, "max": 2048, "step": 8}


def test_module_list_is_the_extensions(client):
    by_name = client.get("/controlnet/module_list").json()
    assert by_name["module_list"] == MODULE_NAMES and list(by_name["module_detail"]) == MODULE_NAMES
    by_label = client.get("/controlnet/module_list", params={"alias_names": True}).json()
    assert by_label["module_list"] == [LABELS.get(n, n) for n in MODULE_NAMES]
    detail = by_name["module_detail"]
    assert detail["canny"] == {"model_free": False, "sliders": [
        RES, {"name": "Low Threshold", "value": 100, "min": 1, "max": 255, "step": 1},
        {"name": "High Threshold", "value": 200, "min": 1, "max": 255, "step": 1}]}
    assert detail["invert"]["sliders"] == detail["shuffle"]["sliders"] == detail["inpaint"]["sliders"] == []
    assert detail["lineart"]["sliders"] == [RES]  # legacy preprocessors all show the resolution slider
    assert detail["softedge_anyline"]["sliders"][0] == {**RES, "value": 1280}
    assert detail["reference_only"] == {"model_free": True, "sliders": [
        RES, {"name": "Style Fidelity (only for Balanced mode)", "value": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}]}
    assert by_label["module_detail"]["normal_midas"]["sliders"][1] == {
        "name": "Normal Background Threshold", "value": 0.4, "min": 0.0, "max": 1.0, "step": 0.01}


def test_control_types_are_the_extensions(client):
    types = client.get("/controlnet/control_types").json()["control_types"]
    assert list(types) == ["All", "Canny", "Depth", "IP-Adapter", "Inpaint", "Instant-ID", "InstructP2P", "Lineart",
                           "MLSD", "NormalMap", "OpenPose", "Recolor", "Reference", "Revision", "Scribble",
                           "Segmentation", "Shuffle", "SoftEdge", "SparseCtrl", "T2I-Adapter", "Tile"]
    assert types["All"]["module_list"] == [LABELS.get(n, n) for n in MODULE_NAMES]
    assert (types["All"]["default_option"], types["All"]["default_model"]) == ("none", "None")
    expected = {
        "Tile": ["none", "tile_resample", "tile_colorfix+sharp", "tile_colorfix", "blur_gaussian"],
        "Recolor": ["none", "recolor_luminance", "recolor_intensity"],
        "Inpaint": ["none", "inpaint_only", "inpaint_only+lama", "inpaint_global_harmonious"],
        "Scribble": ["none", "scribble_pidinet", "invert (from white bg & black line)", "scribble_xdog",
                     "scribble_hed"],
        "Instant-ID": ["none", "instant_id_face_keypoints", "instant_id_face_embedding"],
        "InstructP2P": ["none"],
        "OpenPose": ["none", "openpose_full", "openpose_hand", "openpose_faceonly", "openpose_face", "openpose",
                     "dw_openpose_full", "densepose_parula (black bg & blue torso)",
                     "densepose (pruple bg & purple torso)", "animal_openpose"],
    }
    for name, modules in expected.items():
        assert types[name]["module_list"] == modules
        assert types[name]["default_option"] == (modules[1] if len(modules) > 1 else "none")
    assert types["IP-Adapter"]["default_option"] == "ip-adapter-auto"
    assert {"module_list", "model_list", "default_option", "default_model"} <= set(types["Tile"])
    assert types["Tile"]["kekong_support"]["sd15"] == "ControlNet"  # kekong's own addition, under its spelling


def test_detect_takes_none_and_the_extensions_names(client):
    from tests.server_helpers import b64_png, decode

    for module in ("none", "recolor_luminance", "normal_map"):
        answer = client.post("/controlnet/detect", json={"controlnet_module": module, "controlnet_input_images":
                                                         [b64_png(PICTURE)], "controlnet_processor_res": 64})
        if module == "normal_map":  # the depth model is not on this machine: refused, naming it
            assert answer.status_code == 200 or "Intel/dpt-hybrid-midas" in answer.text
            continue
        assert answer.status_code == 200, answer.text
        image = np.asarray(decode(answer.json()["images"][0]).convert("RGB"))
        if module == "none":
            assert np.array_equal(image, PICTURE)
        else:
            assert np.all(image == image[:, :, :1]) and image.shape == PICTURE.shape
