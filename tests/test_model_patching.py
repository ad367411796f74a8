"""Cached models are never changed by a request: a request's VAE is a view of the cached model,
its LoRAs, IP-Adapter processors and reference-only hooks are made under the model's lock and
taken out exactly after (also when it fails half-way), and "Full" previews polled from another
thread decode with the request's own VAE."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kekong.errors import KekongError
from kekong.generation.loop import Cancelled
from kekong.generation.pipeline import generate
from kekong.generation.preview import render
from kekong.io import save_image
from kekong.models.load import ModelCache, load_base
from kekong.models.patch import patched, with_vae
from kekong.request import LoraSpec, build_request
from tests.tiny_models import _clip_config, build_tiny_base, tiny_unet, tiny_vae

STEPS = 4


def lora_file(path, seed: int) -> str:
    """A LoRA for the tiny base's UNet and text encoder, with random (non-zero) up weights."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    state = {}
    for prefix, model, targets in (("unet", tiny_unet(), ["to_q", "to_k", "to_v", "to_out.0"]),
                                   ("text_encoder", CLIPTextModel(_clip_config()), ["q_proj", "v_proj"])):
        inject_adapter_in_model(LoraConfig(r=4, target_modules=targets), model, adapter_name="t")
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        lora = get_peft_model_state_dict(model, adapter_name="t")
        state |= {f"{prefix}.{k}": v.contiguous() for k, v in lora.items()}
    save_file(state, path)
    return str(path)


def vae_file(path, shift: float) -> str:
    vae = tiny_vae()
    with torch.no_grad():
        vae.decoder.conv_out.bias += shift  # decodes visibly brighter or darker
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, path)
    return str(path)


def ip_adapter_file(path, unet) -> None:
    """A plain IP-Adapter for the tiny UNet (h94's layout: projection + to_k_ip/to_v_ip per cross-attention)."""
    torch.manual_seed(7)
    cross, channels = unet.config.cross_attention_dim, unet.config.block_out_channels
    state = {"image_proj.proj.weight": torch.randn(4 * cross, 16) * 0.5, "image_proj.proj.bias": torch.zeros(4 * cross),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    names = [n.split(".") for n in unet.attn_processors if n.endswith("attn2.processor")]
    for key_id, block in zip(range(1, 2 * len(names), 2), names, strict=True):
        hidden = channels[-1] if block[0] == "mid_block" else (
            list(reversed(channels))[int(block[1])] if block[0] == "up_blocks" else channels[int(block[1])])
        state[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross)
        state[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross)
    save_file(state, path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("patching")
    base = str(build_tiny_base(root / "base"))
    models = root / "models"
    (models / "ControlNet").mkdir(parents=True)
    ip_adapter_file(models / "ControlNet" / "ip-adapter_tiny.safetensors", tiny_unet())
    torch.manual_seed(8)
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, patch_size=8,
                                                   projection_dim=16)).save_pretrained(models / "clip_vision" / "vit")
    rng = np.random.default_rng(0)
    picture = str(save_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), root / "picture.png"))
    misfit = root / "misfit.safetensors"  # its second layer's shapes fit no layer of the tiny UNet
    good = load_file(lora_file(root / "misfit-source.safetensors", 9))
    key = next(k for k in good if k.startswith("unet.") and "lora_A" in k)
    save_file({**good, key: torch.zeros(4, 999)}, misfit)
    return SimpleNamespace(base=base, models=models, picture=picture, misfit=str(misfit),
                           loras=[lora_file(root / "one.safetensors", 1), lora_file(root / "two.safetensors", 2)],
                           vaes=[vae_file(root / "bright.safetensors", 0.4), vae_file(root / "dark.safetensors", -0.4)])


@pytest.fixture
def env(setup, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(setup.models))
    return setup


def requests(env):
    """Two requests that patch the model differently: LoRA, VAE, and an IP-Adapter or a reference-only unit."""
    common = dict(model=env.base, width=64, height=64, steps=STEPS, sampler="Euler a", cfg_scale=5)
    ip = {"module": "ip-adapter_clip_sd15", "model": "ip-adapter_tiny", "image": env.picture}
    reference = {"module": "reference_only", "image": env.picture}
    return {"a": build_request(prompt="a red star", seed=3, loras=[{"path": env.loras[0], "weight": 1.0}],
                               vae=env.vaes[0], controls=[ip], **common),
            "b": build_request(prompt="a blue circle", seed=4, loras=[{"path": env.loras[1], "weight": 0.7}],
                               vae=env.vaes[1], controls=[reference], **common)}


def snapshot(base) -> dict:
    """Everything a request could leave behind on the cached model."""
    parts = [base.unet, *base.text_encoders, base.vae]
    return {"tensors": [{k: v.clone() for k, v in m.state_dict().items()} for m in parts],
            "modules": [[(name, type(module)) for name, module in m.named_modules()] for m in parts],
            "attributes": [sorted(vars(m)) for m in parts],
            "processors": dict(base.unet.attn_processors), "vae": base.vae,
            "projection": (base.unet.encoder_hid_proj, base.unet.config.encoder_hid_dim_type)}


def assert_unchanged(before: dict, after: dict) -> None:
    for old, new in zip(before["tensors"], after["tensors"], strict=True):
        assert old.keys() == new.keys()
        assert all(torch.equal(old[k], new[k]) for k in old)  # bit-identical weights
    assert before["modules"] == after["modules"] and before["attributes"] == after["attributes"]
    assert before["processors"].keys() == after["processors"].keys()
    assert all(after["processors"][k] is p for k, p in before["processors"].items())
    assert after["vae"] is before["vae"]
    assert after["projection"][0] is before["projection"][0] and after["projection"][1] == before["projection"][1]


def decode_with_file(vae_path: str, latents: torch.Tensor) -> np.ndarray:
    """What "Full" must show: the latents decoded by the VAE file, loaded apart from every cache."""
    vae = tiny_vae()
    vae.load_state_dict(load_file(vae_path))
    with torch.no_grad():
        pixels = vae.eval().decode(latents[:1] / vae.config.scaling_factor, return_dict=False)[0]
    return (((pixels[0] / 2 + 0.5).permute(1, 2, 0)).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def test_concurrent_requests_with_full_previews_match_running_them_one_after_another(env):
    reqs = requests(env)
    alone = {}
    for label, request in reqs.items():
        steps: list[torch.Tensor] = []
        image = generate(request, on_step=lambda info, s=steps: s.append(info.latents.clone()))[0].image
        alone[label] = (image, steps)

    published: queue.Queue = queue.Queue()
    previews: dict[tuple[str, int], np.ndarray] = {}
    images: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    running = threading.Event()
    running.set()

    def poll_previews() -> None:  # as /progress does: the job's view of the model, decoded on this thread
        while running.is_set() or not published.empty():
            try:
                label, step, latents, shown = published.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                previews[label, step] = render(latents, with_vae(load_base(env.base), reqs[label].vae), "Full")
            finally:
                shown.set()

    def run(label: str) -> None:
        def on_step(info) -> None:  # the generation waits, mid-request, until its preview is drawn
            shown = threading.Event()
            published.put((label, info.step, info.latents.clone(), shown))
            assert shown.wait(30)

        try:
            start.wait(10)
            images[label] = generate(reqs[label], on_step=on_step)[0].image
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    poller = threading.Thread(target=poll_previews)
    workers = [threading.Thread(target=run, args=(label,)) for label in reqs]
    for thread in (poller, *workers):
        thread.start()
    for thread in workers:
        thread.join(120)
    running.clear()
    poller.join(30)
    assert not errors, errors
    assert not np.array_equal(alone["a"][0], alone["b"][0])
    for label, (image, steps) in alone.items():
        assert np.array_equal(images[label], image)  # bit-identical to the request run alone
        for step, latents in enumerate(steps, start=1):
            expected = decode_with_file(reqs[label].vae, latents)
            assert np.array_equal(previews[label, step], expected)  # its own VAE, unpatched, every step


def test_a_request_leaves_the_cached_model_as_it_was(env):
    base = load_base(env.base)
    before = snapshot(base)
    for request in requests(env).values():
        generated = generate(request)[0]
        assert generated.vae is not None and generated.base.vae is not base.vae  # decoded with its own VAE
        assert_unchanged(before, snapshot(base))


def cancel_at_step_two(info) -> bool:
    return info.step < 2


def fail_at_step_two(info) -> None:
    if info.step == 2:
        raise RuntimeError("a bug in the caller's step callback")


@pytest.mark.parametrize("case", ["cancelled", "callback fails", "second LoRA misfits"])
def test_a_request_that_fails_half_way_leaves_it_as_it_was_too(env, case):
    base = load_base(env.base)
    before = snapshot(base)
    for request in requests(env).values():
        if case == "cancelled":
            with pytest.raises(Cancelled):
                generate(request, on_step=cancel_at_step_two)
        elif case == "callback fails":
            with pytest.raises(RuntimeError, match="step callback"):
                generate(request, on_step=fail_at_step_two)
        else:
            misfit = request.model_copy(update={"loras": [*request.loras, LoraSpec(path=env.misfit)]})
            with pytest.raises(KekongError, match="LoRA misfit does not fit"):
                generate(misfit)
        assert_unchanged(before, snapshot(base))


def test_lora_layers_are_in_while_patched_and_out_bit_identically_after(env):
    base = load_base(env.base)
    before = snapshot(base)
    ids = base.tokenizers[0]("a red star", return_tensors="pt").input_ids

    def encoded() -> torch.Tensor:
        with torch.no_grad():
            return base.text_encoders[0](ids)[0]

    plain = encoded()
    with patched(base, [LoraSpec(path=env.loras[0])]) as model:
        assert model is base  # no VAE chosen: the view is the model itself
        assert snapshot(base)["modules"] != before["modules"]  # LoRA layers wrap the UNet and text encoder
        assert not torch.equal(encoded(), plain)
    assert_unchanged(before, snapshot(base))
    assert torch.equal(encoded(), plain)


def test_the_vae_is_a_view_and_other_threads_wait_for_a_patched_model(env):
    base = load_base(env.base)
    own_vae = base.vae
    seen: list[list[type]] = []
    inside = threading.Event()

    def second_request() -> None:
        with patched(base) as model:
            seen.append([type(m) for m in model.unet.modules()])

    with patched(base, [LoraSpec(path=env.loras[0])], vae=env.vaes[0]) as model:
        assert model.vae is not own_vae and model.vae_ref.name == "bright"
        assert base.vae is own_vae and load_base(env.base) is base  # what every other reader gets: unswapped
        assert model.unet is base.unet and model.lock is base.lock
        other = threading.Thread(target=lambda: (inside.set(), second_request()))
        other.start()
        assert inside.wait(5)
        time.sleep(0.3)
        assert not seen  # it waits for this request's patches to come out
    other.join(10)
    assert seen == [[type(m) for m in base.unet.modules()]]  # and then sees the plain UNet
    assert not any("lora" in t.__module__.lower() for t in seen[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.vae = model.vae  # nothing may swap a part of a cached model


def test_the_full_preview_of_a_job_decodes_with_the_jobs_vae(env):
    from kekong.server.services import Services
    from kekong.server.worker import Running

    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    running = Running("job", model=env.base, vae=env.vaes[1], latents=latents)
    worker = SimpleNamespace(running=running, running_job=lambda job_id: running if job_id == "job" else None)
    services = Services(None, None, worker, {"show_progress_type": "Full"})
    assert np.array_equal(services.preview("job"), decode_with_file(env.vaes[1], latents))
    running.vae = None
    assert np.array_equal(services.preview("job"), render(latents, load_base(env.base), "Full"))
    assert not np.array_equal(services.preview("job"), decode_with_file(env.vaes[1], latents))


def test_the_cache_loads_a_key_once_for_threads_asking_together_and_logs_evictions(caplog):
    cache = ModelCache(budget_bytes=100)
    calls = []

    def load() -> torch.nn.Module:
        calls.append(threading.get_ident())
        time.sleep(0.2)
        return torch.nn.Linear(4, 4)  # 80 bytes of weights

    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("a", load))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(got) == 3 and got[0] is got[1] is got[2]

    with pytest.raises(OSError):
        cache.get("b", lambda: (_ for _ in ()).throw(OSError("unreadable")))
    with caplog.at_level(logging.INFO, logger="kekong.models.load"):
        assert cache.get("b", load) is not None and len(calls) == 2  # a failed load is tried again
        cache.get("c", load)
    assert len(cache) == 1
    assert any("model cache: a out" in r.getMessage() for r in caplog.records)
    assert any("model cache: b out" in r.getMessage() for r in caplog.records)
