"""A request's view of a cached model, and the patches it makes for its duration only.

Models live in the cache (models/load.py), shared by every request and by readers on other
threads (step previews, the UI). A request never changes what another one sees:
- its VAE is a view: a copy of the `BaseModel` record holding the chosen VAE (`with_vae`); the
  cached record keeps its own, nothing is swapped;
- what must change the cached modules in place — LoRA layers in the UNet and text encoders,
  IP-Adapter and reference-only attention processors — happens inside `patched`, which holds the
  model's lock for the whole request (two requests on one model run one after the other) and
  gives every module back exactly as it was on exit, also when the request fails or is
  cancelled. ComfyUI's ModelPatcher works the same way (patch the loaded model, unpatch after);
  a copy per request would double the memory.
Step previews decode with a VAE only, which no patch touches, so they read without the lock.
A ControlNet is shared by requests on different bases (whose locks differ), and fast mode patches
it for one call (generation/fast.py): every call of a ControlNet holds that model's `call_lock`.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from kekong.models.load import BaseModel
from kekong.models.lora import applied_loras
from kekong.models.vae import load_vae

_CALL_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_CALL_LOCKS_GUARD = threading.Lock()


def call_lock(module: Any) -> threading.RLock:
    """The lock held around one call of a shared module that a request may patch for that call
    (a ControlNet in fast mode): one per module, living as long as the module."""
    with _CALL_LOCKS_GUARD:
        lock = _CALL_LOCKS.get(module)
        if lock is None:
            lock = _CALL_LOCKS[module] = threading.RLock()
        return lock


def with_vae(base: BaseModel, reference: str | None) -> BaseModel:
    """`base` as a request choosing the VAE `reference` sees it (None: the model's own VAE).
    The view shares the cached parts and the lock; the cached record is unchanged."""
    if reference is None:
        return base
    vae, ref = load_vae(reference, base)
    return dataclasses.replace(base, vae=vae, vae_ref=ref)


@contextmanager
def patched(base: BaseModel, loras: Sequence[Any] = (), vae: str | None = None,
            also: Sequence[BaseModel] = ()) -> Iterator[BaseModel]:
    """Hold `base` (and the models in `also`, e.g. a refiner the request reads) for one request,
    with `loras` applied and `vae` chosen; yields the request's view of `base`. On exit every
    module is as it was: LoRA layers removed, attention processors and image projections back."""
    models = list({id(m): m for m in (base, *also)}.values())
    with ExitStack() as stack:
        for model in sorted(models, key=id):  # one order for every request: none waits on another's second lock
            stack.enter_context(model.lock)
        for model in models:  # whatever a hook installs and fails to take out, taken out here
            stack.enter_context(restored(model.unet))
        stack.enter_context(applied_loras(base, list(loras)))
        yield with_vae(base, vae)


@contextmanager
def restored(unet: Any) -> Iterator[None]:
    """On exit, give `unet` back the attention processors and image projection it has now."""
    processors = dict(unet.attn_processors)
    projection, hid_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
    try:
        yield
    finally:  # the projection first: a Plus resampler has attention layers (and processors) of its own
        unet.encoder_hid_proj = projection
        unet.config.encoder_hid_dim_type = hid_type
        now = unet.attn_processors
        if now.keys() != processors.keys() or any(now[k] is not p for k, p in processors.items()):
            unet.set_attn_processor(processors)


@contextmanager
def installed_processors(unet: Any, processors: dict[str, Any]) -> Iterator[None]:
    """`processors` (name → attention processor) on `unet` for the block; the previous ones after.
    Call inside `patched` (the caller holds the model's lock)."""
    with restored(unet):
        unet.set_attn_processor(processors)
        yield
