"""Small helpers for the HTTP tests: images as base64, and a running test server."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image


def b64_png(array: np.ndarray) -> str:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, "PNG")
    return base64.b64encode(stream.getvalue()).decode()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def star_outline(size: int = 64) -> np.ndarray:
    """A white star outline on black: a ready control map for the shipped model."""
    import cv2

    canvas = np.zeros((size, size, 3), np.uint8)
    angles = np.linspace(-np.pi / 2, 3 * np.pi / 2, 11)[:-1]
    radii = np.where(np.arange(10) % 2 == 0, size * 0.4, size * 0.17)
    points = np.stack([size / 2 + radii * np.cos(angles), size / 2 + radii * np.sin(angles)], 1).astype(np.int32)
    cv2.polylines(canvas, [points], True, (255, 255, 255), 2)
    return canvas


def info(response) -> dict:
    return json.loads(response.json()["info"])
