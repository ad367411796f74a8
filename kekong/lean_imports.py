"""Start-up: diffusers' model classes imported without every other model class beside them.

The packages `diffusers.models.transformers`, `.unets`, `.autoencoders`, `.controlnets` and
`diffusers.hooks` import every class they hold in their `__init__` (≈ 150 modules: video, audio
and DiT transformers, caches), which costs about a second of a CLI start on a small CPU
(`python -X importtime`, benchmarks/startup.py). Their `__init__` is deferred: a submodule
(`…unets.unet_2d_condition`) loads on its own, and the first attribute asked of the package itself
runs its `__init__` then, so every name stays reachable. (The rest of diffusers' import — torch's
dynamo through `torch.compiler.disable` in its hooks, transformers through its quantizers, peft,
scipy through its schedulers — is module-level code in the modules a UNet needs, and stays.)

`install()` runs once, from `kekong/__init__.py`, before anything imports diffusers.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any

DEFERRED = frozenset(
    {
        "diffusers.models.transformers",
        "diffusers.models.unets",
        "diffusers.models.autoencoders",
        "diffusers.models.controlnets",
        "diffusers.hooks",
    }
)


class _DeferredInit(importlib.abc.Loader):
    """Makes the package module (its `__path__` set, so submodules import) and runs its
    `__init__` only when an attribute the package does not have yet is asked for (or `__all__`,
    which `from package import *` asks for).

    Thread-safe: a second thread asking while the `__init__` runs waits for it (a per-package
    lock, as CPython 3.12's `importlib.util.LazyLoader`), instead of finding the hook gone and a
    half-run package (`ImportError: cannot import name …`). A failed `__init__` leaves the hook,
    so the next access runs it again, as a failed import is retried."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        real = self.real
        lock = threading.RLock()
        loading: list[bool] = []  # non-empty while this package's `__init__` runs

        def __getattr__(name: str) -> Any:
            if name.startswith("__") and name != "__all__":  # the import system's probes (__path__ is set)
                raise AttributeError(name)
            with lock:
                if module.__dict__.get("__getattr__") is __getattr__:
                    if loading:  # the `__init__` itself asking for a name it has not set yet
                        raise AttributeError(name)
                    loading.append(True)
                    try:
                        real.exec_module(module)  # the package's own __init__, now
                    finally:
                        loading.clear()
                    if module.__dict__.get("__getattr__") is __getattr__:
                        del module.__dict__["__getattr__"]
            return getattr(module, name)

        module.__dict__["__getattr__"] = __getattr__


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in DEFERRED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return spec
        spec.loader = _DeferredInit(spec.loader)
        return spec


_FINDER = _Finder()


def install() -> None:
    """Put the finder first on `sys.meta_path` (once); `KEKONG_EAGER_IMPORTS=1` leaves imports alone."""
    import os

    if os.environ.get("KEKONG_EAGER_IMPORTS") == "1" or _FINDER in sys.meta_path:
        return
    sys.meta_path.insert(0, _FINDER)
