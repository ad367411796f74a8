"""`kekong serve` under load, on loopback: /controlnet/detect throughput and latency with 16
concurrent clients (canny, openpose; the 512×512 astronaut), and the job queue's own overhead
(submit → the worker starts the job), from the server's timestamps. `--probes`: the service
hardening probes (issue 20) — a job flood against --max-queue, a reused Idempotency-Key, a
foreign Origin, bad paging, a chunked body over the cap, DELETE of finished jobs and the
--keep-jobs-hours sweeper; `--probes-only` runs just those.

    python benchmarks/server.py [--clients 16] [--requests 160] [--jobs 40] [--probes | --probes-only]
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
    parser.add_argument("--probes", action="store_true", help="also run the hardening probes")
    parser.add_argument("--probes-only", action="store_true", help="run only the hardening probes")
    parser.add_argument("--flood", type=int, default=300, help="jobs POSTed at once against --max-queue 8")
    args = parser.parse_args()
    if args.probes or args.probes_only:
        print_probes(args.flood)
    if args.probes_only:
        return
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


# -- hardening probes (issue 20) -------------------------------------------------------------------
TINY = {"prompt": "a red star", "width": 64, "height": 64, "steps": 1}


def flood(url: str, count: int) -> dict:
    """`count` POST /v1/jobs at once (32 connections) against --max-queue 8: how many were taken,
    how many refused with 429, and whether every 429 said when to come back."""
    resets = 0

    async def post(session: httpx.AsyncClient, n: int) -> httpx.Response:
        nonlocal resets
        for _ in range(3):  # a kept-alive connection the server closed as it was reused: sent again, counted
            try:
                return await session.post(url + "/v1/jobs", json={**TINY, "seed": n})
            except (httpx.ReadError, httpx.RemoteProtocolError):
                resets += 1
        return await session.post(url + "/v1/jobs", json={**TINY, "seed": n})

    async def run() -> list[httpx.Response]:
        timeout = httpx.Timeout(120, pool=None)  # a request waits for a connection as long as it must
        async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=32)) as session:
            return await asyncio.gather(*(post(session, n) for n in range(count)))

    began = time.perf_counter()
    answers = asyncio.run(run())
    wall = time.perf_counter() - began
    refused = [a for a in answers if a.status_code == 429]
    return {"sent": count, "accepted": sum(a.status_code == 202 for a in answers), "refused_429": len(refused),
            "other": sorted({a.status_code for a in answers} - {202, 429}),
            "retry_after_on_every_429": all(a.headers.get("retry-after", "").isdigit() for a in refused),
            "seconds": wall, "connection_resets_resent": resets,
            "ids": [a.json()["id"] for a in answers if a.status_code == 202]}


def wait_finished(session: httpx.Client, url: str, ids: list[str], timeout: float = 600,
                  headers: dict | None = None) -> None:
    deadline = time.time() + timeout
    for job_id in ids:
        while session.get(f"{url}/v1/jobs/{job_id}", headers=headers).json().get("status") in ("queued", "running"):
            if time.time() > deadline:
                raise SystemExit(f"job {job_id} did not finish in {timeout:g} s")
            time.sleep(0.2)


def raw_chunked(port: int, size: int) -> int:
    """A chunked POST of `size` bytes on a raw socket; the status it is answered with."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed while we were still sending
            pass
        return int(sock.recv(64).split(b" ")[1])


def started(server: Server, patience: float = 900) -> Server:
    """server.start(), waiting up to `patience` s on a busy machine (the helper gives up after 90 s)."""
    try:
        return server.start()
    except AssertionError as error:
        if "did not start" not in str(error):
            raise
    deadline = time.time() + patience
    while time.time() < deadline and server.process.poll() is None:
        try:
            if httpx.get(server.url + "/health", timeout=2, headers=server.headers).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(1)
    server.stop()
    raise SystemExit(f"kekong serve did not answer within {patience:g} s")


def probes(count: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="kekong-bench-probes-"))
    server = started(Server(root / "a", extra=["--max-queue", "8", "--max-body-mb", "1"]))
    try:
        result = {"flood": flood(server.url, count)}
        with httpx.Client(timeout=120) as session:
            first = session.post(server.url + "/v1/jobs", json=TINY, headers={"Idempotency-Key": "probe"})
            while first.status_code == 429:  # the flood still fills the queue
                time.sleep(float(first.headers["retry-after"]))
                first = session.post(server.url + "/v1/jobs", json=TINY, headers={"Idempotency-Key": "probe"})
            same = session.post(server.url + "/v1/jobs", json=TINY, headers={"Idempotency-Key": "probe"})
            other = session.post(server.url + "/v1/jobs", json={**TINY, "prompt": "another"},
                                 headers={"Idempotency-Key": "probe"})
            result["reused_key"] = {"same_body": same.status_code, "same_job": same.json().get("id") ==
                                    first.json()["id"], "other_body": other.status_code}
            result["origin_null"] = session.post(server.url + "/v1/jobs", json=TINY,
                                                 headers={"Origin": "null"}).status_code
            result["paging"] = {q: session.get(f"{server.url}/v1/jobs?{q}").status_code
                                for q in ("limit=-1", "limit=1e20", "offset=-1")}
            result["chunked_2mb_over_1mb_cap"] = raw_chunked(server.port, 2 * 2**20)
            ids = [*result["flood"].pop("ids"), first.json()["id"]]
            wait_finished(session, server.url, ids)
            before = disk(root / "a")
            began = time.perf_counter()
            deleted = [session.delete(f"{server.url}/v1/jobs/{job_id}").status_code for job_id in ids]
            result["delete_finished"] = {"jobs": len(ids), "answered_204": deleted.count(204),
                                         "bytes_before": before, "bytes_after": disk(root / "a"),
                                         "ms_per_delete": (time.perf_counter() - began) * 1000 / len(ids),
                                         "job_folders_left": len(list((root / "a" / "jobs").glob("*")))}
    finally:
        server.stop()
    result["retention"] = retention(root / "b")
    result["fair_disk"] = fair_and_disk(root / "c")
    return result


def half_open(port: int, count: int, wait_s: float) -> dict:
    """`count` POSTs that send their headers and 9 of 1000 declared body bytes, then nothing: after
    `wait_s` (past the server's 30 s body timeout), how many were answered 408 or closed, and how
    long a /health took while they were all held."""
    import selectors
    import socket

    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"prompt\"")
        held.append(sock)
    opened = time.perf_counter()
    began = time.perf_counter()
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=60).status_code
    health_ms = (time.perf_counter() - began) * 1000
    time.sleep(max(0.0, opened + wait_s - time.perf_counter()))
    selector = selectors.DefaultSelector()
    for sock in held:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    statuses: dict[str, int] = {}
    while ready := selector.select(timeout=15):  # until 15 s pass with no more answers
        for key, _ in ready:
            try:
                answer = key.fileobj.recv(64)
            except OSError:
                answer = b""
            status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "closed"
            statuses[status] = statuses.get(status, 0) + 1
            selector.unregister(key.fileobj)
    answered_s = time.perf_counter() - opened
    for sock in held:
        sock.close()
    return {"held": count, "after_s": wait_s, "answered": statuses, "still_open": count - sum(statuses.values()),
            "all_answered_by_s": answered_s,
            "health_while_held": health, "health_ms": health_ms}


def fair_and_disk(root: Path, budget_gb: float = 0.00012) -> dict:
    """Two API keys: A queues 8 jobs, then B one — at what place B's job starts (fair order: 2nd,
    first come first served: 9th). Then --max-disk-gb (120 kB here) on another server: the store's
    size after 8 jobs, and once the retention thread has run (every 30 s)."""
    a, b = ({"Authorization": f"Bearer probe-{k}"} for k in "ab")
    server = started(Server(root / "keys", extra=["--api-key", "probe-a", "--api-key", "probe-b"], headers=a))
    try:
        with httpx.Client(timeout=120) as session:
            ids = [session.post(server.url + "/v1/jobs", json={**TINY, "seed": n}, headers=a).json()["id"]
                   for n in range(8)]
            late = session.post(server.url + "/v1/jobs", json={**TINY, "seed": 99}, headers=b).json()["id"]
            wait_finished(session, server.url, [*ids, late], headers=a)
            starts = sorted((session.get(f"{server.url}/v1/jobs/{j}", headers=a).json()["started"], j)
                            for j in [*ids, late])
            place = [j for _, j in starts].index(late) + 1
    finally:
        server.stop()
    server = started(Server(root / "disk", extra=["--max-disk-gb", str(budget_gb)]))
    try:
        with httpx.Client(timeout=120) as session:
            jobs = [session.post(server.url + "/v1/jobs", json={**TINY, "seed": n}).json()["id"] for n in range(8)]
            wait_finished(session, server.url, jobs)
            peak = disk(root / "disk")
            time.sleep(35)
            left = sum(session.get(f"{server.url}/v1/jobs/{j}").status_code == 200 for j in jobs)
    finally:
        server.stop()
    return {"b_started_at": place, "jobs": len(ids) + 1, "budget_bytes": int(budget_gb * 1e9), "peak_bytes": peak,
            "after_sweep_bytes": disk(root / "disk"), "disk_jobs": len(jobs), "jobs_left": left}


def retention(root: Path, keep_s: float = 2.0) -> dict:
    """--keep-jobs-hours of 2 s: jobs cancelled while queued (finished at once, their input image kept
    as a blob) are gone, with their blobs, a few seconds later; the running one is never touched."""
    server = started(Server(root, extra=["--keep-jobs-hours", str(keep_s / 3600)]))
    image = png_b64(np.full((64, 64, 3), 200, np.uint8))
    try:
        with httpx.Client(timeout=120) as session:
            running = session.post(server.url + "/v1/jobs", json={**TINY, "steps": 30}).json()["id"]
            ids = [session.post(server.url + "/v1/jobs", json={**TINY, "seed": n, "steps": 2,
                                "init_image": "data:image/png;base64," + image}).json()["id"] for n in range(10)]
            for job_id in ids:
                session.delete(f"{server.url}/v1/jobs/{job_id}")  # queued: cancelled, so finished
            cancelled = time.perf_counter()
            blobs_before = len(list((root / "blobs").glob("*")))
            while any(session.get(f"{server.url}/v1/jobs/{j}").status_code != 404 for j in ids):
                if time.perf_counter() - cancelled > 60:
                    break
                time.sleep(0.1)
            gone_after = time.perf_counter() - cancelled
            left = sum(session.get(f"{server.url}/v1/jobs/{j}").status_code != 404 for j in ids)
            running_kept = session.get(f"{server.url}/v1/jobs/{running}").status_code == 200
        chunked = raw_chunked(server.port, 70 * 2**20)  # over the default --max-body-mb 64
        slow = half_open(server.port, 2000, 35.0)
        after = httpx.get(server.url + "/health", timeout=60).status_code
    finally:
        server.stop()
    return {"keep_s": keep_s, "jobs": len(ids), "left": left, "deleted_after_s": gone_after,
            "blobs_before": blobs_before, "blobs_after": len(list((root / "blobs").glob("*"))),
            "running_job_kept": running_kept, "chunked_70mb_over_64mb_cap": chunked, "half_open": slow,
            "health_after": after}


def disk(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def print_probes(count: int) -> None:
    found = probes(count)
    f, d, r = found["flood"], found["delete_finished"], found["retention"]
    h, fd = r["half_open"], found["fair_disk"]
    print(f"| probe | result |\n|---|---|\n"
          f"| flood: {f['sent']} POST /v1/jobs at once, --max-queue 8 | {f['accepted']} accepted, "
          f"{f['refused_429']} × 429 (Retry-After on every one: {f['retry_after_on_every_429']}), other "
          f"codes {f['other'] or 'none'}, {f['seconds']:.1f} s, {f['connection_resets_resent']} connection resets "
          f"resent |\n"
          f"| Idempotency-Key reused | same body {found['reused_key']['same_body']} (same job: "
          f"{found['reused_key']['same_job']}), other body {found['reused_key']['other_body']} |\n"
          f"| Origin: null write | {found['origin_null']} |\n"
          f"| paging | " + ", ".join(f"{q} → {c}" for q, c in found["paging"].items()) + " |\n"
          f"| chunked 2 MiB body, --max-body-mb 1 | {found['chunked_2mb_over_1mb_cap']} |\n"
          f"| DELETE {d['jobs']} finished jobs | {d['answered_204']} × 204, store {d['bytes_before']:,} → "
          f"{d['bytes_after']:,} bytes, {d['job_folders_left']} job folders left, {d['ms_per_delete']:.1f} ms each |\n"
          f"| --keep-jobs-hours ({r['keep_s']:g} s), {r['jobs']} finished jobs | {r['jobs'] - r['left']} deleted "
          f"within {r['deleted_after_s']:.1f} s, blobs {r['blobs_before']} → {r['blobs_after']}, running job kept: "
          f"{r['running_job_kept']} |\n"
          f"| chunked 70 MiB body, default --max-body-mb 64 | {r['chunked_70mb_over_64mb_cap']} |\n"
          f"| {h['held']} half-sent bodies held | from {h['after_s']:g} s: {h['answered']} answered (the last "
          f"by {h['all_answered_by_s']:.0f} s), {h['still_open']} still open; /health while held "
          f"{h['health_while_held']} in {h['health_ms']:.0f} ms, "
          f"after {r['health_after']} |\n"
          f"| 2 API keys: A queues {fd['jobs'] - 1} jobs, then B 1 | B's job started {fd['b_started_at']}. "
          f"(first come first served: {fd['jobs']}.) |\n"
          f"| --max-disk-gb {fd['budget_bytes'] / 1e9:g} ({fd['budget_bytes']:,} bytes) | store {fd['peak_bytes']:,} "
          f"bytes after {fd['disk_jobs']} jobs → {fd['after_sweep_bytes']:,} after the 30 s sweep, {fd['jobs_left']} "
          f"jobs left |")


if __name__ == "__main__":
    main()
