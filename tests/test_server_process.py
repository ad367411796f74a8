"""`kekong serve` as a real process: a client that goes away does not lose its job, and after a
`kill -9` mid-generation a restart keeps finished results, re-runs queued jobs and marks the
interrupted one retryable, with no partial output left behind."""

from __future__ import annotations

import httpx
import pytest

from tests.server_helpers import Server

SMALL = {"width": 64, "height": 64, "steps": 4}
SLOW = {"width": 512, "height": 512, "steps": 150}


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
        # loading the model alone outlasts the client's half second
        httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a red star", "width": 128, "height": 128,
                                                            "steps": 20}, timeout=0.5)
    [job] = [j for j in httpx.get(server.url + "/v1/jobs").json() if j["kind"] == "txt2img"]
    done = server.wait(job["id"])
    assert done["status"] == "done"
    assert httpx.get(server.url + done["images"][0]["url"]).headers["content-type"] == "image/png"
