"""Small helpers for the HTTP tests: images as base64, and a running test server."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`kekong serve` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, ui: bool = False, extra: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.ui = ui
        self.extra = extra or []
        self.headers = headers or {}  # e.g. the API key a server with --api-key wants
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kekong.cli", "serve", "--port", str(self.port), "--data-dir",
             str(self.data_dir), *([] if self.ui else ["--no-ui"]), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1, headers=self.headers).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
            if self.process.poll() is not None:
                raise AssertionError(self.process.stderr.read().decode())
        raise AssertionError("server did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, until=lambda job: job["status"] in ("done", "failed", "cancelled", "interrupted"),
             timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.job(job_id)
            if until(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id}: {job}")
