"""The polarity warning reaches the job's API answer (issue 23 item 3's remainder): the worker
collects what this thread's generation warned, and /v1/jobs lists it under `warnings`."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from kekong.detect.polarity import collected_warnings, warn_if_inverted
from kekong.server.jobs import describe
from kekong.server.status import JobStatus


def _sketch() -> np.ndarray:
    image = np.full((64, 64, 3), 255, np.uint8)
    image[20:44, 30:33] = 0  # a dark line on white paper
    return image


def test_warnings_of_this_thread_are_collected_and_others_not():
    with collected_warnings() as warnings:
        warn_if_inverted(_sketch(), "kekong-shapes-outline", 0)
        other = threading.Thread(target=warn_if_inverted, args=(_sketch(), "control_canny", 1))
        other.start()
        other.join()
        warn_if_inverted(255 - _sketch(), "control_canny", 2)  # light lines on black: right polarity
    assert len(warnings) == 1 and "control unit 0" in warnings[0] and "scribble_sketch" in warnings[0]


def test_a_finished_jobs_answer_lists_its_warnings():
    job = SimpleNamespace(id="j1", kind="generate", status=JobStatus.DONE, error=None, retryable=False, step=4,
                          total=4, created=0, started=0, finished=1,
                          result={"images": [], "maps": [], "warnings": ["control unit 0: dark lines …"]})
    svc = SimpleNamespace(worker=SimpleNamespace(running_job=lambda job_id: None))  # the job is not running
    assert describe(job, svc)["warnings"] == ["control unit 0: dark lines …"]
    job.result = {"images": [], "maps": []}  # jobs stored before warnings were kept
    assert describe(job, svc)["warnings"] == []
