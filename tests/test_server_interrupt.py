"""A1111's /skip and /interrupt: interrupt stops the generation and its request answers 200 with
what was made so far (the batch under way decoded at the step it stopped, no further batch);
skip ends the batch under way the same way and the next batch runs.

The first tests run the real pipeline (the shipped model, 64 px, 3 steps); the route tests run a
fake generation that follows the same step-callback protocol, so they do not wait on sampling."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from kekong.generation.loop import Stop
from kekong.request import build_request
from tests.server_helpers import decode
from tests.test_server_queue import serve, wait_status

REQUEST = {"prompt": "a red star", "width": 64, "height": 64, "steps": 3, "seed": 5, "batch_count": 2}


def run(on_step):
    from kekong.generation.pipeline import generate

    return generate(build_request(**REQUEST), on_step=on_step)


@pytest.fixture(scope="module")
def full():
    """The uninterrupted images, and each batch's latents after each step."""
    latents: list[list] = []

    def keep(info):
        if info.step == 1:
            latents.append([])
        latents[-1].append(info.latents.clone())

    return run(keep), latents


def decoded(latents) -> np.ndarray:
    import torch

    from kekong.generation.pipeline import _decode
    from kekong.models.load import load_base

    with torch.no_grad():
        return _decode(load_base(build_request(**REQUEST).model), latents)[0]


def stop_at(batch: int, step: int, stop: Stop):
    seen = {"batch": -1}

    def on_step(info):
        seen["batch"] += info.step == 1
        return stop if (seen["batch"], info.step) == (batch, step) else None

    return on_step


def test_interrupt_keeps_the_batch_as_far_as_it_got_and_runs_no_further_batch(full):
    images, latents = full
    stopped = run(stop_at(0, 2, Stop.ALL))
    assert len(stopped) == 1 and len(images) == 2
    assert np.array_equal(stopped[0].image, decoded(latents[0][1]))  # step 2's latents, decoded
    assert not np.array_equal(stopped[0].image, images[0].image)
    assert stopped[0].seed == images[0].seed


def test_skip_ends_the_batch_under_way_and_the_next_batch_runs_in_full(full):
    images, latents = full
    skipped = run(stop_at(0, 1, Stop.BATCH))
    assert len(skipped) == 2
    assert np.array_equal(skipped[0].image, decoded(latents[0][0]))
    assert np.array_equal(skipped[1].image, images[1].image)  # the second batch, untouched
    assert skipped[1].seed == images[1].seed


def test_a_stopped_image_records_the_step_it_stopped_at(full):
    from kekong.provenance.stamp import describe

    images, _ = full
    stopped = run(stop_at(0, 2, Stop.ALL))[0]
    skipped = run(stop_at(0, 1, Stop.BATCH))
    assert stopped.stopped == {"stop": "interrupt", "step": 2, "of": 3, "pass": "first"}
    infotext, recipe = describe(stopped)
    assert "Steps: 3," in infotext and "Stopped at step: 2 of 3 (interrupt)" in infotext  # the schedule, then the stop
    assert recipe["image"]["stopped"] == stopped.stopped and recipe["request"]["steps"] == 3
    assert "Stopped at step: 1 of 3 (skip)" in describe(skipped[0])[0]
    assert skipped[1].stopped is None and "Stopped" not in describe(skipped[1])[0]  # the next batch ran in full
    assert images[0].stopped is None and "stopped" not in describe(images[0])[1]["image"]


class Stepping:
    """A fake generation: `batches` batches of `steps` steps, each step a few ms, that obeys
    on_step as the pipeline does and writes one PNG per batch it kept (its value: the step)."""

    def __init__(self, batches: int = 2, steps: int = 400) -> None:
        self.batches, self.steps = batches, steps
        self.started = threading.Event()
        self.kept: list[int] = []

    def __call__(self, job, request, out_dir: Path, on_step) -> dict:
        out_dir.mkdir(parents=True, exist_ok=True)
        images = []
        for batch in range(self.batches):
            answer = None
            for step in range(1, self.steps + 1):
                self.started.set()
                time.sleep(0.005)
                answer = on_step(SimpleNamespace(step=step, total=self.steps, latents=None, denoised=None, shown=None))
                if answer is False:
                    from kekong.generation.loop import Cancelled

                    raise Cancelled("cancelled")
                if isinstance(answer, Stop):
                    break
            self.kept.append(step)
            stream = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), min(step, 255), np.uint8)).save(stream, "PNG")
            (out_dir / f"{batch}.png").write_bytes(stream.getvalue())
            images.append({"file": f"{batch}.png", "seed": batch, "subseed": None, "prompt": request.prompt,
                           "negative_prompt": "", "infotext": f"step {step}", "width": 8, "height": 8,
                           "fidelity": None})
            if answer is Stop.ALL:
                break
        return {"images": images, "maps": [], "model": None, "vae": None,
                "request": request.model_dump(mode="json", exclude={"init_image", "mask", "controls"})}


A1111 = {"prompt": "a red star", "width": 64, "height": 64, "steps": 20, "n_iter": 2}


def post_in_background(client, route: str, body: dict) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(client.post(route, json=body)))
    thread.start()
    return thread, answers


@pytest.mark.parametrize(("route", "kept_batches"), [("/sdapi/v1/interrupt", 1), ("/sdapi/v1/skip", 2)])
def test_txt2img_answers_200_with_what_was_made_after_interrupt_or_skip(tmp_path, route, kept_batches):
    fake = Stepping()
    client = serve(tmp_path, fake)
    try:
        key = "skipped" if route.endswith("skip") else "interrupted"
        assert client.post(route).json() == {key: None}  # idle: nothing to stop
        thread, answers = post_in_background(client, "/sdapi/v1/txt2img", A1111)
        assert fake.started.wait(20)
        time.sleep(0.05)
        job_id = client.post(route).json()[key]
        assert job_id is not None
        thread.join(60)
        answer = answers[0]
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["images"]) == kept_batches
        assert 1 <= fake.kept[0] < fake.steps  # the first batch stopped early …
        assert decode(answer.json()["images"][0]).getpixel((0, 0))[0] == min(fake.kept[0], 255)
        if kept_batches == 2:
            assert fake.kept[1] == fake.steps  # … and after a skip the second ran in full
        stopped = "skip" if route.endswith("skip") else "interrupt"
        assert json.loads(answer.json()["info"])["kekong"]["stopped"] == [stopped]
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "done" and job["stopped"] == [stopped]
    finally:
        client.__exit__(None, None, None)


def test_delete_still_cancels_and_keeps_nothing(tmp_path):
    fake = Stepping(batches=1)
    client = serve(tmp_path, fake)
    try:
        job_id = client.post("/v1/jobs", json={"prompt": "x", "width": 64, "height": 64, "steps": 2}).json()["id"]
        assert fake.started.wait(20)
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        job = wait_status(client, job_id, ("cancelled",))
        assert "images" not in job and not (tmp_path / "server" / "jobs" / job_id / "0.png").exists()
    finally:
        client.__exit__(None, None, None)
