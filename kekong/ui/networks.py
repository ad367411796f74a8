"""Extra networks and styles for the Generate tab: the LoRAs and textual-inversion embeddings in
the models folder (listed as the server's /loras and /embeddings list them: the core's
`list_local("lora")` and `prompt.embeddings.available()`), inserted into the prompt A1111's way,
and A1111's styles.csv from the data folder (read and merged by `kekong.prompt.styles`)."""

from __future__ import annotations

from pathlib import Path

from kekong.prompt.styles import Style, apply_styles, read_styles


def lora_names() -> list[str]:
    from kekong.models.refs import list_local

    return [path.stem for path in list_local("lora")]


def embedding_names() -> list[str]:
    from kekong.prompt.embeddings import available

    return sorted(available())


def network_samples() -> list[list[str]]:
    """One card per LoRA (`<lora:name:1>`) and embedding (its name), as the browser lists them."""
    return [*([f"<lora:{name}:1>"] for name in lora_names()), *([name] for name in embedding_names())]


def insert(prompt: str, token: str) -> str:
    """The prompt with `token` appended (after a comma when the prompt does not end with one), unless
    it is already there."""
    prompt = prompt or ""
    if token in prompt:
        return prompt
    stripped = prompt.rstrip()
    if not stripped:
        return token
    return f"{stripped}{'' if stripped.endswith(',') else ','} {token}"


def styles_path() -> Path:
    """A1111's styles.csv in kekong's data folder (KEKONG_DATA_DIR) — the file /prompt-styles reads."""
    from kekong.provenance.marks import data_dir

    return data_dir() / "styles.csv"


def styles() -> dict[str, Style]:
    return read_styles(styles_path())


def styled(prompt: str, negative: str, names: list[str] | None) -> tuple[str, str]:
    """The prompts with the picked styles merged in, in order (A1111 does it when generating)."""
    if not names:
        return prompt, negative
    return apply_styles(prompt, negative, list(names), styles())


def insert_sample(prompt: str, sample: list[str] | str) -> str:
    """The browser's click handler: the clicked card's token added to the prompt."""
    return insert(prompt, sample[0] if isinstance(sample, list) else sample)
