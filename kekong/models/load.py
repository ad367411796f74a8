"""Loading base models and ControlNets, with a cache bounded by memory (least recently used out).

A base model has SD's parts — UNet, VAE, text encoder(s) + tokenizer(s), scheduler config —
whatever its text encoder is (CLIP for SD 1.5/SDXL, MiniLM for the shipped kekong-shapes).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kekong.errors import KekongError, MissingWeightsError
from kekong.models import offload, precision, single_file
from kekong.models.hashes import legacy_hash, short_hash
from kekong.models.refs import DEFAULT_BASE, ModelRef, resolve
from kekong.models.weights import load_state_dict

FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL", "sd2": "SD 2.x"}
log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class BaseModel:
    """The parts of a Stable-Diffusion-shaped model, loaded and in eval mode.

    Cached and shared: a request never assigns to it. A request's VAE choice is a copy of this
    record (`patch.with_vae`, same parts, same lock); patches that change the parts in place
    happen under `lock` (models/patch.py)."""

    ref: ModelRef
    unet: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]
    controlnets: dict[str, str] = field(default_factory=dict)  # module → default ControlNet (shipped)
    vae_ref: ModelRef | None = None  # a VAE chosen apart from the model's own (a request's view)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)  # held while patched

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def family(self) -> str:
        return unet_family(self.unet.config)

    @property
    def uses_clip(self) -> bool:
        return type(self.text_encoders[0]).__name__.startswith("CLIP")

    @property
    def hash(self) -> str:
        return short_hash(self.ref.path)

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def unet_family(config: Any) -> str:
    """"sdxl", "sd15", "sd2", or a description, from a UNet or ControlNet config."""
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    width = config["cross_attention_dim"]
    return {768: "sd15", 1024: "sd2"}.get(width, f"custom (cross-attention {width})")


def family_name(family: str) -> str:
    return FAMILY_NAMES.get(family, family)


class ModelCache:
    """Loaded models by key, evicting the least recently used past a memory budget."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}  # one loader per key; the others wait for its result

    def get(self, key: str, load: Any) -> Any:
        """The value for `key`, loaded once: threads asking together share one object (and its lock)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._items:  # loaded by the thread this one waited for
                    self._items.move_to_end(key)
                    return self._items[key][0]
            try:
                value = load()
                size = _size_of(value)
                with self._lock:
                    self._items[key] = (value, size)
                    self._evict()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return value

    def _evict(self) -> None:
        """Least recently used out past the budget; the newest stays even alone over it. A request
        that still holds an evicted model keeps using it; the next one loads a fresh copy."""
        used = sum(s for _, s in self._items.values())
        while len(self._items) > 1 and used > self.budget:
            key, (_, size) = self._items.popitem(last=False)
            used -= size
            log.info("model cache: %s out (least recently used; %.2f GiB held, budget %.2f GiB)",
                     key, used / 2**30, self.budget / 2**30)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _size_of(value: Any) -> int:
    modules = [value] if isinstance(value, torch.nn.Module) else [
        m for m in vars(value).values() if isinstance(m, torch.nn.Module)] + [
        m for m in getattr(value, "text_encoders", [])]
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


CACHE = ModelCache(int(float(os.environ.get("KEKONG_MODEL_CACHE_GB", "12")) * 2**30))


def load_base(reference: str | None = None, config: str | Path | None = None) -> BaseModel:
    """A base model by reference (default: the shipped kekong-shapes), from the cache when loaded."""
    ref = resolve(reference or DEFAULT_BASE, "base")
    quiet_loading()
    key = f"base:{ref.path.resolve()}:{config}:{precision.setting()}:{precision.compute_setting()}:{offload.setting()}"
    return CACHE.get(key, lambda: _load_base(ref, config))


def _load_base(ref: ModelRef, config: str | Path | None) -> BaseModel:
    if ref.is_file:
        parts = single_file.load_components(load_state_dict(ref.path), Path(config) if config else None)
        for name in ("unet", "vae"):  # each built in fp32 from the file, then stored as `auto` decides
            prepare = precision.for_denoiser if name == "unet" else precision.keep_in
            parts[name] = prepare(parts[name], precision.storage_dtype(precision.model_fp32_bytes(parts[name])))
        parts["text_encoders"] = offload.text_encoders(parts["text_encoders"], ref.path)
        if single_file.predicts_v(ref.path):
            parts["scheduler_config"] = {**parts["scheduler_config"], "prediction_type": "v_prediction"}
            if unet_family(parts["unet"].config) == "sd2":
                parts["unet"].register_to_config(sample_size=96)  # SD 2.x v models are the 768-px ones
        return BaseModel(ref, **parts)
    return _load_base_folder(ref)


def _load_base_folder(ref: ModelRef) -> BaseModel:
    import diffusers
    import transformers

    folder = ref.path
    index = json.loads((folder / "model_index.json").read_text())
    extra = json.loads((folder / "kekong.json").read_text()) if (folder / "kekong.json").is_file() else {}

    def component(name: str) -> Any:
        library, class_name = index[name]
        module = diffusers if library == "diffusers" else transformers
        source = extra.get("components", {}).get(name)
        where = _package_path(source) if source else folder / name
        cls = getattr(module, class_name)
        weighted = isinstance(cls, type) and issubclass(cls, torch.nn.Module)  # not a tokenizer
        storage = precision.storage_dtype(precision.safetensors_fp32_bytes(where)) if weighted else None
        options = {"torch_dtype" if library == "diffusers" else "dtype": storage or torch.float32} if weighted else {}
        try:
            model = cls.from_pretrained(where, local_files_only=True, **options)
        except (OSError, ValueError) as exc:
            raise KekongError(f"{ref.name}: cannot load {name} from {where}: {exc}") from None
        if not weighted:
            return model
        return precision.for_denoiser(model, storage) if name == "unet" else precision.keep_in(model, storage)

    encoders = [component(n) for n in ("text_encoder", "text_encoder_2") if n in index and index[n][0]]
    tokenizers = [component(n) for n in ("tokenizer", "tokenizer_2") if n in index and index[n][0]]
    if "tokenizer_max_length" in extra:  # the prompt window the model was trained with
        for tokenizer in tokenizers:
            tokenizer.model_max_length = int(extra["tokenizer_max_length"])
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    encoders = offload.text_encoders([e.eval() for e in encoders], folder)
    return BaseModel(ref, component("unet").eval(), component("vae").eval(), encoders,
                     tokenizers, scheduler, extra.get("controlnets", {}))


def _package_path(source: str) -> Path:
    """`package:relative/path` → a folder inside an installed package (the shipped text encoder)."""
    import importlib

    package, _, relative = source.partition(":")
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise MissingWeightsError(f"the Python package {package} is missing; `make setup` installs it") from None
    return Path(module.__file__).parent / relative


def load_controlnet(reference: str, config: str | Path | None = None) -> tuple[Any, ModelRef]:
    """A ControlNetModel (diffusers folder, single file in either layout, hub id, or name)."""
    ref = resolve(reference, "controlnet")
    key = f"controlnet:{ref.path.resolve()}:{config}:{precision.setting()}:{precision.compute_setting()}"  # per setting
    model = CACHE.get(key, lambda: _load_controlnet(ref, config))
    return model, ref


def _load_controlnet(ref: ModelRef, config: str | Path | None) -> Any:
    from diffusers import ControlNetModel, ControlNetUnionModel

    from kekong.models.control_types import refuse_adapter_weights

    if ref.is_file:
        state = load_state_dict(ref.path)
        refuse_adapter_weights(ref.name, set(state))  # an adapter is named, not misread as a ControlNet
        model = single_file.load_controlnet(state, Path(config) if config else None)
        return precision.for_denoiser(model, precision.storage_dtype(precision.model_fp32_bytes(model)))
    config_file = ref.path / "config.json"
    class_name = json.loads(config_file.read_text()).get("_class_name") if config_file.is_file() else None
    if class_name == "T2IAdapter":
        return _load_t2i_adapter(ref)
    if class_name != "ControlNetUnionModel":
        refuse_adapter_weights(ref.name, set(), class_name)
    cls = ControlNetUnionModel if class_name == "ControlNetUnionModel" else ControlNetModel
    storage = precision.storage_dtype(precision.safetensors_fp32_bytes(ref.path))
    try:
        model = cls.from_pretrained(ref.path, local_files_only=True, torch_dtype=storage or torch.float32).eval()
    except (OSError, ValueError) as exc:
        raise KekongError(f"cannot load ControlNet {ref.name} from {ref.path}: {exc}") from None
    return precision.for_denoiser(model, storage)


def _load_t2i_adapter(ref: ModelRef) -> Any:
    from diffusers import T2IAdapter

    try:
        return T2IAdapter.from_pretrained(ref.path, local_files_only=True, torch_dtype=torch.float32).eval()
    except (OSError, ValueError) as exc:
        raise KekongError(f"cannot load T2I-Adapter {ref.name} from {ref.path}: {exc}") from None


def is_adapter(model: Any) -> bool:
    """A T2I-Adapter (its features go into the UNet's down blocks) rather than a ControlNet."""
    return type(model).__name__ == "T2IAdapter"


def controlnet_label(ref: ModelRef) -> str:
    """How sd-webui-controlnet names a model in infotext: `name [legacy hash]`."""
    weights = ref.path if ref.is_file else next(
        (p for p in sorted(ref.path.glob("*")) if p.suffix in (".safetensors", ".bin")), None)
    return f"{ref.name} [{legacy_hash(weights)}]" if weights else ref.name


def check_compatible(base: BaseModel, controlnet: Any, name: str) -> None:
    """Refuse a ControlNet (or T2I-Adapter) built for another base family, naming both."""
    if is_adapter(controlnet):
        xl = controlnet.config.get("adapter_type") == "full_adapter_xl"
        theirs = "sdxl" if xl else "sd15"
        channels = list(controlnet.config["channels"])
        if (theirs == "sdxl") != (base.family == "sdxl") or channels[0] != base.unet.config["block_out_channels"][0]:
            raise KekongError(f"T2I-Adapter {name} is for {family_name(theirs)} (channels {channels}) but the base "
                              f"model {base.name} is {family_name(base.family)}")
        return
    theirs, ours = unet_family(controlnet.config), base.family
    same_width = controlnet.config["cross_attention_dim"] == base.unet.config["cross_attention_dim"]
    same_blocks = list(controlnet.config["block_out_channels"]) == list(base.unet.config["block_out_channels"])
    if theirs != ours or not same_width or not same_blocks:
        raise KekongError(f"ControlNet {name} is for {family_name(theirs)} but the base model {base.name} is "
                          f"{family_name(ours)}; pick a ControlNet made for {family_name(ours)}")


def quiet_loading() -> None:
    """diffusers/transformers print progress bars while loading; the CLI has its own. transformers'
    warnings go too (unless TRANSFORMERS_VERBOSITY asks for them): kekong checks what they warn about
    itself — an over-long prompt was announced by the tokenizer just before kekong's own error."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    if not os.environ.get("TRANSFORMERS_VERBOSITY"):
        transformers_logging.set_verbosity_error()
