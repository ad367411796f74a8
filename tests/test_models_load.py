"""Model loading: single files in the A1111/ComfyUI layouts load to the same weights as the
diffusers folder; references resolve from the models folder; bad files are refused clearly."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from kekong.errors import KekongError, MissingWeightsError
from kekong.models.load import ModelCache, load_base, load_controlnet
from kekong.models.refs import resolve, strip_hash
from tests.ldm_layout import clip_to_ldm, controlnet_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def contiguous(state):
    return {k: v.contiguous() for k, v in state.items()}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return build_tiny_base(root / "base"), build_tiny_base(root / "xl", sdxl=True), build_tiny_controlnet(root / "cn")


def test_sd_single_file_loads_the_same_weights_as_the_folder(folders, tmp_path):
    folder = load_base(str(folders[0]))
    save_file(contiguous({**unet_to_ldm(folder.unet), **vae_to_ldm(folder.vae),
                          **clip_to_ldm(folder.text_encoders[0])}), tmp_path / "model.safetensors")
    single = load_base(str(tmp_path / "model.safetensors"), config=folders[0])
    assert same_weights(folder.unet, single.unet) and same_weights(folder.vae, single.vae)
    assert same_weights(folder.text_encoders[0], single.text_encoders[0])
    assert single.name == "model" and single.family == folder.family


def test_sdxl_single_file_loads_the_same_weights_as_the_folder(folders, tmp_path):
    folder = load_base(str(folders[1]))
    save_file(contiguous({**unet_to_ldm(folder.unet), **vae_to_ldm(folder.vae),
                          **clip_to_ldm(folder.text_encoders[0], "conditioner.embedders.0.transformer."),
                          **open_clip_to_ldm(folder.text_encoders[1])}), tmp_path / "xl.safetensors")
    single = load_base(str(tmp_path / "xl.safetensors"), config=folders[1])
    assert single.family == "sdxl" and len(single.text_encoders) == 2
    for ours, theirs in zip([folder.unet, folder.vae, *folder.text_encoders],
                            [single.unet, single.vae, *single.text_encoders], strict=True):
        assert same_weights(ours, theirs)


def test_controlnet_single_file_in_ldm_and_diffusers_layouts(folders, tmp_path):
    folder, _ = load_controlnet(str(folders[2]))
    save_file(contiguous(controlnet_to_ldm(folder)), tmp_path / "control_ldm.safetensors")
    save_file(contiguous(folder.state_dict()), tmp_path / "control_diffusers.safetensors")
    ldm, _ = load_controlnet(str(tmp_path / "control_ldm.safetensors"), config=folders[2])
    flat, _ = load_controlnet(str(tmp_path / "control_diffusers.safetensors"), config=folders[2])
    assert same_weights(folder, ldm) and same_weights(folder, flat)


def test_checkpoint_pickles_load_weights_only(folders, tmp_path):
    folder, _ = load_controlnet(str(folders[2]))
    torch.save({"state_dict": controlnet_to_ldm(folder)}, tmp_path / "control.pth")
    loaded, _ = load_controlnet(str(tmp_path / "control.pth"), config=folders[2])
    assert same_weights(folder, loaded)


class RunsCode:
    def __reduce__(self):
        import os

        return os.system, ("touch /tmp/kekong-pwned",)


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    import os

    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as file:
        pickle.dump({"state_dict": RunsCode()}, file)
    if os.path.exists("/tmp/kekong-pwned"):
        os.remove("/tmp/kekong-pwned")
    with pytest.raises(KekongError, match="refused"):
        load_base(str(path))
    assert not os.path.exists("/tmp/kekong-pwned")


def test_not_a_model_file_is_named(tmp_path):
    save_file({"lora_unet_down.alpha": torch.ones(1)}, tmp_path / "lora.safetensors")
    with pytest.raises(KekongError, match="not a Stable Diffusion checkpoint"):
        load_base(str(tmp_path / "lora.safetensors"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(MissingWeightsError, match="not a model file"):
        load_base(str(tmp_path / "notes.txt"))


def test_names_resolve_in_the_models_folder_and_unknown_names_say_where_they_looked(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))
    (tmp_path / "ControlNet").mkdir()
    (tmp_path / "ControlNet" / "my_canny").symlink_to(folders[2], target_is_directory=True)
    assert resolve("my_canny [d14c016b]", "controlnet").path == tmp_path / "ControlNet" / "my_canny"
    with pytest.raises(MissingWeightsError, match=r"not found.*Stable-diffusion.*hf download owner/nothing"):
        resolve("owner/nothing", "base")
    assert strip_hash("control_v11p_sd15_canny [d14c016b]") == "control_v11p_sd15_canny"


def test_cache_evicts_least_recently_used_past_its_budget():
    cache = ModelCache(budget_bytes=3 * 400)
    make = lambda: torch.nn.Linear(10, 10)  # noqa: E731 - 110 floats = 440 bytes
    a = cache.get("a", make)
    cache.get("b", make)
    assert cache.get("a", make) is a  # a used again: b is now least recent
    cache.get("c", make)
    assert len(cache) == 2 and cache.get("a", make) is a


def test_v_prediction_from_the_yaml_beside_a_checkpoint_or_an_override(folders, tmp_path):
    """As A1111: SD 2.x 768-v checkpoints come with an original config saying parameterization "v"."""
    import numpy as np

    from kekong.generation.pipeline import generate
    from kekong.request import build_request

    folder = load_base(str(folders[0]))
    state = contiguous({**unet_to_ldm(folder.unet), **vae_to_ldm(folder.vae), **clip_to_ldm(folder.text_encoders[0])})
    save_file(state, tmp_path / "v-model.safetensors")
    (tmp_path / "v-model.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert load_base(str(tmp_path / "v-model.safetensors"), config=folders[0]).scheduler_config[
        "prediction_type"] == "v_prediction"

    def image(**fields):
        return generate(build_request(prompt="x", model=str(folders[0]), width=64, height=64, steps=2, seed=1,
                                      sampler="Euler", **fields))[0].image

    assert not np.array_equal(image(), image(prediction_type="v_prediction"))
    assert np.array_equal(image(), image(prediction_type="epsilon"))


def test_sd2_single_file_with_its_openclip_text_encoder(folders, tmp_path):
    """SD 2.x keeps OpenCLIP ViT-H weights under `cond_stage_model.model.`; they load into CLIPTextModel."""
    folder = load_base(str(folders[0]))
    save_file(contiguous({**unet_to_ldm(folder.unet), **vae_to_ldm(folder.vae),
                          **open_clip_to_ldm(folder.text_encoders[0], "cond_stage_model.model.")}),
              tmp_path / "sd2.safetensors")
    single = load_base(str(tmp_path / "sd2.safetensors"), config=folders[0])
    assert same_weights(folder.unet, single.unet) and same_weights(folder.text_encoders[0], single.text_encoders[0])
    assert single.tokenizers[0].pad_token == "!"


@pytest.mark.parametrize(("family", "unet_params", "text_params"), [("sd15", 859_520_964, 123_060_480),
                                                                   ("sd2", 865_910_724, 340_387_840)])
def test_bundled_configs_build_the_real_architectures(family, unet_params, text_params):
    """The configs single files load with are the published models' shapes (counted on the meta device)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from kekong.models.single_file import CONFIGS

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / family / "unet"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(CONFIGS / family / "text_encoder"))
    assert sum(p.numel() for p in unet.parameters()) == unet_params
    assert sum(p.numel() for p in text.parameters()) == text_params
