"""The X/Y/Z grid's contact sheet: the cells at their own size (never rescaled), axis values on the
top and left margins in a font sized for reading, one block per Z value under its title."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_FONT_PX = 12  # labels stay legible however small the cells are
GAP = 4


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrapped(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """`text` in lines no wider than `width` px: broken between words, inside one only if it must."""
    for breaking in (False, True):
        for chars in range(max(len(text), 1), 0, -1):
            lines = textwrap.wrap(text, chars, break_long_words=breaking) or [""]
            if max(font.getlength(line) for line in lines) <= width:
                return lines
    return [text]


def _block(draw: ImageDraw.ImageDraw, lines: list[str], box: tuple[int, int, int, int],
           font: ImageFont.ImageFont, line_px: int) -> None:
    left, top, right, bottom = box
    y = top + (bottom - top - line_px * len(lines)) // 2
    for line in lines:
        x = left + (right - left - int(font.getlength(line))) // 2
        draw.text((x, y), line, fill=(0, 0, 0), font=font)
        y += line_px


def contact_sheet(images: Sequence[np.ndarray], shape: tuple[int, int, int], x_labels: Sequence[str],
                  y_labels: Sequence[str] = (), z_labels: Sequence[str] = (), titles: Sequence[str] = ()
                  ) -> np.ndarray:
    """`images` in plan order (x fastest, then y, then z), `shape` = (nx, ny, nz) → one RGB sheet.
    `titles`: the axes' names, written once (x above its values, y in the corner) so that the
    per-column values stay short enough for small cells."""
    nx, ny, nz = shape
    cell_h, cell_w = images[0].shape[:2]
    size = max(MIN_FONT_PX, cell_w // 10)
    font, line_px = _font(size), int(size * 1.25)
    columns = [_wrapped(label, font, cell_w - 2) for label in x_labels]
    named = [f"{kind}: {title}" for kind, title in zip(("columns", "rows"), titles, strict=False) if title]
    heading = "; ".join(named)  # an axis without a title (A1111's Nothing) is left out
    top = line_px * (max(len(lines) for lines in columns) + (1 if heading else 0)) + GAP
    left_width = max(cell_w, 4 * size * 2) if y_labels else 0
    rows = [_wrapped(label, font, left_width - 2) for label in y_labels] if y_labels else []
    title = line_px + GAP if z_labels else 0
    block_h = title + top + ny * (cell_h + GAP)
    width = max(left_width + nx * (cell_w + GAP), int(font.getlength(heading)) + 2 * GAP)
    sheet = Image.new("RGB", (width, nz * block_h), "white")
    draw = ImageDraw.Draw(sheet)
    for z in range(nz):
        y0 = z * block_h
        if z_labels:
            _block(draw, [z_labels[z]], (0, y0, sheet.width, y0 + line_px), font, line_px)
        if heading:
            draw.text((GAP, y0 + title), heading, fill=(0, 0, 0), font=font)
        below = line_px if heading else 0
        for x, lines in enumerate(columns):
            x0 = left_width + x * (cell_w + GAP)
            _block(draw, lines, (x0, y0 + title + below, x0 + cell_w, y0 + title + top - GAP), font, line_px)
        for y in range(ny):
            cy = y0 + title + top + y * (cell_h + GAP)
            if rows:
                _block(draw, rows[y], (0, cy, left_width - GAP, cy + cell_h), font, line_px)
            for x in range(nx):
                image = images[(z * ny + y) * nx + x]
                sheet.paste(Image.fromarray(image), (left_width + x * (cell_w + GAP), cy))
    return np.asarray(sheet)


def label(axis: Any, value: Any) -> str:
    """A cell's value on an axis as the sheet shows it (the axis name is the sheet's title)."""
    return f"{value:g}" if isinstance(value, float) else str(value)
