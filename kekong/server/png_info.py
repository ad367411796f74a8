"""A1111 1.10's `/sdapi/v1/png-info` answer: `info` (the infotext: the PNG `parameters` chunk, or
JPEG/WebP's EXIF UserComment), `items` (the image's other metadata, as A1111's
read_info_from_image leaves it) and `parameters` (A1111's parse_generation_parameters dict, with the
keys sd-webui-controlnet's infotext callback adds: "ControlNet 0 module" …)."""

from __future__ import annotations

import io
from typing import Any

from kekong.errors import ParameterError

# What A1111 takes out of `items` (modules/images.py IGNORED_INFO_KEYS), besides `parameters`
IGNORED_INFO_KEYS = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background", "timestamp",
    "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop",
})


def png_info_answer(image: Any) -> dict[str, Any]:
    """The answer for the `image` field (base64)."""
    from PIL import Image

    from kekong.prompt.styles import read_styles
    from kekong.provenance.infotext_a1111 import generation_parameters
    from kekong.provenance.infotext_controlnet import controlnet_pasted
    from kekong.provenance.verify import read_metadata
    from kekong.server.a1111_request import styles_file
    from kekong.server.inputs import field_bytes

    raw = field_bytes(image, "image")
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            info = dict(opened.info)
    except Exception:  # PIL raises several types for non-images (and for over-large text chunks)
        raise ParameterError("image: not a readable image") from None
    text = read_metadata(raw).get("parameters") or ""
    items = {key: value for key, value in info.items()
             if key != "parameters" and key not in IGNORED_INFO_KEYS and _json_safe(value)}
    parameters = controlnet_pasted(generation_parameters(text, read_styles(styles_file())))  # + the extension's
    return {"info": text, "items": items, "parameters": parameters}


def _json_safe(value: Any) -> bool:
    """Text and numbers (and tuples of them, such as PNG `aspect`); raw bytes are left out."""
    if isinstance(value, (tuple, list)):
        return all(_json_safe(item) for item in value)
    return isinstance(value, (str, int, float, bool))
