"""A1111's `parameters` text, written as A1111 1.10 + sd-webui-controlnet 1.1.4xx write it and
read back in its older forms too (so PNG-info readers and "send to txt2img" keep working).

    a red star
    Negative prompt: blurry
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512,
    Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, ControlNet 0: "Module: canny, Model: …"
(the last line is one line).
"""

from __future__ import annotations

import re
from typing import Any

from kekong.choices import split_sampler_name

VERSION = "kekong"


def fmt(value: Any) -> str:
    """Numbers as A1111 prints them: 7 not 7.0, 0.75 stays 0.75."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) or abs(value) >= 1e-4 else repr(value)
    return str(value)


def quote(text: str) -> str:
    """A1111 quotes a value holding `,`, `:` or `"` (json-style)."""
    import json

    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ',:"\n') else text


def controlnet_entry(unit, model_label: str, threshold_a: float, threshold_b: float) -> str:
    # sd-webui-controlnet prints these with Python's str(float): 1.0, 0.0, 100.0
    fields = [
        ("Module", unit.module), ("Model", model_label), ("Weight", str(float(unit.weight))),
        ("Resize Mode", unit.resize_mode.value), ("Processor Res", str(unit.res)),
        ("Threshold A", str(float(threshold_a))), ("Threshold B", str(float(threshold_b))),
        ("Guidance Start", str(float(unit.start))), ("Guidance End", str(float(unit.end))),
        ("Pixel Perfect", str(unit.pixel_perfect)), ("Control Mode", unit.mode.value),
    ]
    return quote(", ".join(f"{k}: {v}" for k, v in fields))


def format_infotext(prompt: str, negative: str, params: dict[str, Any]) -> str:
    """The three-part text; `params` in order, None values left out."""
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    pairs = [f"{k}: {v if k.startswith('ControlNet') else quote(fmt(v))}" for k, v in params.items()
             if v is not None]
    lines.append(", ".join(pairs))
    return "\n".join(lines)


_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def infotext_parts(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A1111's first cut: (the prompt lines, the raw `key: value` pairs of the last line) — the
    last line is the parameters line only when it holds at least three pairs."""
    lines = text.strip().split("\n")
    pairs = _PAIR.findall(lines[-1])
    return (lines[:-1], pairs) if len(pairs) >= 3 else (lines, [])


def parse_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, {key: value}) — the inverse of format_infotext (A1111's parser)."""
    lines, pairs = infotext_parts(text)
    params: dict[str, str] = {}
    for key, value in pairs:
        if value.startswith('"') and value.endswith('"'):
            import json

            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        params[key.strip()] = value.strip()
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    if "Sampler" in params and "Schedule type" not in params:  # before A1111 1.8: "DPM++ 2M Karras"
        sampler, schedule = split_sampler_name(params["Sampler"])
        params["Sampler"] = sampler
        if schedule != "Automatic":
            params["Schedule type"] = schedule
    return "\n".join(prompt), "\n".join(negative), params


def parse_controlnet(params: dict[str, str]) -> list[dict[str, str]]:
    """ControlNet units from infotext params, in the three forms sd-webui-controlnet has written:
    `ControlNet 0: "Module: …"` (1.1.4xx), `ControlNet: "preprocessor: …"` (1.1.2xx) and
    `ControlNet 0 Module: …` keys (1.0)."""
    units: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        match = re.fullmatch(r"ControlNet(?: (\d+))?", key)
        if match:
            index = int(match.group(1) or 0)
            fields = dict(_split_fields(value))
            units[index] = _normalise_unit(fields)
            continue
        match = re.fullmatch(r"ControlNet (\d+) (\w[\w ]*)", key)
        if match:
            units.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [units[i] for i in sorted(units)]


def _split_fields(text: str) -> list[tuple[str, str]]:
    fields, depth, current = [], 0, ""
    for char in text + ",":
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            key, _, value = current.partition(":")
            if key.strip():
                fields.append((key.strip(), value.strip()))
            current = ""
        else:
            current += char
    return fields


def _normalise_unit(fields: dict[str, str]) -> dict[str, str]:
    """1.1.2xx lower-case keys → the 1.1.4xx names."""
    if "Module" in fields:
        return fields
    out = {"Module": fields.get("preprocessor", "none"), "Model": fields.get("model", ""),
           "Weight": fields.get("weight", "1"), "Resize Mode": fields.get("resize mode", "Crop and Resize"),
           "Pixel Perfect": fields.get("pixel perfect", "False"),
           "Control Mode": fields.get("control mode", "Balanced")}
    window = re.findall(r"[\d.]+", fields.get("starting/ending", "(0, 1)"))
    if len(window) == 2:
        out["Guidance Start"], out["Guidance End"] = window
    processor = re.findall(r"-?[\d.]+", fields.get("preprocessor params", ""))
    for name, value in zip(("Processor Res", "Threshold A", "Threshold B"), processor, strict=False):
        out[name] = value
    return out
