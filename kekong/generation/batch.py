"""Batch jobs as A1111's batch tab and its "Prompts from file" script make them: one request per
image in a folder (as the init image or as a control unit's image), per prompt line, or both
(every prompt with every image)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kekong.errors import ParameterError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SLUG_LENGTH = 40


def slug(prompt: str, length: int = SLUG_LENGTH) -> str:
    """A prompt as a file-name part: words joined by '-', without A1111 syntax (weights, LoRA and
    embedding tags, brackets), cut at a word within `length` characters."""
    text = re.sub(r"<[^>]*>", " ", prompt)  # <lora:name:0.8>
    text = re.sub(r":\s*-?\d+(\.\d+)?", " ", text)  # (word:1.2)
    words = re.findall(r"\w+", text.lower())
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > length:
            break
        out = f"{out}-{word}" if out else word
    return out or (words[0][:length] if words else "")


def read_prompts(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read prompts ({exc})") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ParameterError(f"{path}: no prompts in it")
    return prompts


def folder_images(folder: Path) -> list[Path]:
    """The folder's image files, by name."""
    if not Path(folder).is_dir():
        raise ParameterError(f"{folder}: not a folder")
    images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise ParameterError(f"{folder}: no images in it ({', '.join(IMAGE_SUFFIXES)})")
    return images


def jobs(fields: dict[str, Any], prompts: list[str] | None, images: list[Path] | None,
         image_as: str = "init") -> list[tuple[str, dict[str, Any]]]:
    """(output name without suffix, request fields) for each job. `image_as` is `init`, or
    `control` / `control:N` for unit N's image (the unit must be given, e.g. `-c canny:-`)."""
    target = _target(image_as, fields)
    out = []
    for p_index, prompt in enumerate(prompts or [None]):
        for image in images or [None]:
            job = {**fields, "controls": [dict(unit) for unit in fields.get("controls", [])]}
            name_parts = []
            if prompt is not None:
                job["prompt"] = prompt
                name_parts += [f"{p_index:05d}", slug(prompt)] if slug(prompt) else [f"{p_index:05d}"]
            if image is not None:
                if target is None:
                    job["init_image"] = str(image)
                else:
                    job["controls"][target]["image"] = str(image)
                name_parts.append(image.stem)
            out.append(("-".join(name_parts), job))
    return out


def _target(image_as: str, fields: dict[str, Any]) -> int | None:
    if image_as == "init":
        return None
    kind, _, index = image_as.partition(":")
    if kind != "control" or (index and not index.isdigit()):
        raise ParameterError(f"--batch-as {image_as!r}: expected init, control or control:N")
    unit = int(index or 0)
    if unit >= len(fields.get("controls", [])):
        raise ParameterError(f"--batch-as {image_as}: there is no control unit {unit} to take the folder's images "
                             "(give one with --control MODULE:-)")
    return unit
