"""Why kekong refuses one of sd-webui-controlnet's preprocessors, as the error the user gets.

A network kekong has no loader for is refused with the missing-weights error for the extension's
weight file (where kekong looks for it, where to get it, the offline stand-in) and, once the file
is there, by name; a library kekong does not install, an image encoder that makes no control map
and a generation mode kekong lacks are refused with that reason (ParameterError).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import NoReturn

from kekong.detect.extension_names import WEIGHTS, Preprocessor
from kekong.errors import MissingWeightsError, ParameterError
from kekong.models.weights import find_annotator, models_dir


def refuse(identifier: str, preprocessor: Preprocessor) -> NoReturn:
    refusal = preprocessor.refused
    assert refusal is not None, identifier
    who = identifier
    if refusal.kind != WEIGHTS:
        raise ParameterError(f"module {identifier!r} is not supported: {refusal.reason}")
    found = []
    for repo, path in refusal.files:
        try:
            found.append(str(find_annotator(path, who, repo=repo)))
        except MissingWeightsError:
            local = models_dir() / "annotators" / path  # where find_annotator looks
            stand_in = f" Offline stand-in that needs no weights: {refusal.stand_in}." if refusal.stand_in else ""
            raise MissingWeightsError(
                f"{who} needs the weights file {PurePosixPath(path).name} from the Hugging Face repo {repo} "
                f"(https://huggingface.co/{repo}/blob/main/{path}), which is not on this machine; kekong looks for "
                f"it at {local} (KEKONG_MODELS_DIR) and in the HF cache. But {refusal.reason}, so {who} is "
                f"refused even with the file in place.{stand_in}") from None
    stand_in = f"; offline stand-in: {refusal.stand_in}" if refusal.stand_in else ""
    raise ParameterError(f"{who}: its weights are here ({', '.join(found)}) but {refusal.reason}{stand_in}")
