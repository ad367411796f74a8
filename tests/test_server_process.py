"""`kekong serve` as a real process: a client that goes away does not lose its job, and after a
`kill -9` mid-generation a restart keeps finished results, re-runs queued jobs and marks the
interrupted one retryable, with no partial output left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SMALL = {"width": 64, "height": 64, "steps": 4}
SLOW = {"width": 512, "height": 512, "steps": 150}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kekong.cli", "serve", "--port", str(self.port), "--data-dir",
             str(self.data_dir), "--no-ui"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
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


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path / "server").start()
    yield server
    server.stop()


def test_kill_9_mid_generation_loses_nothing(server):
    finished = httpx.post(server.url + "/v1/jobs", json={"prompt": "a red star", **SMALL}).json()["id"]
    server.wait(finished)
    running = httpx.post(server.url + "/v1/jobs", json={"prompt": "a blue circle", **SLOW}).json()["id"]
    queued = httpx.post(server.url + "/v1/jobs", json={"prompt": "a green square", **SMALL}).json()["id"]
    server.wait(running, until=lambda job: job["status"] == "running" and job["progress"]["step"] > 0)

    server.kill()
    server.start()

    kept = server.job(finished)
    assert kept["status"] == "done"
    assert httpx.get(server.url + kept["images"][0]["url"]).status_code == 200
    interrupted = server.job(running)
    assert interrupted["status"] == "interrupted" and interrupted["retryable"]
    assert not (server.data_dir / "jobs" / running).exists()  # no partial output
    assert server.wait(queued)["status"] == "done"  # the queued job ran after the restart
    retried = httpx.post(f"{server.url}/v1/jobs/{running}/retry")
    assert retried.status_code == 202 and retried.json()["status"] in ("queued", "running")
    httpx.delete(f"{server.url}/v1/jobs/{running}")


def test_a_client_that_goes_away_does_not_lose_its_job(server):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a red star", "width": 256, "height": 256,
                                                            "steps": 60}, timeout=0.5)
    [job] = [j for j in httpx.get(server.url + "/v1/jobs").json() if j["kind"] == "txt2img"]
    done = server.wait(job["id"])
    assert done["status"] == "done"
    assert httpx.get(server.url + done["images"][0]["url"]).headers["content-type"] == "image/png"
