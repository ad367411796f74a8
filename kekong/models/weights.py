"""Finding and safely loading weight files for model-backed detectors.

Annotator weights (lllyasviel/Annotators files such as ControlNetHED.pth) are looked for, in
order: an explicit path; the kekong models folder (KEKONG_MODELS_DIR, default
~/.cache/kekong/models) under `annotators/`; the Hugging Face cache. Transformers models
(depth) are a local folder or a hub id already in the HF cache. Nothing is downloaded: when
the weights are absent the error names the file, where to get it and where to put it.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path

from kekong.errors import KekongError, MissingWeightsError

ANNOTATORS_REPO = "lllyasviel/Annotators"
log = logging.getLogger(__name__)  # where weights were found (`kekong -v` shows it)


def models_dir() -> Path:
    """The kekong models folder (KEKONG_MODELS_DIR or ~/.cache/kekong/models)."""
    default = Path.home() / ".cache" / "kekong" / "models"
    return Path(os.environ.get("KEKONG_MODELS_DIR", default)).expanduser()


def find_annotator(filename: str, detector: str, explicit: str | None = None,
                   repo: str = ANNOTATORS_REPO, stand_in: str | None = None, param: str = "weights") -> Path:
    """Path of an annotator weight file, or MissingWeightsError saying how to get it.
    `param` is the detector parameter that takes the file's path (`detector_weights` for DW-Pose's YOLOX …)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"{detector}: weights file {path} does not exist")
        return path
    local = models_dir() / "annotators" / Path(filename).name  # `filename` may be a path in the repo
    if local.is_file():
        log.info("%s: weights %s from the models folder (%s)", detector, filename, local)
        return local
    cached = _hf_cached_file(repo, filename)
    if cached is not None:
        log.info("%s: weights %s not in the models folder; using the Hugging Face cache's (%s)", detector, filename,
                 cached)
        return cached
    hint = f" Offline stand-in that needs no weights: {stand_in}." if stand_in else ""
    raise MissingWeightsError(
        f"{detector} needs the weights file {filename} from the Hugging Face repo {repo} "
        f"(https://huggingface.co/{repo}/blob/main/{filename}), which is not on this machine. "
        f"Download it and put it at {local} (or set KEKONG_MODELS_DIR), pass {param}=PATH "
        f"(`-p {param}=PATH` on kekong detect, `,{param}=PATH` in a --control), or "
        f"fetch it into the HF cache with `hf download {repo} {filename}`.{hint}"
    )


def _hf_cached_file(repo: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return None
    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def find_pretrained(reference: str, detector: str, stand_in: str | None = None,
                    option: str = "-p model=") -> str:
    """A transformers/diffusers model as a local folder: a path, or a hub id in the HF cache.
    `option` is how the user names it (`-p model=` for a detector, `--clip-model ` …), for the error."""
    path = Path(reference).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingWeightsError(f"{detector}: {path} has no config.json; it is not a "
                                      "transformers model folder")
        return str(path)
    if path.suffix or reference.startswith((".", "/", "~")) or reference.count("/") != 1:
        raise MissingWeightsError(f"{detector}: model {reference!r} is neither an existing "
                                  "folder nor a hub id (owner/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(reference, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        hint = f" Offline stand-in: {stand_in}." if stand_in else ""
        target = models_dir() / reference.replace("/", "--")
        raise MissingWeightsError(
            f"{detector} needs the model {reference} (https://huggingface.co/{reference}), "
            f"which is not on this machine. Run `hf download {reference}` where there is "
            f"network (it lands in the HF cache), or download the folder to {target} and pass "
            f"{option}{target}.{hint}"
        ) from None
    log.info("%s: model %s from the Hugging Face cache (%s)", detector, reference, folder)
    return folder


def load_state_dict(path: str | os.PathLike) -> dict:
    """Tensors from .safetensors, or from .pth/.pt/.ckpt through torch.load(weights_only=True):
    a pickle that tries to run code is refused and nothing runs."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise KekongError(f"{path}: not a valid .safetensors file ({exc})") from exc
    try:
        with torch.serialization.safe_globals(_harmless_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc) from None
    except (KeyError, ValueError, IndexError, TypeError, EOFError) as exc:  # bytes that are no pickle
        raise _refusal(path, exc) from None
    except (RuntimeError, OSError) as exc:  # a torch zip archive that is cut or corrupt
        raise KekongError(f"{path}: not a readable checkpoint, the file is corrupt or truncated "
                          f"({str(exc).splitlines()[0]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise KekongError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return state


ONLY_TENSORS = "kekong loads only tensors from .ckpt/.pt/.pth files"


def _refusal(path: Path, exc: BaseException) -> KekongError:
    """Why a pickle was not loaded, in kekong's words. torch's own message advises re-running with
    weights_only=False — switching the safety off — which is never what to tell a user."""
    called = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if called:
        return KekongError(
            f"{path}: refused to load — besides tensors the file pickles `{called.group(1)}`, which a "
            f"pickle can use to run code; {ONLY_TENSORS} (and the few harmless objects old checkpoints "
            f"carry), so look for a .safetensors copy of this model")
    if _is_pickle(path):
        return KekongError(f"{path}: refused to load — the file is a Python pickle but not one of plain "
                           f"tensors that can be read without running it; {ONLY_TENSORS}, so look for a "
                           f".safetensors copy of this model")
    return KekongError(f"{path}: not a PyTorch checkpoint — its contents are not a pickle of tensors "
                       f"(another kind of file, or corrupt); {ONLY_TENSORS}")


def _is_pickle(path: Path) -> bool:
    """A torch zip archive, or a bare pickle's protocol header (torch's legacy format starts with one)."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


class _Ignored:
    """Stands in for a training-framework object pickled beside the weights (never called)."""

    def __setstate__(self, state: object) -> None:
        pass


# Old .ckpt files (SD 1.x, ControlNet 1.0) pickle these next to their tensors. Each is either a
# plain data constructor or replaced by `_Ignored`; anything else is refused by torch.
_IGNORED_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
)


def _harmless_globals() -> list:
    import codecs

    import numpy as np

    numpy_core = np.core.multiarray  # the module old pickles name
    return [
        *((_Ignored, name) for name in _IGNORED_GLOBALS),
        (numpy_core.scalar, "numpy.core.multiarray.scalar"),
        (numpy_core._reconstruct, "numpy.core.multiarray._reconstruct"),
        np.dtype, np.ndarray, codecs.encode,
        *(type(np.dtype(kind)) for kind in ("float32", "float64", "int64", "int32")),
    ]
