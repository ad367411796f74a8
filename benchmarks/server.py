"""`kekong serve` under load, on loopback: /controlnet/detect throughput and latency with 16
concurrent clients (canny, openpose; the 512×512 astronaut), and the job queue's own overhead
(submit → the worker starts the job), from the server's timestamps.

    python benchmarks/server.py [--clients 16] [--requests 160] [--jobs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.server_helpers import Server  # the repository root is put on the path just above


def png_b64(array: np.ndarray) -> str:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, "PNG")
    return base64.b64encode(stream.getvalue()).decode()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def detect_load(url: str, module: str, image: str, clients: int, requests: int) -> dict:
    body = {"controlnet_module": module, "controlnet_input_images": [image], "controlnet_processor_res": 512}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)

    async def client(session: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            start = time.perf_counter()
            response = await session.post(url + "/controlnet/detect", json=body)
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients)) as session:
        await session.post(url + "/controlnet/detect", json=body)  # warm: models loaded once
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - began
    return {"module": module, "requests": requests, "clients": clients, "per_s": requests / wall,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def queue_overhead(url: str, jobs: int) -> dict:
    """Submit tiny jobs one after another into an idle queue: started − created per job, and the
    POST's own round trip (the job is in SQLite before the 202)."""
    tiny = {"prompt": "a red star", "width": 64, "height": 64, "steps": 1}
    waits, posts = [], []
    with httpx.Client(timeout=60) as session:
        warm = session.post(url + "/v1/jobs", json=tiny).json()  # the model loads
        while session.get(f"{url}/v1/jobs/{warm['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.1)
        for _ in range(jobs):
            start = time.perf_counter()
            job = session.post(url + "/v1/jobs", json=tiny).json()
            posts.append(time.perf_counter() - start)
            while job["status"] in ("queued", "running"):
                time.sleep(0.02)
                job = session.get(f"{url}/v1/jobs/{job['id']}").json()
            waits.append(job["started"] - job["created"])
    return {"jobs": jobs, "submit_to_start_p50_ms": statistics.median(waits) * 1000,
            "submit_to_start_p99_ms": percentile(waits, 99) * 1000,
            "post_p50_ms": statistics.median(posts) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    server = Server(Path(tempfile.mkdtemp(prefix="kekong-bench-server-"))).start()
    try:
        image = png_b64(data.astronaut())
        rows = [asyncio.run(detect_load(server.url, module, image, args.clients, args.requests))
                for module in ("canny", "openpose")]
        overhead = queue_overhead(server.url, args.jobs)
    finally:
        server.stop()
    print("| route | module | clients | requests | throughput (req/s) | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| /controlnet/detect | {row['module']} | {row['clients']} | {row['requests']} | {row['per_s']:.1f} | "
              f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} |")
    print(f"\njob queue ({overhead['jobs']} tiny jobs into an idle queue): submit → start p50 "
          f"{overhead['submit_to_start_p50_ms']:.1f} ms, p99 {overhead['submit_to_start_p99_ms']:.1f} ms; "
          f"POST /v1/jobs round trip p50 {overhead['post_p50_ms']:.1f} ms")


if __name__ == "__main__":
    main()
