"""LoRA files applied for one generation and removed after (the cached model stays clean).

Loading goes through diffusers' LoRA loader (peft), which reads the diffusers, kohya/A1111 and
other common key layouts; files are read with kekong's safe loader first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kekong.errors import KekongError


@contextmanager
def applied_loras(base, loras: list) -> Iterator[None]:
    if not loras:
        yield
        return
    from kekong.models.refs import resolve
    from kekong.models.weights import load_state_dict

    pipe = _pipeline(base)
    names = []
    try:
        for index, spec in enumerate(loras):
            ref = resolve(spec.path, "lora")
            name = f"kekong_lora_{index}"
            try:
                pipe.load_lora_weights(load_state_dict(ref.path), adapter_name=name)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise KekongError(f"LoRA {ref.name} does not fit {base.name}: {exc}") from None
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[spec.weight for spec in loras])
        yield
    finally:
        if names:
            pipe.unload_lora_weights()


def _pipeline(base):
    """A diffusers pipeline object over the loaded parts (only its LoRA loader is used)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    common = {"vae": base.vae, "unet": base.unet, "scheduler": _dummy_scheduler(base)}
    if len(base.text_encoders) == 2:
        return StableDiffusionXLPipeline(text_encoder=base.text_encoders[0], text_encoder_2=base.text_encoders[1],
                                         tokenizer=base.tokenizers[0], tokenizer_2=base.tokenizers[1], **common)
    return StableDiffusionPipeline(text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0],
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                   **common)


def _dummy_scheduler(base):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config({k: v for k, v in base.scheduler_config.items() if not k.startswith("_")})
