"""`kekong verify`: what an image says about where it came from.

For each file: its C2PA manifest (valid / tampered / absent; signer; trusted or local), the kekong
watermark (id, confidence, and the recipe when this installation made it), the A1111 parameters
and kekong recipe chunks, and the watermark diffusers' SDXL pipelines embed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from kekong.errors import KekongError


class Outcome(IntEnum):
    """Exit codes; across files the worst (`worst`) wins."""

    FOUND = 0  # provenance found, nothing tampered
    NOTHING = 1  # no C2PA manifest, no watermark, no generation parameters
    TAMPERED = 2  # a C2PA manifest whose signature or content hash fails
    UNREADABLE = 3  # not an image this tool can read
    STRIPPED = 4  # the watermark's register or the recipe says a manifest was written; the file has none


# from best to worst: a stripped manifest is worse than none at all, a tampered one worse still
_SEVERITY = (Outcome.FOUND, Outcome.NOTHING, Outcome.STRIPPED, Outcome.TAMPERED, Outcome.UNREADABLE)


def worst(outcomes: list[Outcome]) -> Outcome:
    """The outcome that decides the exit code of a run over several files."""
    return max(outcomes, key=_SEVERITY.index)


@dataclass
class Verdict:
    file: str
    outcome: Outcome
    error: str | None = None
    c2pa: dict[str, Any] | None = None
    watermark: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    sdxl_watermark: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome.name.lower()}


def verify(path: str | Path) -> Verdict:
    """Check one file; never raises for a bad file (the verdict says what is wrong)."""
    from kekong.io import load_image
    from kekong.provenance.credentials import read_credentials

    path = Path(path)
    if path.is_dir():
        return Verdict(str(path), Outcome.UNREADABLE, error=f"{path}: a folder, not an image (name the images in "
                       f"it, e.g. {path / '*.png'})")
    try:
        pixels = load_image(path)  # names the file in its errors: missing, corrupt, too large
        data = path.read_bytes()
    except KekongError as error:
        return Verdict(str(path), Outcome.UNREADABLE, error=str(error))
    except OSError as error:
        return Verdict(str(path), Outcome.UNREADABLE, error=f"{path}: {error.strerror or error}")
    credentials = read_credentials(data, path.suffix)
    verdict = Verdict(str(path), Outcome.NOTHING, c2pa=asdict(credentials), watermark=_watermark(pixels),
                      metadata=read_metadata(data), sdxl_watermark=_sdxl_watermark(pixels))
    found = bool(verdict.watermark.get("found") or verdict.sdxl_watermark.get("found")
                 or verdict.metadata.get("parameters") or verdict.metadata.get("recipe"))
    return judge(verdict, credentials, manifest_expected(verdict.watermark, verdict.metadata), found)


def judge(verdict: Verdict, credentials: Any, expected: str | None, found: bool) -> Verdict:
    """The outcome from what was read (images and videos alike): a tampered or invalid manifest; a
    stripped one — none where `expected` says one was written; else FOUND when the manifest is valid
    or anything else was `found` (a watermark, a recipe, parameters); else NOTHING."""
    if credentials.state in ("absent", "unsupported") and expected:
        verdict.c2pa = {**asdict(credentials), "state": "stripped", "found": credentials.state,
                        "expected_because": expected}
    if credentials.state in ("tampered", "invalid"):
        verdict.outcome = Outcome.TAMPERED
    elif verdict.c2pa["state"] == "stripped":
        verdict.outcome = Outcome.STRIPPED
    elif credentials.state == "valid" or found:
        verdict.outcome = Outcome.FOUND
    return verdict


def manifest_expected(watermark: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """Why this image should carry a C2PA manifest, or None when nothing says it was given one."""
    made = watermark.get("made_here") or {}
    if made.get("c2pa"):
        return "its watermark's id is in this machine's register, which says it was written with one"
    if (metadata.get("layers") or {}).get("c2pa") is True:
        return "its kekong recipe says one was written"
    return None


def _watermark(pixels) -> dict[str, Any]:
    from kekong.provenance import marks, watermark, watermark_null

    height, width = pixels.shape[:2]
    if min(height, width) < watermark.MIN_SIDE:
        return {"found": False, "too_small": True,
                "note": f"{width}x{height} is too small to carry a reliable mark (below {watermark.MIN_SIDE} px)"}
    reading = watermark.read(pixels)
    result: dict[str, Any] = {"found": reading.found, "confidence": round(reading.confidence, 1),
                              **watermark_null.describe(reading.found, reading.confidence)}
    if reading.found and reading.mark_id is not None:
        result["id"] = marks.format_id(reading.mark_id)
        result["made_here"] = marks.look_up(reading.mark_id)
    if min(height, width) < 512:
        result["note"] = "below 512 px the mark is recovered on a best-effort basis"
    return result


def read_metadata(data: bytes) -> dict[str, Any]:
    import io

    from PIL import Image

    from kekong.provenance.grid_record import GRID_KEY
    from kekong.provenance.stamp import RECIPE_KEY

    try:
        with Image.open(io.BytesIO(data)) as image:
            text = dict(getattr(image, "text", {}) or {})
            exif = image.getexif()
    except Exception:  # metadata is optional; the pixels were already read fine
        return {}
    parameters = text.get("parameters")
    if parameters is None and 0x9286 in exif.get_ifd(0x8769):  # EXIF UserComment, as A1111 writes JPEG/WebP
        parameters = _user_comment(exif.get_ifd(0x8769)[0x9286])
    recipe, grid = _json_chunk(text, RECIPE_KEY), _json_chunk(text, GRID_KEY)
    answer = {"parameters": parameters, "recipe": recipe, "layers": (recipe or grid or {}).get("provenance")}
    if grid is not None:  # an X/Y/Z contact sheet: the cells it is made of
        answer["grid_cells"] = [cell.get("file") for cell in grid.get("cells", []) if isinstance(cell, dict)]
    return answer


def _json_chunk(text: dict[str, str], key: str) -> Any:
    try:
        value = json.loads(text[key]) if key in text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _user_comment(value: Any) -> str | None:
    if isinstance(value, bytes):
        if value.startswith(b"UNICODE\0"):
            return value[8:].decode("utf-16-be", errors="replace")
        return value.split(b"\0", 1)[-1].decode("utf-8", errors="replace") or None
    return str(value) or None


SDXL_BITS = [int(bit) for bit in bin(0b101100111110110010010000011110111011000110011110)[2:]]
SDXL_MATCH = 42  # of 48 bits: a random image matches this well with probability < 1e-7


def _sdxl_watermark(pixels) -> dict[str, Any]:
    """diffusers' SDXL pipelines embed a fixed 48-bit message with invisible-watermark's dwtDct."""
    try:
        from imwatermark import WatermarkDecoder
    except ImportError:
        return {"checked": False, "note": "invisible-watermark is not installed"}
    if min(pixels.shape[:2]) < 256:
        return {"checked": False, "note": "below 256 px SDXL pipelines do not embed their mark"}
    bits = WatermarkDecoder("bits", 48).decode(pixels[..., ::-1].copy(), "dwtDct")
    matching = sum(int(a == b) for a, b in zip(bits, SDXL_BITS, strict=True))
    return {"checked": True, "found": matching >= SDXL_MATCH, "matching_bits": matching,
            "meaning": "made by Stable Diffusion XL" if matching >= SDXL_MATCH else None}


def describe(verdict: Verdict) -> str:
    """Human-readable lines for one verdict."""
    lines = [verdict.file]
    if verdict.error:
        return "\n".join([*lines, f"  error: {verdict.error}"])
    c2pa = verdict.c2pa or {}
    state = c2pa.get("state")
    if state == "absent":
        lines.append("  C2PA: none")
    elif state == "stripped":
        lines += [f"  C2PA: STRIPPED — this image was made with a signed C2PA manifest ({c2pa['expected_because']}),",
                  "        but the file carries none now: it was removed, or the image was edited or re-saved by",
                  "        a program that drops it. The layers below still say where it came from; no signature",
                  "        vouches for these pixels any more."]
    elif state == "unsupported":
        lines.append(f"  C2PA: not checked ({'; '.join(c2pa['problems'])})")
    else:
        who = f"signed by {c2pa.get('signer')!r} of {c2pa.get('issuer')!r}"
        trust = "trusted" if c2pa.get("trusted") else "local signer, not trusted" if c2pa.get("local") \
            else "untrusted signer"
        detail = f"{state.upper() if state != 'valid' else 'valid'}, {who} ({trust})"
        if c2pa.get("actions"):
            source = (c2pa.get("digital_source_type") or "").rsplit("/", 1)[-1]
            detail += f"; {', '.join(c2pa['actions'])}" + (f" — {source}" if source else "")
        lines.append(f"  C2PA: {detail}")
        if c2pa.get("problems"):
            lines.append(f"        problems: {', '.join(c2pa['problems'])}")
    mark = verdict.watermark
    if mark.get("too_small"):
        lines.append(f"  watermark: not checked — {mark['note']}")
    elif mark.get("found"):
        made = mark.get("made_here")
        where = f" → made on this machine as {made['path']}" if made else " (not made on this machine)"
        chance = f", false-positive probability {mark['false_positive_text']}" if "false_positive_text" in mark else ""
        lines.append(f"  watermark: kekong id {mark['id']} (confidence {mark['confidence']}{chance}){where}")
    else:
        share = f" — {mark['null_text']}" if "null_text" in mark else ""
        lines.append(f"  watermark: no kekong mark found (detail: pattern match {mark.get('confidence', 0)}{share}; "
                     f"no id decoded)")
    meta = verdict.metadata
    if meta.get("parameters"):
        first = meta["parameters"].strip().splitlines()[-1]
        lines.append(f"  parameters: {first[:100]}{'…' if len(first) > 100 else ''}")
    if meta.get("recipe"):
        lines.append(f"  recipe: kekong recipe v{meta['recipe'].get('kekong_recipe')}; layers {meta.get('layers')}")
    if meta.get("grid_cells") is not None:
        cells = meta["grid_cells"]
        named = ", ".join(str(c) for c in cells[:4]) + (", …" if len(cells) > 4 else "")
        lines.append(f"  grid: an X/Y/Z contact sheet of {len(cells)} cell(s) ({named})")
    if not meta.get("parameters") and not meta.get("recipe"):
        lines.append("  parameters: none")
    sdxl = verdict.sdxl_watermark
    if sdxl.get("found"):
        lines.append(f"  SDXL watermark: found ({sdxl['matching_bits']}/48 bits) — made by Stable Diffusion XL")
    lines += _VERDICT_WORDS[verdict.outcome]
    return "\n".join(lines)


# The last lines of a verdict, in plain words; the JSON keeps the short outcome names.
_VERDICT_WORDS = {
    Outcome.FOUND: ["  → provenance found: the layers above say where this image came from"],
    Outcome.NOTHING: ["  → no provenance found: no signed manifest, no kekong watermark, no generation parameters.",
                      "    This does not prove the image is a real photo: most generators add no mark, and marks and",
                      "    metadata can be removed."],
    Outcome.STRIPPED: ["  → manifest stripped: made with a signed manifest that the file no longer carries"],
    Outcome.TAMPERED: ["  → TAMPERED: the signed manifest does not match these pixels or its signature fails"],
    Outcome.UNREADABLE: ["  → unreadable"],
}
