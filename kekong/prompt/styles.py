"""A1111's prompt styles: a `styles.csv` (name, prompt, negative_prompt) whose named styles are
merged into a request's prompts — `{prompt}` in a style marks where the prompt goes, else the
style is appended after a comma, as A1111 does."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from kekong.errors import ParameterError


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str
    negative_prompt: str


def read_styles(path: Path) -> dict[str, Style]:
    """The styles of an A1111 `styles.csv` ({} when there is none)."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParameterError(f"{path.name}: not a readable styles file ({exc})") from None
    styles = {}
    for row in rows:
        name = (row.get("name") or "").strip()
        if name:
            styles[name] = Style(name, row.get("prompt") or "", row.get("negative_prompt") or "")
    return styles


def merge_prompt(style: str, prompt: str) -> str:
    if "{prompt}" in style:
        return style.replace("{prompt}", prompt)
    return ", ".join(part for part in (prompt.strip(), style.strip()) if part)


def apply_styles(prompt: str, negative: str, names: list[str], styles: dict[str, Style]) -> tuple[str, str]:
    """(prompt, negative prompt) with each named style merged in, in order; an unknown name is refused."""
    unknown = [name for name in names if name not in styles]
    if unknown:
        known = ", ".join(styles) or "none (no styles.csv)"
        raise ParameterError(f"styles: {', '.join(unknown)} not found; known: {known}")
    for name in names:
        prompt = merge_prompt(styles[name].prompt, prompt)
        negative = merge_prompt(styles[name].negative_prompt, negative)
    return prompt, negative
