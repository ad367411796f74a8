"""The dict A1111 1.10's `parse_generation_parameters` (modules/infotext_utils.py) builds from an
infotext — what `/sdapi/v1/png-info` answers as `parameters` and A1111's "send to txt2img" reads.

Every value stays as A1111 leaves it: the text's values as strings (`Steps: "20"`), sizes split
into `Size-1`/`Size-2` (any `WxH` value), old combined sampler names such as `DPM++ 2M Karras`
kept whole, and A1111's filled-in defaults with A1111's types (`Clip skip: "1"`, `Hires
resize-1: 0`, `Masked area padding: 32`, `RNG: "GPU"` …). A1111's settings are taken at their
defaults (styles "Apply if any", no old hires-fix sizes, auto back-compat on, nothing skipped).
The `key: value` line is read by kekong's one infotext reader (provenance.infotext).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from packaging.version import InvalidVersion, Version

from kekong.errors import ParameterError
from kekong.prompt.styles import Style
from kekong.provenance.infotext import infotext_parts

_SIZE = re.compile(r"^(\d+)x(\d+)$")

# Filled in when the text does not carry them (A1111: "missing … means the default was set").
_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Hires sampler", "Use same sampler"), ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"), ("Hires prompt", ""), ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"), ("Masked content", "original"), ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
)
_LATE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("RNG", "GPU"), ("Schedule type", "Automatic"), ("Schedule max sigma", 0), ("Schedule min sigma", 0),
    ("Schedule rho", 0), ("VAE Encoder", "Full"), ("VAE Decoder", "Full"), ("FP8 weight", "Disable"),
)


def generation_parameters(text: str, styles: dict[str, Style] | None = None) -> dict[str, Any]:
    """A1111's parameters dict for `text` (any text: no parameters line gives the defaults);
    `styles`: the server's styles.csv, whose styles A1111 takes back out of the prompts."""
    lines, pairs = infotext_parts(text)
    prompt = negative = ""
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res: dict[str, Any] = {}
    for key, value in pairs:
        if not value:
            continue  # A1111 reads value[0] and skips the key when it fails
        if value[0] == '"' and value[-1] == '"':
            value = _unquote(value)
        size = _SIZE.match(value)
        if size is not None:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    prompt, negative = _take_out_styles(res, prompt, negative, styles or {})
    res["Prompt"], res["Negative prompt"] = prompt, negative
    res.setdefault("Clip skip", "1")
    if res.get("Hypernet") is not None:
        res["Prompt"] += f"<hypernet:{res['Hypernet']}:{res.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in res:
        res["Hires resize-1"], res["Hires resize-2"] = 0, 0
    for key, default in _DEFAULTS:
        res.setdefault(key, default)
    _old_hires_fix(res)
    for key, default in _LATE_DEFAULTS:
        res.setdefault(key, default)
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False
    if "Emphasis" not in res and _uses_emphasis(prompt, negative):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)
    _backcompat(res)
    return res


def _unquote(text: str) -> str:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _old_hires_fix(res: dict[str, Any]) -> None:
    """Infotexts from before A1111 1.0's hires rework give `First pass size`: that becomes the size,
    and the size the hires one (a 0×0 first pass by the old 512²-pixel rule)."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    first_w, first_h = int(first_w), int(first_h)
    width, height = int(res.get("Size-1", 512)), int(res.get("Size-2", 512))
    if first_w == 0 or first_h == 0:
        scale = math.sqrt(512 * 512 / (width * height))
        first_w, first_h = math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64
    res["Size-1"], res["Size-2"] = first_w, first_h
    res["Hires resize-1"], res["Hires resize-2"] = width, height


def _uses_emphasis(prompt: str, negative: str) -> bool:
    """Any attention weight other than 1 in either prompt (A1111's parse_prompt_attention)."""
    from kekong.prompt.syntax import parse_attention

    try:
        runs = parse_attention(prompt) + parse_attention(negative)
    except ParameterError:  # a malformed weight: A1111's float() fails there too; nothing to report
        return False
    return any(weight != 1.0 and text != "BREAK" for text, weight in runs)


# -- A1111's version back-compat (modules/infotext_versions.py) ----------------------------------
def _version(text: Any) -> Version | None:
    if text is None:
        return None
    match = re.match(r"([^-]+-[^-]+)-.*", str(text))
    try:
        return Version(match.group(1) if match else str(text))
    except InvalidVersion:
        return None


def _backcompat(res: dict[str, Any]) -> None:
    """Older A1111 versions' behaviours, named as A1111 names them (kekong's `Version: kekong` has none)."""
    version = _version(res.get("Version"))
    if version is None:
        return
    if version < Version("1.6.0") and "[" in res.get("Prompt", ""):
        res["Old prompt editing timelines"] = True
    if version < Version("1.6.0") and res.get("Sampler", "") in ("DDIM", "PLMS"):
        res["Pad conds v0"] = True
    if version < Version("1.7.0-225"):
        res["Downcast alphas_cumprod"] = True
    if version < Version("1.8.0") and res.get("Refiner"):
        res["Refiner switch by sampling steps"] = True


# -- styles taken back out of the prompts (A1111's StyleDatabase.extract_styles_from_prompt) ------
def _take_out_styles(res: dict[str, Any], prompt: str, negative: str,
                     styles: dict[str, Style]) -> tuple[str, str]:
    """The prompts without the styles found in them (`Styles array` when any); the hires prompts
    lose the same styles, and become "" when that leaves them equal to the main prompts."""
    found, bare_prompt, bare_negative = extract_styles(prompt, negative, styles)
    same = True
    version = _version(res.get("Version"))
    if ("Hires prompt" in res or "Hires negative prompt" in res) and (
            version > Version("1.8.0-139") if version is not None else True):
        hr_prompt, hr_negative = res.get("Hires prompt", prompt), res.get("Hires negative prompt", negative)
        hr_found, hr_bare_prompt, hr_bare_negative = extract_styles(hr_prompt, hr_negative, styles)
        same = found == hr_found
        if same:
            res["Hires prompt"] = "" if hr_bare_prompt == bare_prompt else hr_bare_prompt
            res["Hires negative prompt"] = "" if hr_bare_negative == bare_negative else hr_bare_negative
    if not same:
        return prompt, negative
    if found:
        res["Styles array"] = found
    return bare_prompt, bare_negative


def extract_styles(prompt: str, negative: str, styles: dict[str, Style]) -> tuple[list[str], str, str]:
    """(style names found, in the order they were applied; the prompts without them)."""
    found: list[str] = []
    left = list(styles.values())
    while True:
        for style in left:
            matched, new_prompt, new_negative = _take_out(style, prompt, negative)
            if matched:
                prompt, negative = new_prompt, new_negative
                left.remove(style)
                found.append(style.name)
                break
        else:
            return list(reversed(found)), prompt, negative


def _take_out(style: Style, prompt: str, negative: str) -> tuple[bool, str, str]:
    if not style.prompt and not style.negative_prompt:
        return False, prompt, negative
    matched, new_prompt = _take_out_text(style.prompt, prompt)
    if not matched:
        return False, prompt, negative
    matched, new_negative = _take_out_text(style.negative_prompt, negative)
    if not matched:
        return False, prompt, negative
    return True, new_prompt, new_negative


def _take_out_text(style_text: str, prompt: str) -> tuple[bool, str]:
    """A style `… {prompt} …` around the prompt, or a style appended after it (", style")."""
    text, style_text = prompt.strip(), style_text.strip()
    if "{prompt}" in style_text:
        left, _, right = style_text.partition("{prompt}")
        if text.startswith(left) and text.endswith(right):
            return True, text[len(left):len(text) - len(right)]
        return False, prompt
    if text.endswith(style_text):
        text = text[:len(text) - len(style_text)]
        return True, text[:-2] if text.endswith(", ") else text
    return False, prompt
