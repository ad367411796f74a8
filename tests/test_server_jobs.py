"""kekong's job API, live progress and interrupt, and the guard in front of every route."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kekong.server.app import create_app
from kekong.server.config import ServerConfig
from kekong.server.inputs import UrlPolicy
from tests.server_helpers import b64_png, decode, star_outline

SMALL = {"width": 64, "height": 64, "steps": 4}
SLOW = {"width": 512, "height": 512, "steps": 150}  # long enough to watch and stop


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path_factory.mktemp("jobs"), ui=False))) as client:
        yield client


def wait_for(client, job_id, statuses=("done", "failed", "cancelled"), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_submit_poll_fetch(client):
    outline = "data:image/png;base64," + b64_png(star_outline())
    submitted = client.post("/v1/jobs", json={"prompt": "a red star", "seed": 3, **SMALL,
                                              "controls": [{"module": "none", "image": outline}]})
    assert submitted.status_code == 202 and submitted.headers["location"] == f"/v1/jobs/{submitted.json()['id']}"
    job = wait_for(client, submitted.json()["id"])
    assert job["status"] == "done" and job["progress"]["fraction"] == 1.0
    assert job["images"][0]["seed"] == 3 and "ControlNet 0" in job["images"][0]["infotext"]
    image = client.get(job["images"][0]["url"])
    assert image.headers["content-type"] == "image/png" and decode_bytes(image.content).size == (64, 64)
    assert client.get(f"/v1/jobs/{job['id']}/images/5").status_code == 404
    assert job["id"] in [j["id"] for j in client.get("/v1/jobs").json()]


def test_detected_maps_are_kept_with_the_job(client):
    photo = "data:image/png;base64," + b64_png(np.where(star_outline() > 0, 40, 230).astype(np.uint8))
    job_id = client.post("/v1/jobs", json={"prompt": "a red star", **SMALL,
                                           "controls": [{"module": "scribble_sketch", "image": photo}]}).json()["id"]
    job = wait_for(client, job_id)
    assert job["maps"] == [{"url": f"/v1/jobs/{job_id}/maps/0", "unit": 0, "module": "scribble_sketch"}]
    assert decode_bytes(client.get(job["maps"][0]["url"]).content).size == (64, 64)


def decode_bytes(data: bytes):
    return decode(base64.b64encode(data).decode())


def test_idempotency_key_returns_the_same_job(client):
    first = client.post("/v1/jobs", json={"prompt": "a blue circle", **SMALL}, headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/jobs", json={"prompt": "a blue circle", **SMALL}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    wait_for(client, first.json()["id"])


def test_job_requests_are_validated_before_queueing(client):
    path_image = client.post("/v1/jobs", json={"prompt": "x", "init_image": "/etc/hosts"})
    assert path_image.status_code == 422 and "init_image" in path_image.json()["detail"]
    bad_steps = client.post("/v1/jobs", json={"prompt": "x", "steps": 0})
    assert bad_steps.status_code == 422 and "steps" in bad_steps.json()["detail"]
    unknown_field = client.post("/v1/jobs", json={"prompt": "x", "sampler_nmae": "Euler"})
    assert unknown_field.status_code == 422 and "sampler_nmae" in unknown_field.json()["detail"]
    assert client.get("/v1/jobs/nope").status_code == 404


def test_progress_preview_and_interrupt(client):
    job_id = client.post("/v1/jobs", json={"prompt": "a red star", **SLOW}).json()["id"]
    deadline = time.time() + 240  # the model loads first (slow on a busy machine)
    progress = client.get("/sdapi/v1/progress").json()
    while progress["state"]["sampling_step"] < 2 and time.time() < deadline:
        time.sleep(0.05)
        progress = client.get("/sdapi/v1/progress").json()
    assert progress["state"]["job"] == job_id and 0 < progress["progress"] < 1
    assert progress["state"]["sampling_steps"] == 150
    preview = decode(progress["current_image"])  # the latest step, without the VAE: latent size
    assert preview.size[0] > 0
    assert client.post("/sdapi/v1/interrupt").json()["interrupted"] == job_id
    job = wait_for(client, job_id)  # as A1111: what was made so far (tests/test_server_interrupt.py)
    assert job["status"] == "done" and job["stopped"] == ["interrupt"] and len(job["images"]) == 1
    assert job["progress"]["step"] < 150


def test_cancel_a_queued_job_and_retry_rules(client):
    running = client.post("/v1/jobs", json={"prompt": "a", **SLOW}).json()["id"]
    queued = client.post("/v1/jobs", json={"prompt": "b", **SMALL}).json()["id"]
    cancelled = client.delete(f"/v1/jobs/{queued}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{queued}/retry").status_code == 409  # only interrupted jobs are retried
    assert client.delete(f"/v1/jobs/{queued}").status_code == 204  # finished: deleted (test_server_queue.py)
    client.delete(f"/v1/jobs/{running}")
    assert wait_for(client, running)["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{running}/images/0").status_code == 409


def test_openapi_spec_is_served(client):
    spec = client.get("/openapi.json").json()
    assert {"/sdapi/v1/txt2img", "/v1/jobs", "/controlnet/detect"} <= set(spec["paths"])


# -- the guard ---------------------------------------------------------------------------------
def test_dns_rebinding_and_cross_origin_writes_are_refused(client):
    assert client.get("/health", headers={"Host": "attacker.example:7860"}).status_code == 421
    assert client.get("/health", headers={"Host": "localhost:7860"}).status_code == 200
    cross = client.post("/v1/jobs", json={"prompt": "x"}, headers={"Origin": "https://attacker.example"})
    assert cross.status_code == 403
    assert client.post("/sdapi/v1/interrupt", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    same = client.post("/sdapi/v1/interrupt", headers={"Origin": "http://testserver"})  # the Host it was sent to
    assert same.status_code == 200
    assert client.get("/health", headers={"Origin": "https://attacker.example"}).status_code == 200  # reads only


def test_api_key_is_required_when_set(tmp_path):
    config = ServerConfig(host="0.0.0.0", api_key="s3cret", data_dir=tmp_path, ui=False)
    with TestClient(create_app(config)) as client:
        refused = client.get("/sdapi/v1/options")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert client.get("/sdapi/v1/options", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/sdapi/v1/options", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/sdapi/v1/options", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/sdapi/v1/options", auth=("anyone", "s3cret")).status_code == 200
        assert client.get("/health", headers={"Host": "192.168.1.5:7860", "X-API-Key": "s3cret"}).status_code == 200


def test_listening_beyond_loopback_needs_a_key_or_insecure(tmp_path):
    from kekong.errors import ParameterError

    with pytest.raises(ParameterError, match="without an API key"):
        create_app(ServerConfig(host="0.0.0.0", data_dir=tmp_path, ui=False))
    create_app(ServerConfig(host="0.0.0.0", insecure=True, data_dir=tmp_path, ui=False))


def test_url_inputs_are_off_and_never_reach_private_addresses(client, monkeypatch):
    payload = {"prompt": "x", "init_images": ["http://example.com/a.png"], **SMALL}
    off = client.post("/sdapi/v1/img2img", json=payload)
    assert off.status_code == 422 and "URL inputs are off" in off.json()["detail"]
    from kekong.errors import ParameterError
    from kekong.server.inputs import image_field

    on = UrlPolicy(enabled=True)
    for url in ("http://127.0.0.1:7860/x.png", "http://10.0.0.8/x.png", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/x.png", "http://localhost/x.png"):
        with pytest.raises(ParameterError, match="URL inputs may only name public hosts"):
            image_field(url, "init_images[0]", on)
    with pytest.raises(ParameterError, match="not valid base64"):  # other schemes are not URLs to us
        image_field("file:///etc/passwd", "x", on)


def test_url_fetch_refuses_redirects_and_oversized_bodies(monkeypatch):
    """Against a local server standing in for a public one (the address check is what lets it through)."""
    import http.server
    import threading

    from kekong.errors import ParameterError
    from kekong.server import inputs

    png = base64.b64decode(b64_png(np.zeros((8, 8, 3), np.uint8)))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/")
                self.end_headers()
                return
            body = png if self.path == "/ok.png" else b"x" * 5000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(inputs, "public_address", lambda host: host)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    policy = UrlPolicy(enabled=True, max_bytes=1000)
    try:
        assert inputs.image_field(base + "/ok.png", "image", policy).startswith("data:image;base64,")
        with pytest.raises(ParameterError, match="redirects"):
            inputs.image_field(base + "/redirect", "image", policy)
        with pytest.raises(ParameterError, match="cap"):
            inputs.image_field(base + "/big", "image", policy)
    finally:
        server.shutdown()


def test_model_names_are_checked_where_each_kind_lives(tmp_path, monkeypatch):
    from kekong.errors import MissingWeightsError
    from kekong.request import build_request
    from kekong.server.services import check_models

    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))
    (tmp_path / "ipadapter").mkdir()
    (tmp_path / "ipadapter" / "ip-adapter_test.safetensors").write_bytes(b"")
    image = "data:image/png;base64," + b64_png(star_outline())
    ip_unit = {"module": "ip-adapter_clip_sd15", "model": "ip-adapter_test", "image": image}
    check_models(build_request(prompt="x", controls=[ip_unit]))  # ComfyUI's ipadapter/ folder counts
    with pytest.raises(MissingWeightsError, match="ip-adapter_test"):
        check_models(build_request(prompt="x", controls=[{"module": "none", "model": "ip-adapter_test",
                                                          "image": image}]))
