"""`POST /v1/jobs/video`: upload or a path in the server's video folder only, checked before it is
queued, per-frame progress, the MP4 with its provenance, cancel, and retry resuming from the frames
an interrupted job had finished."""

from __future__ import annotations

import base64
import time
from fractions import Fraction

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kekong.server.app import create_app
from kekong.server.config import ServerConfig

pytest.importorskip("av")
REQUEST = {"prompt": "a red star on a white background", "steps": 4, "seed": 4,
           "controls": [{"module": "canny", "res": 64}]}


def star_mp4(count: int = 3) -> bytes:
    from kekong.train.shapes import Shape, draw
    from kekong.video.encode import encode_mp4

    rng = np.random.default_rng(0)
    return encode_mp4([draw([Shape("star", (20 + 4 * t, 30), 14, 0.1, "red")], "white", 64, rng).target
                       for t in range(count)], Fraction(12))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path_factory.mktemp("video-jobs"), ui=False))) as client:
        yield client


def wait_for(client, job_id, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}/frames").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_uploaded_video_job_runs_with_frame_progress_and_provenance(client, tmp_path):
    from kekong.provenance.verify import Outcome
    from kekong.video.verify import verify_video

    source = "data:video/mp4;base64," + base64.b64encode(star_mp4()).decode()
    submitted = client.post("/v1/jobs/video", json={"request": REQUEST, "source": source,
                                                    "video": {"flow_strength": 0.3}})
    assert submitted.status_code == 202, submitted.text
    body = submitted.json()
    assert body["kind"] == "video" and body["frames"]["total"] == 3
    assert "source" not in str(body["frames"]) and "/videos/" not in submitted.text  # no server path shown
    job = wait_for(client, body["id"])
    assert job["status"] == "done", job
    assert job["frames"]["done"] == 3 and job["progress"]["fraction"] == 1.0
    assert job["video"]["frames"] == 3 and job["video"]["rate"] == "12"
    video = client.get(job["video"]["url"])
    assert video.headers["content-type"] == "video/mp4"
    (tmp_path / "job.mp4").write_bytes(video.content)
    verdict = verify_video(tmp_path / "job.mp4")
    assert verdict.outcome == Outcome.FOUND and verdict.c2pa["state"] == "valid"
    assert verdict.metadata["video"]["settings"]["flow_strength"] == 0.3


def test_paths_outside_the_video_folder_and_bad_sources_are_refused_before_queueing(client):
    for body, words in (({"path": "../jobs.sqlite"}, "outside the server's video folder"),
                        ({"path": "/etc/passwd"}, "outside the server's video folder"),
                        ({"path": "missing.mp4"}, "no file 'missing.mp4'"),
                        ({"source": base64.b64encode(b"not a video at all").decode()}, "not a video"),
                        ({}, "send the source video")):
        answer = client.post("/v1/jobs/video", json={"request": REQUEST, **body})
        assert answer.status_code in (400, 422) and words in answer.text, (body, answer.text)


def test_a_video_in_the_video_folder_is_named_by_path_and_can_be_cancelled(client):
    services = client.app.state.services
    folder = services.store.root / "videos"
    folder.mkdir(exist_ok=True)
    (folder / "walk.mp4").write_bytes(star_mp4(6))
    submitted = client.post("/v1/jobs/video", json={"request": {**REQUEST, "steps": 20}, "path": "walk.mp4"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    assert wait_for(client, job_id)["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{job_id}/video").status_code == 409


def test_a_retried_video_job_resumes_from_its_finished_frames(client):
    from kekong.server.status import JobStatus

    services = client.app.state.services
    source = base64.b64encode(star_mp4()).decode()
    job_id = client.post("/v1/jobs/video", json={"request": REQUEST, "source": source,
                                                 "video": {"flow_strength": 0.0}}).json()["id"]
    assert wait_for(client, job_id)["status"] == "done"
    folder = services.store.output_dir(job_id) / "video.frames"
    (folder / "000002.png").unlink()
    first = (folder / "000000.png").stat().st_mtime_ns
    with services.store._lock, services.store._connect() as db:  # as a server restart leaves a running job
        db.execute("UPDATE jobs SET status = ? WHERE id = ?", (JobStatus.INTERRUPTED, job_id))
    assert client.post(f"/v1/jobs/{job_id}/retry").status_code == 202
    assert wait_for(client, job_id)["status"] == "done"
    assert (folder / "000002.png").is_file() and (folder / "000000.png").stat().st_mtime_ns == first


def test_a_refused_upload_deletes_only_a_file_it_stored(client):
    import hashlib

    uploads = client.app.state.services.store.root / "videos" / "uploads"
    data = star_mp4(4)
    stored = uploads / f"{hashlib.sha256(data).hexdigest()}.mp4"
    source = base64.b64encode(data).decode()
    queued = client.post("/v1/jobs/video", json={"request": {**REQUEST, "steps": 20}, "source": source})
    assert queued.status_code == 202, queued.text
    # the same video again with a window past its end: refused, and the queued job's source stays
    refused = client.post("/v1/jobs/video", json={"request": REQUEST, "source": source, "video": {"start": 100}})
    assert refused.status_code in (400, 422) and "select no frame" in refused.text, refused.text
    assert stored.is_file()
    assert client.delete(f"/v1/jobs/{queued.json()['id']}").status_code == 200
    other = star_mp4(5)  # a refused upload of its own is not kept
    refused = client.post("/v1/jobs/video", json={"request": REQUEST, "source": base64.b64encode(other).decode(),
                                                  "video": {"start": 100}})
    assert refused.status_code in (400, 422), refused.text
    assert not (uploads / f"{hashlib.sha256(other).hexdigest()}.mp4").exists()
