"""kekong.server.ray_serve on a local Ray (`num_cpus=2`): the API deployed as Ray Serve replicas on
one shared store — a job posted through the proxy is run by a replica and read back (status, image)
through the proxy, and A1111's txt2img answers with its image. Needs the ray-serve extra (not
installed by `make setup`: see README); slow (Ray Serve's controller, proxy and replicas start):
`make bench` runs it (KEKONG_SLOW=1)."""

from __future__ import annotations

import os
import signal
import socket
import time

import httpx
import pytest

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.skipif(not os.environ.get("KEKONG_SLOW"), reason="slow: make bench runs it (KEKONG_SLOW=1)")
JOB = {"prompt": "a red star", "width": 64, "height": 64, "steps": 2, "seed": 3}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_api_as_ray_serve_replicas_on_one_store(tmp_path):
    import ray
    from ray import serve

    from kekong.scale.ray_pool import connect
    from kekong.server.config import ServerConfig
    from kekong.server.ray_serve import Scaling, deploy

    handler = signal.getsignal(signal.SIGTERM)
    port = free_port()
    assert connect(None, cpus=2)
    try:
        config = ServerConfig(data_dir=tmp_path / "store", port=port, ui=False)
        deploy(config, Scaling(min_replicas=1, max_replicas=2, cpus_per_replica=0.5), port=port, blocking=False)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            job = client.post("/v1/jobs", json=JOB)
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
            deadline = time.monotonic() + 300
            while (state := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            assert state["status"] == "done", state
            image = client.get(state["images"][0]["url"])
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            answer = client.post("/sdapi/v1/txt2img", json={"prompt": "a blue circle", "width": 64, "height": 64,
                                                            "steps": 2, "seed": 4})
            assert answer.status_code == 200 and len(answer.json()["images"]) == 1
        assert (tmp_path / "store" / "jobs.sqlite").is_file()  # the one store the replicas share
    finally:
        serve.shutdown()
        ray.shutdown()
        signal.signal(signal.SIGTERM, handler)
